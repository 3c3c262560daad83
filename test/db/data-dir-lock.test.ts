import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataDirLockedError, lockDataDir } from '../../src/db/data-dir-lock';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-lock-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const lockFile = () => path.join(dir, 'accounts.lock');
const holder = (pid: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ pid, host: os.hostname(), procStart: null, started: '2026-11-30T00:00:00.000Z', command: 'node server.js', ...extra });

/** A process that stays alive until killed. */
function sleeper() {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  return child;
}

describe('the data directory lock', () => {
  it('is taken and released; a lock naming this very process (a container restarted with its old pid) is taken over', () => {
    const release = lockDataDir(dir);
    const recorded = JSON.parse(fs.readFileSync(lockFile(), 'utf8'));
    expect(recorded).toMatchObject({ pid: process.pid, host: os.hostname() });
    // The same process asking again counts as a new process finding its own pid: it is the test's
    // stand-in for a container restarted with the same pid, so the lock is taken over.
    const again = lockDataDir(dir);
    again();
    expect(fs.existsSync(lockFile())).toBe(false);
    release(); // releasing a lock no longer ours leaves the file alone
    lockDataDir(dir)();
  });

  it('refuses while a live process holds it, with a message naming the directory and the process', async () => {
    const child = sleeper();
    try {
      fs.writeFileSync(lockFile(), holder(child.pid!));
      let error: unknown;
      try {
        lockDataDir(dir);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(DataDirLockedError);
      expect((error as Error).message).toContain(dir);
      expect((error as Error).message).toContain(`process ${child.pid}`);
      expect((error as Error).message).toContain('node server.js');
      expect(JSON.parse(fs.readFileSync(lockFile(), 'utf8')).pid).toBe(child.pid);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('takes over the lock of a process that died, and of a pid since reused by another process', async () => {
    const child = sleeper();
    const dead = child.pid!;
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    fs.writeFileSync(lockFile(), holder(dead));
    lockDataDir(dir)();

    const other = sleeper();
    try {
      // Alive, but not the process that wrote the lock: its start time differs.
      fs.writeFileSync(lockFile(), holder(other.pid!, { procStart: '1' }));
      const release = lockDataDir(dir);
      expect(JSON.parse(fs.readFileSync(lockFile(), 'utf8')).pid).toBe(process.pid);
      release();
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('takes over a lock left empty by a crash', () => {
    fs.writeFileSync(lockFile(), '');
    lockDataDir(dir)();
  });
});
