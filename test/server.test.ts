import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openTestDatabase } from './helpers/test-database';

/** The real entry point, `src/server.ts`, as a process (through tsx, as `npm start` runs the build). */
const root = path.join(__dirname, '..');

interface Started {
  child: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<number | null>;
}

function start(env: NodeJS.ProcessEnv): Promise<Started> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split('\n').find((l) => l.includes('"msg":"listening"'));
      if (line) resolve({ child, port: JSON.parse(line).port, output: () => output, exited });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    void exited.then((code) => reject(new Error(`server exited with ${code}: ${output}`)));
    setTimeout(() => reject(new Error(`server did not start: ${output}`)), 40_000).unref();
  });
}

let dataDir: string;
let env: NodeJS.ProcessEnv;
let cleanup: () => Promise<void> = async () => undefined;

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-server-'));
  env = { DATA_DIR: dataDir, PORT: '0', BCRYPT_COST: '8', ADMIN_EMAIL: 'root@example.test', ADMIN_PASSWORD: 'root password 1' };
  if (process.env.DATABASE_URL) {
    const db = await openTestDatabase();
    await db.knex.destroy();
    env.DATABASE_URL = db.url;
    cleanup = db.close;
  }
}, 60_000);

afterAll(async () => {
  await cleanup();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

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

  it('lets one process at a time use an embedded data directory: a second server and the CLI refuse, naming it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-locked-'));
    const embedded = { DATA_DIR: dir, PORT: '0', BCRYPT_COST: '4' };
    const first = await start(embedded);
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
    const first = await start(env);
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
    expect(fs.statSync(path.join(dataDir, 'jwt-secret')).mode & 0o777).toBe(0o600);
    expect(first.output()).not.toContain('root password 1');
    expect(first.output()).not.toContain(token);

    // A login in flight when SIGTERM arrives still gets its answer; then the process ends cleanly.
    const inFlight = fetch(`${base}/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: 'root@example.test', password: 'root password 1' }),
    });
    await new Promise((r) => setTimeout(r, 5));
    first.child.kill('SIGTERM');
    expect((await inFlight).status).toBe(200);
    expect(await first.exited).toBe(0);

    // The token outlives the restart; the bootstrap admin is not made twice.
    const second = await start(env);
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
});
