import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { MailCatcher } from './mail-catcher';
import { startServer, type StartedServer } from './server-process';
import { databaseForProcess } from './test-database';

const root = path.resolve(__dirname, '../..');

export interface Run {
  code: number | null;
  out: string;
  err: string;
}

export interface RunOptions {
  /** Standard input, written and then closed. */
  stdin?: string;
  /** The XDG_CONFIG_HOME of the run (each test makes its own with `configHome()`). */
  config?: string;
  env?: NodeJS.ProcessEnv;
}

/** One exchange with a prompt: when the output shows `expect`, type `answer` (a line: add `\r`). */
export type Exchange = [expect: string | RegExp, answer: string];

/**
 * `accounts user ...` end to end: the real server as a child process (on this run's Postgres, a
 * fresh database, or the embedded default: PGlite in a temporary DATA_DIR), mail through SMTP
 * into an in-process MailCatcher, registration on, plus `serverEnv`; and the CLI as a child
 * process, built once from src/cli.ts into one file (esbuild, the packages left to node_modules,
 * as tsc's build leaves them), with no terminal or (`runTty`) inside a pseudo-terminal made by
 * `script`. Registers the file's beforeAll/afterAll.
 */
export function userCliFixture(prefix: string, serverEnv: NodeJS.ProcessEnv = {}) {
  const state = { tmp: '', bundle: '', url: '', server: undefined as StartedServer | undefined, closeDb: async () => undefined as void };
  const mail = new MailCatcher();

  beforeAll(async () => {
    state.tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    state.bundle = path.join(state.tmp, 'cli.js');
    await mail.start();
    const db = await databaseForProcess();
    state.closeDb = db.close;
    const [server] = await Promise.all([
      startServer({
        DATA_DIR: path.join(state.tmp, 'data'),
        PORT: '0',
        BCRYPT_COST: '4',
        ALLOW_REGISTRATION: '1',
        SMTP_URL: mail.url,
        MAIL_POLL_INTERVAL_MS: '100',
        ...db.env,
        ...serverEnv,
      }),
      build({ entryPoints: [path.join(root, 'src/cli.ts')], bundle: true, platform: 'node', target: 'node20', format: 'cjs', packages: 'external', outfile: state.bundle, logLevel: 'error' }),
    ]);
    state.server = server;
    state.url = `http://127.0.0.1:${server.port}`;
  }, 120_000);

  afterAll(async () => {
    state.server?.child.kill('SIGTERM');
    if (state.server) await state.server.exited;
    await state.closeDb();
    await mail.stop();
    fs.rmSync(state.tmp, { recursive: true, force: true });
  }, 60_000);

  /** The environment of a run: nothing of this process's but PATH, so no ACCOUNTS_* or HOME leaks in. */
  function envFor(options: RunOptions): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: path.join(state.tmp, 'home'),
      NODE_PATH: path.join(root, 'node_modules'),
      ACCOUNTS_URL: state.url,
      ...(options.config ? { XDG_CONFIG_HOME: options.config } : {}),
      ...options.env,
    };
  }

  let configs = 0;

  return {
    mail,
    get url(): string {
      return state.url;
    },

    /** A fresh XDG_CONFIG_HOME for one test. */
    configHome(): string {
      const dir = path.join(state.tmp, `config-${++configs}`);
      fs.mkdirSync(dir, { recursive: true });
      return dir;
    },

    keyFile(config: string): string {
      return path.join(config, 'accounts', 'keys.json');
    },

    /** `accounts <args>` without a terminal: stdin a pipe (written, then closed), stdout and stderr pipes. */
    run(args: string[], options: RunOptions = {}): Promise<Run> {
      const child = spawn(process.execPath, [state.bundle, ...args], { cwd: state.tmp, env: envFor(options), stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.stdin ?? '');
      return new Promise((resolve) => child.on('close', (code) => resolve({ code, out, err })));
    },

    /**
     * `accounts <args>` in a pseudo-terminal (`script -qfec`): stdin, stdout and stderr are a TTY.
     * Each answer is typed once its prompt has appeared; `out` is everything the terminal showed.
     */
    runTty(args: string[], exchanges: Exchange[], options: RunOptions = {}): Promise<Run & { unanswered: number }> {
      const command = [process.execPath, state.bundle, ...args].map(shellQuote).join(' ');
      const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: state.tmp, env: { ...envFor(options), TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let seen = 0;
      const pending = [...exchanges];
      const answer = () => {
        while (pending.length > 0) {
          const [expected] = pending[0];
          const rest = out.slice(seen);
          const at = typeof expected === 'string' ? rest.indexOf(expected) : rest.search(expected);
          if (at < 0) return;
          const length = typeof expected === 'string' ? expected.length : (rest.slice(at).match(expected)?.[0].length ?? 0);
          seen += at + length;
          child.stdin.write(pending.shift()![1]);
        }
      };
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        answer();
      });
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      child.stdin.on('error', () => undefined);
      return new Promise((resolve) =>
        child.on('close', (code) => {
          child.stdin.destroy();
          resolve({ code, out, err: '', unanswered: pending.length });
        }),
      );
    },

    /** A verified account, made through the API as a user would (register, then the mailed link). */
    async account(name: string, email: string, password: string): Promise<void> {
      const res = await fetch(`${state.url}/register`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name, email, password }) });
      expect(res.status).toBe(202);
      await verify(email);
    },

    /** Opens the verification link mailed to `email`. */
    verify,

    /** A login token, straight from the API. */
    async login(email: string, password: string): Promise<string> {
      const res = await fetch(`${state.url}/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email, password }) });
      expect(res.status).toBe(200);
      return ((await res.json()) as { jwt_token: string }).jwt_token;
    },

    /** A request with a bearer token (and a JSON body); its status and JSON body (if any). */
    async call(method: string, route: string, token: string, body?: unknown): Promise<{ status: number; body: unknown }> {
      const headers: Record<string, string> = { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) };
      const res = await fetch(`${state.url}${route}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
  };

  async function verify(email: string): Promise<void> {
    const [mailed] = await mail.waitFor((m) => m.to.includes(email) && /Verify/.test(m.subject), 1, 15_000);
    const token = /token=([A-Za-z0-9_-]+)/.exec(mailed.text)![1];
    const res = await fetch(`${state.url}/register/verify`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }) });
    expect(res.status).toBe(204);
  }
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Lines that look like a stack trace's frames. */
export const STACK = /\n\s+at /;
