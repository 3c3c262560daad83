import fs from 'node:fs';
import path from 'node:path';

/**
 * The process's umask from start-up on (as Postgres sets its own): whatever it creates with
 * Node's defaults is its user's alone, directories 0700 and files 0600. PGlite sets some modes
 * itself (its first start writes about 970 files 0666), so the data directory is also walked
 * (`makePrivate`).
 */
export const PRIVATE_UMASK = 0o077;

/** An entry of the data directory that this process cannot make private (another user's). */
export class DataDirNotPrivateError extends Error {
  constructor(
    readonly file: string,
    cause: NodeJS.ErrnoException,
  ) {
    super(`cannot make ${file} private to this user (${cause.code ?? cause.message}): give it to the service's user, or remove it`);
    this.name = 'DataDirNotPrivateError';
  }
}

/** Group and other permissions off, and the set-id and sticky bits: the owner's bits alone stay. */
const PRIVATE = 0o700;

function privatize(file: string, mode: number): number {
  if ((mode & 0o7777 & ~PRIVATE) === 0) return 0;
  try {
    fs.chmodSync(file, mode & PRIVATE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0; // gone meanwhile: nothing to hide
    throw new DataDirNotPrivateError(file, err as NodeJS.ErrnoException);
  }
  return 1;
}

/** An entry's mode, not following a link; undefined once it is gone. */
function modeOf(file: string): number | undefined {
  try {
    return fs.lstatSync(file).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Makes `root` and everything under it private to this user: directories 0700, files 0600 (the
 * owner's own bits are kept, group and others lose theirs). Symbolic links under it are neither
 * followed nor changed. Returns how many entries it changed; nothing when `root` does not exist.
 * Throws DataDirNotPrivateError for an entry it cannot change.
 */
export function makePrivate(root: string): number {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  let changed = privatize(root, stat.mode);
  if (!stat.isDirectory()) return changed;
  const pending = [root];
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    for (const entry of entries) {
      if (entry.isSymbolicLink()) continue;
      const file = path.join(dir, entry.name);
      const mode = modeOf(file);
      if (mode === undefined) continue;
      changed += privatize(file, mode);
      if (entry.isDirectory()) pending.push(file);
    }
  }
  return changed;
}

/**
 * The mail files (`*.eml`, and those being written) directly in `dir`, for an outbox directory
 * outside the data directory: its own mode, and anything else in it, are the operator's business.
 */
export function makeMailPrivate(dir: string): number {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  let changed = 0;
  for (const entry of entries) {
    if (!entry.isFile() || !/\.eml(\.tmp)?$/.test(entry.name)) continue;
    const file = path.join(dir, entry.name);
    const mode = modeOf(file);
    if (mode !== undefined) changed += privatize(file, mode);
  }
  return changed;
}
