import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { databaseForProcess } from '../helpers/test-database';

/**
 * The `accounts` bin as operators run it: `npx accounts` in the checkout, and `accounts` after a
 * global install (into a temporary prefix). Built once, by `npm run prepare` as `npm ci` does;
 * running it builds nothing.
 */
const root = path.resolve(__dirname, '../..');
const built = path.join(root, 'dist/src/cli.js');
let tmp: string;
let cleanup: () => Promise<void> = async () => undefined;
let dbEnv: NodeJS.ProcessEnv;

/** This process's environment without what an enclosing npm run passes down (its npm_config_*). */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'DATABASE_URL' && k !== 'NODE_OPTIONS'));
  return { ...env, ...extra };
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = cleanEnv(), cwd = root): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 120_000 });
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-bin-'));
  const prepared = run('npm', ['run', 'prepare']);
  expect(prepared.status).toBe(0);
  const db = await databaseForProcess();
  dbEnv = { DATA_DIR: path.join(tmp, 'data'), BCRYPT_COST: '4', LOG_LEVEL: 'silent', ...db.env };
  cleanup = db.close;
}, 180_000);

afterAll(async () => {
  await cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('npx accounts in the checkout', () => {
  it('is the built file, a node script by its #! line', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    expect(path.resolve(root, pkg.bin.accounts)).toBe(built);
    expect(fs.readFileSync(built, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
  });

  it('prints the usage, building nothing', () => {
    const before = fs.statSync(built).mtimeMs;
    const res = run('npx', ['accounts', '--help']);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(res.stdout).toMatch(/^Usage: accounts <command> \[options\]/);
    expect(fs.statSync(built).mtimeMs).toBe(before);
  }, 60_000);

  it('refuses an unknown option with one line and the usage, exit status 2', () => {
    const res = run('npx', ['accounts', 'create-user', '--email', 'not-an-email', '--name', 'x']);
    expect(res.status).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr.split('\n').slice(0, 3)).toEqual([
      'accounts: create-user: --email "not-an-email" is not an email address',
      '',
      expect.stringMatching(/^Usage: accounts /),
    ]);
    const unknown = run('npx', ['accounts', 'migrate', '--frobnicate']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr.split('\n')[0]).toBe('accounts: migrate: unknown option --frobnicate');
    expect(unknown.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);
});

describe('accounts after a global install', () => {
  let bin: string;

  beforeAll(() => {
    const prefix = path.join(tmp, 'prefix');
    const res = run('npm', ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', '--offline', root]);
    expect(res.status).toBe(0);
    bin = path.join(prefix, 'bin', 'accounts');
  }, 120_000);

  it('runs from anywhere, on the database its configuration names', () => {
    const help = run(bin, ['--help'], cleanEnv(), tmp);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: accounts <command> \[options\]/);

    const env = cleanEnv(dbEnv);
    const migrated = run(bin, ['migrate'], env, tmp);
    expect(migrated.stderr).toBe('');
    expect(migrated.status).toBe(0);
    expect(migrated.stdout).toMatch(/^(applied \d+_create_users, |already up to date\n$)/);
    const created = run(bin, ['create-user', '--email', 'ops@example.test', '--name', 'ops'], env, tmp);
    expect(created.status).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ email: 'ops@example.test', name: 'ops', is_admin: false });
    const padded = run(bin, ['create-user', '--email', 'ada@example.test', '--name', 'ada '], env, tmp);
    expect(padded.status).toBe(2);
    expect(padded.stderr.split('\n')[0]).toBe('accounts: create-user: --name "ada " is not a name (1 to 255 visible characters: no control, format or invisible characters, no white space but single inner spaces)');
    const again = run(bin, ['create-user', '--email', 'OPS@example.test', '--name', 'ops2'], env, tmp);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/^accounts: [^\n]+\n$/);
  }, 120_000);
});
