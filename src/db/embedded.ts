import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import { PGlite } from '@electric-sql/pglite';
import type { Logger } from 'pino';

/**
 * How the embedded database (PGlite) is created and opened, kept small (issue 21, item 8;
 * docs/operations.md, "Memory" has the figures).
 *
 * - Its first start (initdb) runs in a short-lived child process: PGlite makes the database in a
 *   second instance of its own, with initdb's wasm module, and the serving process would keep
 *   what that took (about 0.9 GB resident) for as long as it runs. The child makes it into
 *   `<dir>.creating` and exits; the directory is renamed into place only once complete, so a
 *   child that is killed (out of memory, a stop during the first start) leaves no half-made
 *   database behind, only the scratch directory that the next start removes.
 * - It is opened with a 16 MB buffer cache instead of initdb's 128 MB (EMBEDDED_SETTINGS): the
 *   wasm heap keeps every page it has touched, so the cache would grow to its size under load.
 * - Its wasm is compiled by V8's baseline compiler only (openEmbedded).
 */

/**
 * Postgres settings of the embedded database, given at its start (`-c`, over postgresql.conf):
 * `shared_buffers` 16 MB (PGlite's postgresql.conf, from initdb, says 128 MB; `wal_buffers`
 * follows it, 1/32 of it). Measured (bench `embedded_memory`): 16 MB keeps the process under
 * 250 MB idle and 350 MB after two minutes of mixed load; a larger database than the cache is
 * read through the operating system's page cache, as Postgres does.
 */
export const EMBEDDED_SETTINGS: Readonly<Record<string, string>> = Object.freeze({ shared_buffers: '16MB' });

/** PGlite's own start parameters plus EMBEDDED_SETTINGS. */
export function embeddedStartParams(): string[] {
  return [...PGlite.defaultStartParams, ...Object.entries(EMBEDDED_SETTINGS).flatMap(([name, value]) => ['-c', `${name}=${value}`])];
}

/** The first start of the embedded database failed: one line, naming the directory and why. */
export class EmbeddedInitError extends Error {
  override readonly name = 'EmbeddedInitError';
}

/** How long the child making the database may take (it needs about 2 s of CPU; measured 20-30 s on a busy 2-core machine). */
const INIT_TIMEOUT_MS = 5 * 60_000;

/**
 * What the child runs (`node -e`, so it runs the same from dist/ and from the TypeScript
 * sources): PGlite's first start in the directory given, then a clean close. Its wasm is compiled
 * by Liftoff only too (measured: 2.0 s of CPU instead of 3.6 s, a peak of 740 MB instead of 820
 * MB). Its stdin is a pipe from the parent, which never writes: its end means the parent is gone,
 * and the child stops.
 */
const CHILD_SCRIPT = `
process.stdin.on('end', () => process.exit(1)).resume(); // the parent died: stop
const { PGlite } = require(process.argv[1]);
PGlite.create({ dataDir: process.argv[2] })
  .then((db) => db.close())
  .then(() => process.exit(0), (err) => {
    process.stderr.write(String((err && err.message) || err).trim() + '\\n');
    process.exit(1);
  });
`;

/**
 * The embedded database in `dir` (or in memory, 'memory://'), made first if the directory holds
 * none (in a child process), opened with EMBEDDED_SETTINGS. `existing`: never made (a reopen of a
 * database that was open: one gone from under the service is an error, not a new empty one).
 */
export async function openEmbedded(dir: string, options: { log?: Logger; initTimeoutMs?: number; existing?: boolean } = {}): Promise<PGlite> {
  // Its wasm compiled by Liftoff only, V8's baseline compiler, never tiered up by TurboFan, whose
  // code for PGlite stays resident: about 65 MB (a restarted service idle: 286 MB with it, 224 MB
  // without). Wasm flags are read when a module is compiled: this applies to the PGlite made here.
  v8.setFlagsFromString('--liftoff-only');
  if (!dir.startsWith('memory://') && !fs.existsSync(path.join(dir, 'PG_VERSION'))) {
    if (options.existing) throw new EmbeddedInitError(`${dir} holds no database any more (no PG_VERSION)`);
    const started = Date.now();
    options.log?.info({ dir }, 'creating the embedded database (its first start, in a child process)');
    await createEmbedded(dir, options.initTimeoutMs ?? INIT_TIMEOUT_MS);
    options.log?.info({ dir, ms: Date.now() - started }, 'created the embedded database');
  }
  return PGlite.create({ dataDir: dir, startParams: embeddedStartParams() });
}

/**
 * Makes a new database in `dir` (which must not exist, or be empty) in a child process: into
 * `<dir>.creating`, renamed to `dir` once the child has closed it. A child that fails, is killed
 * or takes longer than `timeoutMs` is an EmbeddedInitError, and nothing is left behind.
 */
async function createEmbedded(dir: string, timeoutMs: number): Promise<void> {
  if (fs.existsSync(dir)) {
    if (fs.readdirSync(dir).length > 0) {
      throw new EmbeddedInitError(`${dir} holds files but no database (no PG_VERSION): move it aside, or restore a backup into its place (see docs/operations.md, "Memory")`);
    }
    fs.rmdirSync(dir);
  }
  const scratch = `${dir}.creating`;
  fs.rmSync(scratch, { recursive: true, force: true }); // a first start that was killed
  const fail = (why: string) => {
    fs.rmSync(scratch, { recursive: true, force: true });
    return new EmbeddedInitError(`could not create the embedded database in ${dir}: ${why}`);
  };
  const child = spawn(process.execPath, ['--liftoff-only', '-e', CHILD_SCRIPT, require.resolve('@electric-sql/pglite'), scratch], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.on('error', (error) => resolve({ code: null, signal: null, error }));
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  clearTimeout(timer);
  if (ended.error) throw fail(`the child process did not start (${ended.error.message})`);
  if (ended.signal) {
    throw fail(
      timedOut
        ? `the child process making it did not finish within ${Math.round(timeoutMs / 1000)} s`
        : `the child process making it was killed (${ended.signal}${ended.signal === 'SIGKILL' ? ': out of memory? the first start needs about 1 GB while it makes the database' : ''})`,
    );
  }
  if (ended.code !== 0) throw fail(lastLine(stderr) || `the child process making it exited with ${ended.code}`);
  fs.renameSync(scratch, dir);
}

/** The last non-empty line of what a process wrote. */
function lastLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).pop() ?? '';
}
