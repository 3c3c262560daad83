import type pg from 'pg';

/** What a query ended with: its error, or its result (pg's, with `command`: 'COMMIT', 'INSERT', ...). */
export type QueryOutcomeListener = (err: unknown, result: { command?: string } | undefined) => void;

/**
 * Calls `listener` as each query of this connection ends, before the caller hears of it, in both
 * of pg's styles (a callback, or the promise `query` returns). The listener must not throw.
 */
export function onQueryOutcome(client: pg.PoolClient, listener: QueryOutcomeListener): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const last = args.length - 1;
    const callback = args[last];
    if (typeof callback === 'function') {
      args[last] = (err: unknown, ...rest: unknown[]) => {
        listener(err, err ? undefined : (rest[0] as { command?: string } | undefined));
        return (callback as (...a: unknown[]) => unknown)(err, ...rest);
      };
      return query(...args);
    }
    const result = query(...args);
    if (result instanceof Promise) {
      return result.then(
        (value: unknown) => {
          listener(undefined, value as { command?: string } | undefined);
          return value;
        },
        (err: unknown) => {
          listener(err, undefined);
          throw err;
        },
      );
    }
    return result;
  };
}
