import path from 'node:path';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from './config';
import { createContainer, type Container } from './container';
import { lockDataDir } from './db/data-dir-lock';
import { openDatabase, type Database } from './db/database';
import { migrateLatest } from './db/migrate';
import { makeMailPrivate, makePrivate } from './db/private-files';
import { AUDIT_KEY, JWT_SECRET, MFA_KEY, loadKeys, type KeySpec } from './keys';

export interface Runtime {
  config: Config;
  database: Database;
  container: Container;
}

/**
 * What both the server and the CLI need: the database, migrated, and the services over it. The
 * embedded database's directory is locked first (one process at a time), until the database closes.
 */
export async function openRuntime(
  config: Config,
  log: Logger,
  /** `migrate: false`: leave the schema as it is (the CLI's migrate commands decide what to do with it). */
  options: { processMetrics?: boolean; migrate?: boolean } = {},
): Promise<Runtime> {
  const migrate = options.migrate !== false;
  const release = config.databaseUrl ? () => undefined : lockDataDir(config.dataDir);
  let database: Database;
  try {
    const fixed = makeFilesPrivate(config);
    if (fixed > 0) {
      log.warn(
        { dir: config.dataDir, fixed },
        `made ${fixed} files and directories of the data directory private to this user (directories 0700, files 0600): an older version, or a stop without time to tidy up, had left them open to other users`,
      );
    }
    if (config.databaseUrl && migrate) {
      // Migrations run on a connection of their own, without the serving pool's statement timeout
      // (an index built on a large table may take minutes).
      const migrator = await openDatabase({ databaseUrl: config.databaseUrl, poolSize: 1, log });
      try {
        await applyMigrations(migrator.knex, log);
      } finally {
        await migrator.close();
      }
    }
    const opened = await openDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: path.join(config.dataDir, 'pgdata'),
      poolSize: config.databasePoolSize,
      acquireTimeoutMs: config.databaseAcquireTimeoutMs,
      // The CLI's migrate commands run on this pool: no statement timeout for them either.
      statementTimeoutMs: migrate ? config.databaseStatementTimeoutMs : undefined,
      log,
    });
    // What the embedded database writes as it runs (its first start: some 970 files 0666) is made
    // private again once it is open and once it is closed, before the lock goes.
    const close = () =>
      opened.close().finally(() => {
        try {
          makeFilesPrivate(config);
        } finally {
          release();
        }
      });
    database = { ...opened, close };
  } catch (err) {
    release();
    throw err;
  }
  try {
    // The embedded database has one connection, and no statement timeout to keep migrations from.
    if (!config.databaseUrl && migrate) await applyMigrations(database.knex, log);
    log.debug({ dir: config.dataDir, fixed: makeFilesPrivate(config) }, 'made the files the database wrote at start private');
    // loadConfig has required every key with DATABASE_URL; the embedded default keeps each in DATA_DIR.
    const keys = (spec: KeySpec, configured: readonly string[]) => loadKeys(spec, configured, { dataDir: config.dataDir, required: Boolean(config.databaseUrl), create: true });
    const jwtSecrets = keys(JWT_SECRET, config.jwtSecrets);
    const mfaKeys = keys(MFA_KEY, config.mfaKeys);
    const auditKeys = keys(AUDIT_KEY, config.auditKeys);
    // PGlite runs no autovacuum: housekeeping analyzes its tables hourly, as autovacuum would on a server.
    const container = createContainer(database.knex, { ...config, jwtSecrets, mfaKeys, auditKeys }, log, {
      pool: database.pool,
      analyzeEveryMs: database.kind === 'pglite' ? 3_600_000 : undefined,
      processMetrics: options.processMetrics,
    });
    return { config, database, container };
  } catch (err) {
    await database.close();
    throw err;
  }
}

/**
 * The data directory (all of it: the embedded database, the generated secret, the lock, the
 * default outbox) made private to this user; an outbox elsewhere has its mail files made private.
 * Returns how many entries it changed.
 */
function makeFilesPrivate(config: Config): number {
  let fixed = makePrivate(config.dataDir);
  const outbox = path.relative(config.dataDir, config.mailOutboxDir);
  if (!config.smtpUrl && (outbox.startsWith('..') || path.isAbsolute(outbox))) fixed += makeMailPrivate(config.mailOutboxDir);
  return fixed;
}

/** This build's pending migrations, logged; a newer build's left alone, with a warning. */
async function applyMigrations(knex: Knex, log: Logger): Promise<void> {
  const applied = await migrateLatest(
    knex,
    (newer) =>
      // A rollback of the build: the newer schema only added, and this build ignores what it does not know.
      log.warn({ migrations: newer }, 'the database has migrations of a newer build: running on it as it is'),
    {
      onWait: (err) =>
        log.warn(
          { err: err.message },
          'another instance is migrating the database: waiting for it (up to 10 minutes; if none is, a migration was cut short: `update knex_migrations_lock set is_locked = 0` once you know why)',
        ),
    },
  );
  if (applied.length) log.info({ migrations: applied }, 'applied migrations');
}
