import fs from 'node:fs';
import path from 'node:path';
import knex, { Knex } from 'knex';
import type { Logger } from 'pino';
import { PGlite } from '@electric-sql/pglite';
import { createPgConfig } from '@electric-sql/pglite/node-postgres';

export interface Database {
  knex: Knex;
  /** 'pglite' for the embedded database, 'postgres' for a server. */
  kind: 'pglite' | 'postgres';
  close(): Promise<void>;
}

export interface DatabaseOptions {
  databaseUrl?: string;
  /** Where the embedded database keeps its files; 'memory://' for none. */
  dataDir?: string;
  poolSize?: number;
  /** An already open PGlite (tests clone a migrated template). */
  pglite?: PGlite;
  /** Knex's own warnings (a dead pool connection replaced, say) go here at debug level, not to the console. */
  log?: Logger;
}

function knexLog(log: Logger | undefined): Knex.Config['log'] {
  const debug = (message: unknown) => log?.debug({ knex: String(message) }, 'knex');
  return { warn: debug, error: debug, deprecate: debug, debug };
}

/**
 * One code path for both databases: Knex always uses the `pg` client. Without a URL it talks to
 * an embedded PGlite through PGlite's node-postgres adapter (one connection: PGlite is single
 * threaded). With a URL the pool opens all its connections at start and keeps them, so no SCRAM
 * handshake competes with bcrypt for the thread pool during a burst of logins.
 */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.databaseUrl) {
    const size = options.poolSize ?? 10;
    const db = knex({
      client: 'pg',
      connection: options.databaseUrl,
      pool: { min: size, max: size, idleTimeoutMillis: 2 ** 31 - 1 },
      acquireConnectionTimeout: 10_000,
      log: knexLog(options.log),
    });
    // Concurrent acquires make the pool open every connection now, not during a burst.
    await Promise.all(Array.from({ length: size }, () => db.raw('select 1')));
    return { knex: db, kind: 'postgres', close: () => db.destroy() };
  }
  let pglite = options.pglite;
  const owned = !pglite;
  if (!pglite) {
    const dir = options.dataDir ?? 'memory://';
    if (!dir.startsWith('memory://')) fs.mkdirSync(path.dirname(path.resolve(dir)), { recursive: true });
    pglite = await PGlite.create(dir);
  }
  const instance = pglite;
  const db = knex({
    client: 'pg',
    connection: () => createPgConfig(instance) as unknown as Knex.PgConnectionConfig,
    pool: { min: 1, max: 1 },
    acquireConnectionTimeout: 60_000,
    log: knexLog(options.log),
  });
  return {
    knex: db,
    kind: 'pglite',
    close: async () => {
      await db.destroy();
      if (owned) await instance.close();
    },
  };
}
