import type { Knex } from 'knex';
import type { PoolClient, QueryResult, QueryResultRow } from 'pg';

/**
 * A statement of the hot path: SQL fixed at start (rendered by Knex once) and run as a named
 * prepared statement, so each connection parses and plans it once rather than per request.
 */
export interface PreparedStatement {
  /** Unique per SQL text: pg refuses one name for two texts on a connection. */
  readonly name: string;
  /** SQL with `$1`, `$2`... placeholders. */
  readonly text: string;
}

/** Renders a Knex query once into a prepared statement, checking its bindings are the expected placeholders. */
export function prepare(name: string, query: Knex.Sql, placeholders: readonly unknown[]): PreparedStatement {
  const native = query.toNative();
  if (native.bindings.map(String).join() !== placeholders.map(String).join()) {
    throw new Error(`${name}: bindings ${native.bindings.join()} are not ${placeholders.join()}`);
  }
  return { name, text: native.sql };
}

/**
 * Runs a prepared statement on a connection of the Knex pool (or of the transaction `db` is
 * bound to) with pg directly. Knex's runner cost more per call than the statement's own driver
 * work, and these run on every authenticated request. The `query` event is still emitted, so
 * query logging and the tests' query counts see these statements as they see Knex's.
 */
export async function runPrepared<R extends QueryResultRow>(db: Knex, statement: PreparedStatement, values: unknown[]): Promise<R[]> {
  if (db.listenerCount('query') > 0) db.emit('query', { sql: statement.text, bindings: values, name: statement.name });
  const client = db.client as Knex.Client;
  const connection = (await client.acquireConnection()) as PoolClient;
  try {
    const result: QueryResult<R> = await connection.query<R>({ name: statement.name, text: statement.text, values });
    return result.rows;
  } finally {
    // Knex releases synchronously (a transaction's client keeps its connection) and returns a
    // settled promise: waiting on it would only cost a turn of the microtask queue.
    void client.releaseConnection(connection);
  }
}
