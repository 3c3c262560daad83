import type { Knex } from 'knex';
import type { Pool, QueryResultRow } from 'pg';

/**
 * A statement of the hot path, run as a named prepared statement, so each connection parses and
 * plans it once rather than per request.
 */
export interface PreparedStatement {
  /** Unique per SQL text: pg refuses one name for two texts on a connection. */
  readonly name: string;
  /** SQL with `$1`, `$2`... placeholders. */
  readonly text: string;
}

/**
 * Runs a prepared statement on the pool Knex itself uses (pg's public API: Knex's own runner cost
 * more per call than the statement's driver work, and these run on every authenticated request).
 * Without a pool (a store bound to a transaction) it runs through Knex, on the transaction's
 * connection. Knex's `query` event is emitted either way, so query logging and the tests' query
 * counts see these statements as they see Knex's.
 */
export function runPrepared<R extends QueryResultRow>(db: Knex, pool: Pool | undefined, statement: PreparedStatement, values: unknown[]): Promise<R[]> {
  if (!pool) {
    const bindings: unknown[] = [];
    const sql = statement.text.replace(/\$(\d+)/g, (_m, n: string) => (bindings.push(values[Number(n) - 1]), '?'));
    return db.raw<{ rows: R[] }>(sql, bindings as Knex.RawBinding[]).then((r) => r.rows);
  }
  if (db.listenerCount('query') > 0) db.emit('query', { sql: statement.text, bindings: values, name: statement.name });
  // No async wrapper: on the hot path each one costs a promise and a turn of the microtask queue.
  return pool.query<R>({ name: statement.name, text: statement.text, values }).then((r) => r.rows);
}
