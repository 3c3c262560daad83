import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openEmbedded } from '../../src/db/embedded';
import { startServer } from '../helpers/server-process';

/**
 * The embedded default's first start (issue 21, item 8): initdb runs in a short-lived child
 * process of the server (src/db/embedded.ts), whose memory goes with it; the database it makes is
 * renamed into place only when complete. These run the real server (through tsx) on the embedded
 * default whatever database the suite runs on: it is the embedded default that is tested.
 */

const root = path.join(__dirname, '..', '..');
const ADMIN = { ADMIN_EMAIL: 'root@example.test', ADMIN_PASSWORD: 'root password 1' };

const dirs: string[] = [];
function dataDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-embedded-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** The pid of a running process whose command line holds `text`, and its parent's. */
function findProcess(text: string): { pid: number; ppid: number } | undefined {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (!fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) continue;
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      return { pid: Number(entry), ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) };
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** Polls `find` until it returns something (a long deadline: the machine is shared). */
async function eventually<T>(find: () => T | undefined, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The server (src/server.ts through tsx) as a process, without waiting for it to listen. */
function spawnServer(env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { cwd: root, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** SIGTERM, and a clean exit. */
async function stop(server: { child: ChildProcess; exited: Promise<number | null> }): Promise<void> {
  server.child.kill('SIGTERM');
  expect(await server.exited).toBe(0);
}

async function adminLogin(port: number): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: ADMIN.ADMIN_EMAIL, password: ADMIN.ADMIN_PASSWORD }),
  });
}

describe('the embedded database, first start', () => {
  it('is made by a child process of the server, and the server then serves on it and after a restart', async () => {
    const dir = dataDir();
    const env = { DATA_DIR: dir, PORT: '0', BCRYPT_COST: '4', ...ADMIN };
    const starting = startServer(env);
    // initdb runs in a child of the server, on the scratch directory beside pgdata.
    const initdb = await eventually(() => findProcess(path.join(dir, 'pgdata.creating')), 'the initdb child');
    const server = await starting;
    try {
      expect(initdb.ppid).toBe(server.child.pid);
      expect(findProcess(path.join(dir, 'pgdata.creating'))).toBeUndefined(); // it is gone
      expect(fs.existsSync(path.join(dir, 'pgdata', 'PG_VERSION'))).toBe(true);
      expect(fs.existsSync(path.join(dir, 'pgdata.creating'))).toBe(false);
      expect(server.output()).toContain('"msg":"created the embedded database"');
      const login = await adminLogin(server.port);
      expect(login.status).toBe(200);
      const { jwt_token: token } = (await login.json()) as { jwt_token: string };
      const created = await fetch(`http://127.0.0.1:${server.port}/user?send_mail=0`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ name: 'ada', email: 'ada@example.test', password: 'ada password 1' }),
      });
      expect(created.status).toBe(201);
    } finally {
      await stop(server);
    }
    // A restart opens what is there: no second initdb, the user made before is there.
    const again = await startServer(env);
    try {
      expect(again.output()).not.toContain('creating the embedded database');
      const login = await adminLogin(again.port);
      const { jwt_token: token } = (await login.json()) as { jwt_token: string };
      const users = (await (await fetch(`http://127.0.0.1:${again.port}/user?q=ada`, { headers: { Authorization: `Bearer ${token}` } })).json()) as { email: string }[];
      expect(users.map((u) => u.email)).toEqual(['ada@example.test']);
    } finally {
      await stop(again);
    }
  }, 180_000);

  it('stops the server with one clear line when the child making it is killed (out of memory), leaves nothing half made, and the next start succeeds', async () => {
    const dir = dataDir();
    const env = { DATA_DIR: dir, PORT: '0', BCRYPT_COST: '4', ...ADMIN };
    const server = spawnServer(env);
    const initdb = await eventually(() => findProcess(path.join(dir, 'pgdata.creating')), 'the initdb child');
    expect(initdb.ppid).toBe(server.child.pid);
    process.kill(initdb.pid, 'SIGKILL'); // what the kernel's OOM killer does
    expect(await server.exited).toBe(1); // no hang: jest's timeout would fail it
    const pgdata = path.join(dir, 'pgdata');
    expect(server.output()).toContain(`start-up failed: could not create the embedded database in ${pgdata}: the child process making it was killed (SIGKILL: out of memory?`);
    expect(server.output()).not.toContain('    at '); // one line, no stack
    expect(fs.existsSync(pgdata)).toBe(false);
    expect(fs.existsSync(`${pgdata}.creating`)).toBe(false);
    expect(fs.existsSync(path.join(dir, 'accounts.lock'))).toBe(false);

    const again = await startServer(env);
    try {
      expect((await adminLogin(again.port)).status).toBe(200);
    } finally {
      await stop(again);
    }
  }, 180_000);

  it('refuses a pgdata that holds files but no database, naming it, and leaves it as it is', async () => {
    const dir = dataDir();
    const pgdata = path.join(dir, 'pgdata');
    fs.mkdirSync(pgdata, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(pgdata, 'notes.txt'), 'not a database', { mode: 0o600 });
    const server = spawnServer({ DATA_DIR: dir, PORT: '0', BCRYPT_COST: '4' });
    expect(await server.exited).toBe(1);
    expect(server.output()).toContain(`start-up failed: ${pgdata} holds files but no database (no PG_VERSION)`);
    expect(server.output()).not.toContain('    at ');
    expect(fs.readdirSync(pgdata)).toEqual(['notes.txt']);
  }, 120_000);

  it('is never made by a reopen (after a PANIC): a database gone from under the service is an error, nothing is created', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-reopen-'));
    dirs.push(dir);
    const pgdata = path.join(dir, 'pgdata');
    await expect(openEmbedded(pgdata, { existing: true })).rejects.toThrow(`${pgdata} holds no database any more (no PG_VERSION)`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
