import { spawn } from 'node:child_process';
import fs from 'node:fs';
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

  it('stops at start-up on a Postgres server without AUDIT_KEY, naming it', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: root,
      env: { PATH: process.env.PATH, DATA_DIR: dataDir, DATABASE_URL: 'postgres://accounts@127.0.0.1:1/accounts', JWT_SECRET: 'a'.repeat(32) },
    });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    expect(await new Promise((resolve) => child.on('exit', resolve))).toBe(1);
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
});
