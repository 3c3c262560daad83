import fs from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { lockDataDir } from './data-dir-lock';

/**
 * Backup and restore of the embedded database (docs/operations.md, "Upgrades, rollbacks, backups"): PGlite's own
 * dump of its data directory (a gzipped tar), made and restored while the service is stopped (the
 * data directory's lock says whether it is: DataDirLockedError otherwise). The keys in DATA_DIR
 * (jwt-secret, mfa-key, audit-key) are not in it: they are kept apart from the database's
 * backups, and backed up apart.
 */

/** Writes the dump of `DATA_DIR/pgdata` to `file` (which must not exist; made private); its size. */
export async function backupEmbedded(dataDir: string, file: string): Promise<number> {
  const release = lockDataDir(dataDir);
  try {
    const pgdata = path.join(dataDir, 'pgdata');
    if (!fs.existsSync(pgdata)) throw new BackupError(`no embedded database in ${dataDir} to back up`);
    const db = await PGlite.create(pgdata);
    try {
      const dump = Buffer.from(await (await db.dumpDataDir('gzip')).arrayBuffer());
      fs.writeFileSync(file, dump, { flag: 'wx', mode: 0o600 });
      return dump.length;
    } finally {
      await db.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new BackupError(`${file} exists already: choose another name`);
    throw err;
  } finally {
    release();
  }
}

/**
 * Restores a dump made by backupEmbedded into `DATA_DIR/pgdata`. The database there is kept,
 * renamed `pgdata.before-restore-<time>`, for the operator to delete once the restore is checked;
 * if the dump cannot be loaded it is put back. Returns the kept directory's path, if any.
 */
export async function restoreEmbedded(dataDir: string, file: string, now = new Date()): Promise<string | undefined> {
  const release = lockDataDir(dataDir);
  try {
    let dump: Buffer;
    try {
      dump = fs.readFileSync(file);
    } catch (err) {
      throw new BackupError(`cannot read ${file}: ${(err as Error).message}`);
    }
    const pgdata = path.join(dataDir, 'pgdata');
    const kept = fs.existsSync(pgdata) ? `${pgdata}.before-restore-${now.toISOString().replace(/[:.]/g, '-')}` : undefined;
    if (kept) fs.renameSync(pgdata, kept);
    try {
      const db = await PGlite.create({ dataDir: pgdata, loadDataDir: new Blob([Uint8Array.from(dump)]) });
      try {
        await db.query('select 1');
      } finally {
        await db.close();
      }
    } catch (err) {
      fs.rmSync(pgdata, { recursive: true, force: true });
      if (kept) fs.renameSync(kept, pgdata);
      throw new BackupError(`${file} is not a backup of the embedded database (${(err as Error).message}); nothing changed`);
    }
    return kept;
  } finally {
    release();
  }
}

/** A backup or restore that cannot be done as asked: one line, exit status 1. */
export class BackupError extends Error {
  override readonly name = 'BackupError';
}
