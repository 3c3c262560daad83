import type { Knex } from 'knex';

/**
 * Leases up to `limit` due rows of a work table (mail_outbox, background_jobs) for `leaseMs`, in
 * one statement: rows another worker holds are skipped, not waited for, so several instances can
 * work the same table. Each leased row's `attempts` goes up by one.
 */
export async function leaseDue<R>(
  db: Knex,
  table: string,
  options: { now: Date; limit: number; leaseMs: number; returning: string[]; where?: (q: Knex.QueryBuilder) => void },
): Promise<R[]> {
  const { now } = options;
  const due = db(table)
    .select('id')
    .where('next_attempt', '<=', now)
    .where((w) => w.whereNull('locked_until').orWhere('locked_until', '<=', now))
    .orderBy('id')
    .limit(options.limit)
    .forUpdate()
    .skipLocked();
  options.where?.(due);
  const rows = (await db(table)
    .whereIn('id', due)
    .update({ locked_until: new Date(now.getTime() + options.leaseMs), attempts: db.raw('attempts + 1') })
    .returning(options.returning)) as (R & { id: string | number })[];
  return rows.sort((a, b) => Number(a.id) - Number(b.id));
}
