import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { build } from 'esbuild';
import type { Knex } from 'knex';
import { runCli } from '../../src/cli';
import { openDatabase } from '../../src/db/database';
import { databaseForProcess } from './test-database';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

const root = path.resolve(__dirname, '../..');

/**
 * The operator CLI, run in-process (or, with `spawn`, as its own process), against a database of its own: this run's Postgres (a fresh
 * database), or an embedded PGlite in a temporary DATA_DIR, as `npx accounts` would use it.
 * Registers the test file's beforeAll/afterAll.
 */
export function cliFixture(prefix: string, extraEnv: (dataDir: string) => NodeJS.ProcessEnv = () => ({})) {
  let env: NodeJS.ProcessEnv = {};
  let dataDir = '';
  let cleanup: () => Promise<void> = async () => undefined;
  let bundle: Promise<string> | undefined;
  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    const db = await databaseForProcess();
    env = { DATA_DIR: dataDir, BCRYPT_COST: '4', LOG_LEVEL: 'silent', ...extraEnv(dataDir), ...db.env };
    cleanup = db.close;
  }, 60_000);
  afterAll(async () => {
    await cleanup();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  return {
    get env(): NodeJS.ProcessEnv {
      return env;
    },
    get dataDir(): string {
      return dataDir;
    },
    /** Runs `accounts <args>` with `stdin` (and `moreEnv` over the fixture's); what it wrote and its exit status. */
    async run(args: string[], stdin = '', moreEnv: NodeJS.ProcessEnv = {}): Promise<CliRun> {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let out = '';
      let err = '';
      stdout.on('data', (c) => (out += c));
      stderr.on('data', (c) => (err += c));
      const code = await runCli(args, { env: { ...env, ...moreEnv }, stdin: Readable.from([stdin]), stdout, stderr });
      return { code, out, err };
    },
    /**
     * `accounts <args>` as an operator runs it: its own node process (src/cli.ts built once into
     * one file by esbuild, the packages left to node_modules, as the user CLI's tests do), stdin
     * a pipe written and closed, stdout and stderr pipes; with only the fixture's environment
     * (and `moreEnv`) and PATH.
     */
    async spawn(args: string[], stdin = '', moreEnv: NodeJS.ProcessEnv = {}): Promise<CliRun> {
      bundle ??= (async () => {
        const file = path.join(dataDir, 'cli.js');
        await build({ entryPoints: [path.join(root, 'src/cli.ts')], bundle: true, platform: 'node', target: 'node20', format: 'cjs', packages: 'external', outfile: file, logLevel: 'error' });
        return file;
      })();
      const file = await bundle;
      const child = spawn(process.execPath, [file, ...args], { cwd: root, env: { PATH: process.env.PATH, NODE_PATH: path.join(root, 'node_modules'), ...env, ...moreEnv }, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (c) => (out += c));
      child.stderr.on('data', (c) => (err += c));
      child.stdin.end(stdin);
      const code = await new Promise<number>((resolve, reject) => {
        child.once('error', reject);
        child.once('close', (c) => resolve(c ?? 1));
      });
      return { code, out, err };
    },
    /** The CLI's database, opened for a look (closed after `work`). */
    async withDb<T>(work: (knex: Knex) => Promise<T>): Promise<T> {
      const db = await openDatabase({ databaseUrl: env.DATABASE_URL, dataDir: path.join(dataDir, 'pgdata') });
      try {
        return await work(db.knex);
      } finally {
        await db.close();
      }
    },
  };
}
