import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config';
import { createContainer, type Container } from './container';
import { lockDataDir } from './db/data-dir-lock';
import { openDatabase, type Database } from './db/database';
import { migrateLatest } from './db/migrate';
import { AUDIT_KEY, loadKeys } from './keys';
import { loadOrCreateJwtSecret } from './secrets';

export interface Runtime {
  config: Config;
  database: Database;
  container: Container;
}

/**
 * What both the server and the CLI need: the database, migrated, and the services over it. The
 * embedded database's directory is locked first (one process at a time), until the database closes.
 */
export async function openRuntime(config: Config, log: Logger, options: { processMetrics?: boolean } = {}): Promise<Runtime> {
  const release = config.databaseUrl ? () => undefined : lockDataDir(config.dataDir);
  let database: Database;
  try {
    const opened = await openDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: path.join(config.dataDir, 'pgdata'),
      poolSize: config.databasePoolSize,
      log,
    });
    database = { ...opened, close: () => opened.close().finally(release) };
  } catch (err) {
    release();
    throw err;
  }
  try {
    const applied = await migrateLatest(database.knex);
    if (applied.length) log.info({ migrations: applied }, 'applied migrations');
    const jwtSecrets = config.jwtSecrets.length ? config.jwtSecrets : [loadOrCreateJwtSecret(config.dataDir)];
    if (!config.jwtSecrets.length && config.databaseUrl) {
      log.warn('JWT_SECRET is not set: using the secret kept in DATA_DIR; instances sharing this database must share it');
    }
    // loadConfig has required AUDIT_KEY with DATABASE_URL; the embedded default keeps one in DATA_DIR.
    const auditKeys = loadKeys(AUDIT_KEY, config.auditKeys, { dataDir: config.dataDir, required: Boolean(config.databaseUrl), create: true });
    // PGlite runs no autovacuum: housekeeping analyzes its tables hourly, as autovacuum would on a server.
    const container = createContainer(database.knex, { ...config, jwtSecrets, auditKeys }, log, {
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
