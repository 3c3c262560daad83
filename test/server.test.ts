import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startServer } from './helpers/server-process';
import { databaseForProcess } from './helpers/test-database';

const root = path.join(__dirname, '..');

let dataDir: string;
let env: NodeJS.ProcessEnv;
let cleanup: () => Promise<void> = async () => undefined;

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-server-'));
  const db = await databaseForProcess();
  env = { DATA_DIR: dataDir, PORT: '0', BCRYPT_COST: '8', ADMIN_EMAIL: 'root@example.test', ADMIN_PASSWORD: 'root password 1', ...db.env };
  cleanup = db.close;
}, 60_000);

afterAll(async () => {
  await cleanup();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

/**
 * Every entry under `dir`, itself included, with its permission bits, by path relative to it. One
 * that is gone by the time it is looked at (a temporary file the running server has just renamed:
 * a mail, the audit checkpoint) is left out: what it became is listed on the next look.
 */
function entries(dir: string): { file: string; mode: number; isDir: boolean }[] {
  return ['.', ...(fs.readdirSync(dir, { recursive: true }) as string[])].flatMap((file) => {
    const stat = fs.lstatSync(path.join(dir, file), { throwIfNoEntry: false });
    return stat ? [{ file, mode: stat.mode & 0o7777, isDir: stat.isDirectory() }] : [];
  });
}

/** The entries under `dir` that are not private: a directory other than 0700, a file other than 0600. */
const notPrivate = (dir: string) => entries(dir).filter((e) => e.mode !== (e.isDir ? 0o700 : 0o600));

/** Leaves `dir` as an older version did: directories 0755, files 0666 (the WAL, `pg_control`, the secret). */
function openToAll(dir: string): number {
  const all = entries(dir);
  for (const e of all) fs.chmodSync(path.join(dir, e.file), e.isDir ? 0o755 : 0o666);
  return all.length;
}

/** Polls `find` until it returns something (a deadline, not a sleep). */
async function eventually<T>(find: () => T | undefined, what: string): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('server', () => {
  it('stops at start-up on a bad setting, naming it', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: root,
      env: { PATH: process.env.PATH, BCRYPT_COST: '99', DATA_DIR: dataDir },
    });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toContain('BCRYPT_COST');
  }, 60_000);

  it('stops at start-up on a Postgres server without MFA_KEY or AUDIT_KEY, naming each', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: root,
      env: { PATH: process.env.PATH, DATA_DIR: dataDir, DATABASE_URL: 'postgres://accounts@127.0.0.1:1/accounts', JWT_SECRET: 'a'.repeat(32) },
    });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    expect(await new Promise((resolve) => child.on('exit', resolve))).toBe(1);
    expect(stderr).toContain('MFA_KEY: required with DATABASE_URL');
    expect(stderr).toContain('AUDIT_KEY: required with DATABASE_URL');
  }, 60_000);

  it('lets one process at a time use an embedded data directory: a second server and the CLI refuse, naming it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-locked-'));
    const embedded = { DATA_DIR: dir, PORT: '0', BCRYPT_COST: '4' };
    const first = await startServer(embedded);
    try {
      const second = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { cwd: root, env: { PATH: process.env.PATH, ...embedded } });
      let stderr = '';
      second.stderr.on('data', (c) => (stderr += c));
      expect(await new Promise((resolve) => second.on('exit', resolve))).toBe(1);
      expect(stderr).toContain(`the data directory ${dir} is in use by process ${first.child.pid}`);
      expect(stderr).not.toContain('    at '); // one clear line, no stack

      const cli = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'migrate'], { cwd: root, env: { PATH: process.env.PATH, ...embedded } });
      let cliErr = '';
      cli.stderr.on('data', (c) => (cliErr += c));
      expect(await new Promise((resolve) => cli.on('exit', resolve))).toBe(1);
      expect(cliErr).toContain(`the data directory ${dir} is in use by process ${first.child.pid}`);
      // The first one is unharmed.
      expect((await fetch(`http://127.0.0.1:${first.port}/readyz`)).status).toBe(200);
    } finally {
      first.child.kill('SIGTERM');
      expect(await first.exited).toBe(0);
    }
    expect(fs.existsSync(path.join(dir, 'accounts.lock'))).toBe(false);
    fs.rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('serves with no other configuration, keeps its secret, and drains on SIGTERM', async () => {
    const first = await startServer(env);
    const base = `http://127.0.0.1:${first.port}`;
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    // The server's metrics include prom-client's process metrics (tests' apps leave them out).
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(metrics).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
    const login = await fetch(`${base}/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: 'root@example.test', password: 'root password 1' }),
    });
    expect(login.status).toBe(200);
    const { jwt_token: token } = (await login.json()) as { jwt_token: string };
    // Each key: generated into the data directory, private, by the embedded default; taken from
    // the environment (where Postgres requires it) and nothing generated otherwise.
    for (const file of ['jwt-secret', 'mfa-key', 'audit-key']) {
      if (env.DATABASE_URL) expect(fs.existsSync(path.join(dataDir, file))).toBe(false);
      else expect(fs.statSync(path.join(dataDir, file)).mode & 0o777).toBe(0o600);
    }
    expect(first.output()).not.toContain('root password 1');
    expect(first.output()).not.toContain(token);

    // A login in flight when SIGTERM arrives still gets its answer; then the process ends cleanly.
    // Surely in flight: the app has said `100 Continue` (it reads the body), and the body is sent
    // only once the server has logged that it is shutting down.
    const body = JSON.stringify({ email: 'root@example.test', password: 'root password 1' });
    const inFlight = new Promise<number | undefined>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: first.port, method: 'POST', path: '/login', headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Expect: '100-continue' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', reject);
      req.on('continue', () => {
        first.child.kill('SIGTERM');
        void eventually(() => (first.output().includes('"msg":"shutting down') ? true : undefined), 'the shutdown log line').then(() => req.end(body), reject);
      });
    });
    expect(await inFlight).toBe(200);
    expect(first.output()).toMatch(/"in_flight":1,"msg":"shutting down/);
    expect(await first.exited).toBe(0);

    // The token outlives the restart; the bootstrap admin is not made twice.
    const second = await startServer(env);
    try {
      const me = await fetch(`http://127.0.0.1:${second.port}/user/me`, { headers: { Authorization: `Bearer ${token}` } });
      expect(me.status).toBe(200);
      const users = await fetch(`http://127.0.0.1:${second.port}/user?is_admin=1`, { headers: { Authorization: `Bearer ${token}` } });
      expect(((await users.json()) as unknown[]).length).toBe(1);
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
  }, 120_000);
  it('shuts down in order on a SIGTERM that comes while it starts or as soon as it listens, never by the default action', async () => {
    for (const when of ['the first log line', 'listening']) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-signal-'));
      const db = await databaseForProcess();
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
        cwd: root,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: dir, PORT: '0', BCRYPT_COST: '4', ...db.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const ready = when === 'listening' ? out.includes('"msg":"listening"') : out.includes('\n');
        if (ready && child.signalCode === null && !child.killed) child.kill('SIGTERM');
      });
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
      expect({ when, code, signal }).toEqual({ when, code: 0, signal: null });
      expect(out).toContain('"msg":"stopped"');
      await db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('keeps an embedded data directory private from the first start: directories 0700, files 0600, the WAL and the mail too', async () => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-private-'));
    const dir = path.join(parent, 'data'); // made by the server
    const server = await startServer({ DATA_DIR: dir, PORT: '0', BCRYPT_COST: '4', ADMIN_EMAIL: 'root@example.test', ADMIN_PASSWORD: 'root password 1' });
    try {
      const base = `http://127.0.0.1:${server.port}`;
      const login = await fetch(`${base}/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email: 'root@example.test', password: 'root password 1' }) });
      const { jwt_token: token } = (await login.json()) as { jwt_token: string };
      const created = await fetch(`${base}/user`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ name: 'ada', email: 'ada@example.test' }),
      });
      expect(created.status).toBe(201);
      // The welcome mail (its set-password link) as an .eml file in the outbox.
      await eventually(() => entries(dir).find((e) => /^outbox\/[^.].*\.eml$/.test(e.file)), 'the welcome mail');
      const files = entries(dir).map((e) => e.file);
      for (const expected of ['jwt-secret', 'accounts.lock', 'pgdata/global/pg_control', 'pgdata/PG_VERSION']) expect(files).toContain(expected);
      expect(files.some((f) => f.startsWith('pgdata/pg_wal/0000'))).toBe(true);
      expect(notPrivate(dir)).toEqual([]);
    } finally {
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }
    expect(notPrivate(dir)).toEqual([]);
    expect(server.output()).not.toContain('private to this user'); // nothing to mend: it was made so
    fs.rmSync(parent, { recursive: true, force: true });
  }, 120_000);

  it('makes a data directory that an older version left open private at start, server and CLI alike, and says so once in the log', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-opened-'));
    const embedded = { DATA_DIR: dir, PORT: '0', BCRYPT_COST: '4' };
    const first = await startServer(embedded);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const opened = openToAll(dir);
    expect(opened).toBeGreaterThan(900);
    const second = await startServer(embedded);
    try {
      const fixes = second
        .output()
        .split('\n')
        .filter((l) => l.includes('private to this user'))
        .map((l) => JSON.parse(l));
      expect(fixes).toEqual([expect.objectContaining({ level: 40, dir, fixed: opened })]);
      expect(notPrivate(dir)).toEqual([]);
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }

    // The CLI opens the same directory by the same rule; its log line goes to stderr, not into its answer.
    const reopened = openToAll(dir);
    const cli = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'migrate'], { cwd: root, env: { PATH: process.env.PATH, ...embedded } });
    let out = '';
    let err = '';
    cli.stdout.on('data', (c) => (out += c));
    cli.stderr.on('data', (c) => (err += c));
    expect(await new Promise((resolve) => cli.on('exit', resolve))).toBe(0);
    expect(out).toBe('already up to date\n');
    expect(JSON.parse(err)).toMatchObject({ level: 40, dir, fixed: reopened });
    expect(notPrivate(dir)).toEqual([]);
    fs.rmSync(dir, { recursive: true, force: true });
  }, 120_000);
});
