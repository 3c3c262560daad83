import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** What the lock file records of its holder. */
export interface LockHolder {
  pid: number;
  host: string;
  /** The holder's start time as the kernel counts it (Linux), to tell a reused pid from the holder. */
  procStart: string | null;
  started: string;
  command: string;
}

export class DataDirLockedError extends Error {
  constructor(
    readonly dir: string,
    readonly holder: LockHolder,
    file: string,
  ) {
    super(
      `the data directory ${dir} is in use by process ${holder.pid} on ${holder.host} (${holder.command}, since ${holder.started}); ` +
        `stop that process first (if it is gone for good, delete ${file})`,
    );
    this.name = 'DataDirLockedError';
  }
}

const LOCK_FILE = 'accounts.lock';

/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot; null off Linux. */
function procStart(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command (field 2) is in parentheses and may hold spaces: count from after it.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether a process with this pid exists (it may belong to another user). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the recorded holder still runs: the same host, a live pid that is not ours (a
 * container restarted with the same pid finds its own pid in the file), and, where the kernel
 * says, the same start time (so a pid reused by another process does not count).
 */
function holds(holder: LockHolder): boolean {
  if (holder.host !== os.hostname()) return true; // another machine's process: we cannot tell, so it holds
  if (holder.pid === process.pid || !isAlive(holder.pid)) return false;
  const start = procStart(holder.pid);
  return holder.procStart === null || start === null || start === holder.procStart;
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as LockHolder;
    return typeof parsed.pid === 'number' ? parsed : undefined;
  } catch {
    return undefined; // gone, or being written
  }
}

/**
 * Only one process may use an embedded data directory (PGlite has no locking of its own: two
 * processes on one directory lose each other's writes). The lock is a file naming its holder,
 * created exclusively, as Postgres's postmaster.pid; a holder that died (SIGKILL, a crash) leaves
 * it stale, and the next process takes it over. Returns the release function.
 */
export function lockDataDir(dir: string): () => void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, LOCK_FILE);
  const me: LockHolder = {
    pid: process.pid,
    host: os.hostname(),
    procStart: procStart(process.pid),
    started: new Date().toISOString(),
    command: [path.basename(process.argv0), ...process.argv.slice(1).map((a) => path.relative(process.cwd(), a) || a)].join(' ').slice(0, 200),
  };
  const content = JSON.stringify(me);
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      fs.writeFileSync(file, content, { flag: 'wx', mode: 0o600 });
      return () => {
        if (readHolder(file)?.pid === me.pid) fs.rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readHolder(file);
    if (!holder) {
      // Being written by a process starting at this very moment, or left empty by a crash.
      if (attempt < 10) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        continue;
      }
    } else if (holds(holder)) {
      throw new DataDirLockedError(dir, holder, file);
    }
    // Stale: move it aside atomically, and make sure what was moved is the stale lock we read,
    // not one a process racing us has just written (if it is, put it back).
    const aside = `${file}.stale-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
    try {
      fs.renameSync(file, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const moved = readHolder(aside);
    if (moved && (!holder || moved.pid !== holder.pid || moved.started !== holder.started)) {
      try {
        fs.linkSync(aside, file);
      } catch {
        // Someone else holds it now: the next attempt reads and names them.
      }
    }
    fs.rmSync(aside, { force: true });
  }
  throw new Error(`could not take the lock ${file}`);
}
