import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { isAlive } from '../../src/db/data-dir-lock';

/**
 * A throwaway Postgres cluster for tests that must stop (or crash) a database: its own data
 * directory in a temp dir, its own free TCP port on 127.0.0.1 and its own socket directory, trust
 * authentication for the superuser `postgres`. It never touches the shared cluster on 5432.
 *
 * initdb and postgres refuse to run as root; as root the binaries run as the `postgres` OS user
 * (`runuser -u postgres --`) and the temp dir is handed to that user.
 */
export interface Cluster {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  /** The temp dir holding the data directory (`data/`), the sockets and `postgres.log`. */
  dir: string;
  /** `pg_ctl stop -m fast|immediate`, waiting until the postmaster is gone. */
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  /** `pg_ctl start`, waiting until it accepts connections (after crash recovery if need be). */
  start(): Promise<void>;
  /**
   * SIGSTOP (freeze) or SIGCONT (thaw) to the postmaster and every process it started: a server
   * that keeps its sockets open and answers nothing. The postmaster is frozen first (it starts no
   * new backend meanwhile) and thawed last. Returns the pids signalled.
   */
  signalAll(signal: 'SIGSTOP' | 'SIGCONT'): number[];
  /** Stops it (immediate) if it runs and removes the temp dir. Safe to call twice. */
  destroy(): Promise<void>;
  /** The server's own log, for failure messages. */
  log(): string;
}

const SHARED_PORT = 5432;

/** The installed server's binaries: `pg_config --bindir`, else the newest /usr/lib/postgresql/<v>/bin. */
export function postgresBinDir(): string {
  const candidates: string[] = [];
  if (process.env.PG_BINDIR) candidates.push(process.env.PG_BINDIR);
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    // no pg_config on PATH: look in the Debian layout
  }
  try {
    const versions = fs
      .readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch {
    // not Debian
  }
  const found = candidates.find((dir) => fs.existsSync(path.join(dir, 'initdb')) && fs.existsSync(path.join(dir, 'pg_ctl')));
  if (!found) throw new Error(`no Postgres server binaries (initdb, pg_ctl) found; looked in: ${candidates.join(', ') || 'nothing'}`);
  return found;
}

function asRoot(): boolean {
  return process.getuid?.() === 0;
}

function postgresUser(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

function chownTree(dir: string, uid: number, gid: number): void {
  fs.chownSync(dir, uid, gid);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) chownTree(p, uid, gid);
    else fs.chownSync(p, uid, gid);
  }
}

/** Runs one of the server's binaries (as `postgres` when we are root); rejects with its output. */
function run(bin: string, args: string[], cwd: string, timeoutMs = 90_000): Promise<string> {
  const [file, argv] = asRoot() ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  return new Promise((resolve, reject) => {
    execFile(
      file,
      argv,
      { cwd, timeout: timeoutMs, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C' } },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${path.basename(bin)} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
        else resolve(`${stdout}${stderr}`);
      },
    );
  });
}

/** A TCP port nobody listens on right now (never 5432). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port && port !== SHARED_PORT ? resolve(port) : reject(new Error(`bad free port ${port}`))));
    });
  });
}

/** The pid in a data directory's postmaster.pid, if there is one. */
function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The pids whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/**
 * initdb into a fresh temp dir and start it on a free port. `parentDir`: where its temp dir goes
 * (a small file system of the test's own, say; the system's temp dir by default). `settings` go
 * into postgresql.conf after the suite's own (e.g. `shared_preload_libraries` for bench/db-cost.js).
 */
export async function startCluster(options: { parentDir?: string; settings?: Record<string, string> } = {}): Promise<Cluster> {
  const settings = options.settings ?? {};
  const bindir = postgresBinDir();
  const dir = fs.mkdtempSync(path.join(options.parentDir ?? os.tmpdir(), 'accounts-pgcluster-'));
  const dataDir = path.join(dir, 'data');
  const socketDir = path.join(dir, 'sock');
  const logFile = path.join(dir, 'postgres.log');
  fs.mkdirSync(socketDir);
  if (asRoot()) {
    const { uid, gid } = postgresUser();
    chownTree(dir, uid, gid);
  }
  const pgCtl = path.join(bindir, 'pg_ctl');
  let destroyed = false;
  const readLog = (): string => {
    try {
      return fs.readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };

  try {
    await run(path.join(bindir, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync'], dir);
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const confFile = path.join(dataDir, 'postgresql.conf');
  const baseConf = fs.readFileSync(confFile, 'utf8');
  const configure = (port: number): void => {
    fs.writeFileSync(
      confFile,
      `${baseConf}\n# accounts fault tests\n` +
        `port = ${port}\n` +
        `listen_addresses = '127.0.0.1'\n` +
        `unix_socket_directories = '${socketDir}'\n` +
        `fsync = on\n` +
        `synchronous_commit = on\n` +
        `max_connections = 50\n` +
        `shared_buffers = 16MB\n` +
        `logging_collector = off\n` +
        Object.entries(settings)
          .map(([k, v]) => `${k} = '${v}'\n`)
          .join(''),
    );
  };

  const pgStart = (): Promise<string> => run(pgCtl, ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start'], dir);

  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    configure(port);
    try {
      await pgStart();
      break;
    } catch (err) {
      // Someone took the port between our probe and the postmaster's bind: try another one.
      const log = readLog();
      if (attempt < 4 && /could not (bind|create listen socket)|already in use/i.test(log)) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`${(err as Error).message}\n--- postgres.log ---\n${log}`);
    }
  }

  const cluster: Cluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    log: readLog,
    async stop(mode) {
      await run(pgCtl, ['-D', dataDir, '-m', mode, '-w', '-t', '60', 'stop'], dir);
    },
    async start() {
      try {
        await pgStart();
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- postgres.log ---\n${readLog()}`);
      }
    },
    signalAll(signal) {
      const pid = postmasterPid(dataDir);
      if (pid === undefined || !isAlive(pid)) throw new Error('the cluster is not running');
      const children = childrenOf(pid);
      const order = signal === 'SIGSTOP' ? [pid, ...children] : [...children, pid];
      for (const p of order) {
        try {
          process.kill(p, signal);
        } catch {
          // a backend that ended meanwhile
        }
      }
      // A backend forked between the listing and the postmaster's stop: once more for stragglers.
      if (signal === 'SIGSTOP') for (const p of childrenOf(pid).filter((c) => !children.includes(c))) process.kill(p, signal);
      return order;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      // A frozen cluster cannot be stopped: thaw it first.
      const frozen = postmasterPid(dataDir);
      if (frozen !== undefined && isAlive(frozen)) {
        for (const p of [...childrenOf(frozen), frozen]) {
          try {
            process.kill(p, 'SIGCONT');
          } catch {
            // gone
          }
        }
      }
      const pid = postmasterPid(dataDir);
      if (pid !== undefined && isAlive(pid)) {
        try {
          await run(pgCtl, ['-D', dataDir, '-m', 'immediate', '-w', '-t', '30', 'stop'], dir);
        } catch {
          // fall through to the kill below
        }
        // Only ever our own postmaster: the pid from our data directory, running on our data directory.
        if (isAlive(pid)) {
          let cmdline = '';
          try {
            cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
          } catch {
            // gone meanwhile
          }
          if (cmdline.includes(dataDir)) process.kill(pid, 'SIGKILL');
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}
