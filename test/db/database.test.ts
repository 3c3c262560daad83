import pg from 'pg';
import { parseTimestamptz, timestampFromJson } from '../../src/db/database';
import { onPostgres, openTestDatabase } from '../helpers/test-database';

describe('timestamptz', () => {
  it('parses what the databases send in UTC, and anything else as pg does', () => {
    expect(parseTimestamptz('2026-11-30 22:42:38.123456+00').toISOString()).toBe('2026-11-30T22:42:38.123Z');
    expect(parseTimestamptz('2026-11-30 22:42:38+00').toISOString()).toBe('2026-11-30T22:42:38.000Z');
    expect(parseTimestamptz('2026-11-30 22:42:38.5+00').toISOString()).toBe('2026-11-30T22:42:38.500Z');
    expect(parseTimestamptz('2026-11-30 22:42:38.12+00').toISOString()).toBe('2026-11-30T22:42:38.120Z');
    const parsed = parseTimestamptz('2026-11-30 22:42:38.123456+00');
    expect([parsed instanceof Date, parsed.getTime(), JSON.stringify({ at: parsed })]).toEqual([true, Date.UTC(2026, 10, 30, 22, 42, 38, 123), '{"at":"2026-11-30T22:42:38.123Z"}']);
    expect(parseTimestamptz('2026-11-30 22:42:38.5+02').toISOString()).toBe('2026-11-30T20:42:38.500Z');
    expect(parseTimestamptz('infinity') as unknown).toBe(Infinity); // pg's answer, as it is
  });

  it('reads what JSON holds of it (the token check reads its row as one JSON array) to the millisecond, in the ISO form it was read in', async () => {
    expect(timestampFromJson('2026-11-30T22:42:38.123456+00:00')!.toISOString()).toBe('2026-11-30T22:42:38.123Z');
    expect(timestampFromJson('2026-11-30T22:42:38+00:00')!.toISOString()).toBe('2026-11-30T22:42:38.000Z');
    expect(timestampFromJson('2026-11-30T22:42:38.5+00:00')!.toISOString()).toBe('2026-11-30T22:42:38.500Z');
    expect(timestampFromJson('2026-11-30T22:42:38.5+02:00')!.toISOString()).toBe('2026-11-30T20:42:38.500Z');
    expect(timestampFromJson(null)).toBeNull();
    const db = await openTestDatabase();
    try {
      for (const iso of ['2026-11-30T22:42:38.123Z', '1999-12-31T23:59:59.999Z', '2027-06-01T00:00:00.000Z']) {
        const { rows } = await db.knex.raw<{ rows: { v: [string] }[] }>('select json_build_array(?::timestamptz) as v', [iso]);
        const read = timestampFromJson(rows[0].v[0])!;
        expect([read.getTime(), JSON.stringify(read)]).toEqual([Date.parse(iso), `"${iso}"`]);
      }
    } finally {
      await db.close();
    }
  });

  it('comes back from the database as the instant it went in, to the millisecond', async () => {
    const db = await openTestDatabase();
    try {
      const moments = [new Date('2026-11-30T22:42:38.123Z'), new Date('1999-12-31T23:59:59.999Z'), new Date('2027-06-01T00:00:00.000Z')];
      for (const at of moments) {
        const { rows } = await db.knex.raw<{ rows: { t: Date }[] }>('select ?::timestamptz as t', [at]);
        expect(rows[0].t.toISOString()).toBe(at.toISOString());
      }
    } finally {
      await db.close();
    }
  });
});

// Only a server can drop a connection under a client (PGlite's lives in this process); the CI's
// Postgres pass runs this.
if (onPostgres) {
  describe('a connection that dies while in use', () => {
    it('fails the work on it, not the process, and the next work gets a new connection', async () => {
      const db = await openTestDatabase();
      const failed: unknown[] = [];
      try {
        await db.knex
          .transaction(async (trx) => {
            const { rows } = await trx.raw<{ rows: { pid: number }[] }>('select pg_backend_pid() as pid');
            const killer = new pg.Client({ connectionString: db.url });
            await killer.connect();
            try {
              await killer.query('select pg_terminate_backend($1)', [rows[0].pid]);
            } finally {
              await killer.end();
            }
            // The connection's end arrives while the transaction still holds it.
            await new Promise((resolve) => setTimeout(resolve, 300));
            await trx.raw('select 1');
          })
          .catch((err: unknown) => failed.push(err));
        expect(failed).toHaveLength(1);
        const { rows } = await db.knex.raw<{ rows: { one: number }[] }>('select 1 as one');
        expect(rows).toEqual([{ one: 1 }]);
      } finally {
        await db.close();
      }
    });
  });
}
