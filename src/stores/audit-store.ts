import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { auditFields, type AuditAction, type AuditContext, type AuditEntry, type AuditEvent } from '../domain/audit';
import { makeLink, maxTime, type ChainKeys, type ChainLink } from '../domain/audit-chain';
import type { Clock } from '../domain/types';

export interface AuditQuery {
  limit: number;
  /** Keyset: rows strictly older than this (time, seq). */
  before?: { time: Date; seq: string };
  actorId?: string;
  targetId?: string;
  actions?: AuditAction[];
  since?: Date;
  until?: Date;
}

export interface AuditStore {
  /** Queues an entry, written when the transaction commits; outside one it throws. */
  add(ctx: AuditContext, event: AuditEvent): void;
  /** Writes what was added: the transactor's last step before commit. Says how many it wrote. */
  flush(): Promise<number>;
  /** Newest first. */
  list(query: AuditQuery): Promise<AuditEntry[]>;
  /**
   * Chains up to `limit` committed entries after the last one chained, with `keys.current` (one
   * pass of the chainer: one transaction, serialised across processes).
   */
  chain(limit: number, keys: ChainKeys): Promise<ChainPass>;
  /** The chain in its order after position `afterPos`, each link with its entry (null: the entry is gone). */
  walk(afterPos: number, limit: number): Promise<{ link: ChainLink; entry: AuditEntry | null }[]>;
  /** The chain's last link. */
  head(): Promise<ChainHead | undefined>;
  /** The link at `pos`, if there is one. */
  linkAt(pos: number): Promise<ChainHead | undefined>;
  /** An entry the chain has passed over (one that was put in behind it, so never chained), if any. */
  passedOver(): Promise<{ id: string } | undefined>;
  /** Entries written but not chained yet: how many, and the oldest (by its time). */
  unchained(): Promise<{ count: number; oldest?: { id: string; time: Date } }>;
  /**
   * Removes up to `limit` of the oldest chained entries older than `before`, never the last
   * link (the next one is chained after it); returns how many went.
   */
  prune(before: Date, limit: number): Promise<number>;
}

/** A link's place and hash: the head, or a checkpoint's position. */
export interface ChainHead {
  position: number;
  hash: string;
}

/** What one pass did: how many it chained, the head it chained after (`base`) and the head after it. */
export interface ChainPass {
  chained: number;
  base?: ChainHead;
  head?: ChainHead;
}

interface Row {
  seq: string;
  id: string;
  time: Date;
  action: AuditAction;
  actor_id: string | null;
  actor_name: string | null;
  target_type: 'user' | 'group' | null;
  target_id: string | null;
  target_name: string | null;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  summary: Record<string, unknown>;
}

const COLUMNS = ['seq', 'id', 'time', 'action', 'actor_id', 'actor_name', 'target_type', 'target_id', 'target_name', 'ip', 'user_agent', 'request_id', 'summary'];
const SELECT_ENTRY = COLUMNS.map((c) => `a.${c}`).join(', ');

/** The chain's last link: where the next pass goes on from, and what verify counts from. */
const LAST_LINK = 'select pos, xid, seq, hash, prev_max_time from audit_chain order by pos desc limit 1';

/**
 * The chaining horizon: every transaction of this database below it has ended. It is the
 * statement's snapshot's xmin, but counting only the transactions still running in this database
 * (an idle transaction in another database of the server holds the chain no more): a running
 * transaction is left out only when a backend of another database, or a prepared transaction of
 * another database, holds its id; one that cannot be told (ended since, or not shown) still counts,
 * so the horizon errs on the side of waiting, never of leaving an entry behind.
 */
const HORIZON = `
  with snap as materialized (select pg_current_snapshot() as s),
       elsewhere as (
         select backend_xid as x from pg_stat_activity
          where backend_xid is not null and datid <> (select oid from pg_database where datname = current_database())
         union all
         select transaction from pg_prepared_xacts where database <> current_database())
  select least(
           (select pg_snapshot_xmax(s) from snap),
           (select min(r.x) from snap, pg_snapshot_xip(snap.s) as r(x) where r.x::xid not in (select x from elsewhere))) as h`;

/** The advisory lock that serialises chain passes across processes (one key, 'chai'). */
const CHAIN_LOCK = 0x63686169;

/**
 * The entry's insert, a named prepared statement on the transaction's connection (parsed and
 * planned once per connection). `xid`, the writing transaction, is filled in by Postgres.
 */
const INSERT = {
  name: 'audit_insert',
  sql: 'insert into audit_log (id, time, action, actor_id, actor_name, target_type, target_id, target_name, ip, user_agent, request_id, summary) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb)',
};

function toEntry(r: Row): AuditEntry {
  return {
    seq: String(r.seq),
    id: r.id,
    time: r.time,
    action: r.action,
    actor: r.actor_id ? { id: r.actor_id, name: r.actor_name ?? '' } : null,
    target: r.target_type && r.target_id ? { type: r.target_type, id: r.target_id, name: r.target_name ?? '' } : null,
    ip: r.ip,
    userAgent: r.user_agent,
    requestId: r.request_id,
    summary: r.summary,
  };
}

export class KnexAuditStore implements AuditStore {
  private readonly pending: { ctx: AuditContext; event: AuditEvent }[] = [];

  constructor(
    private readonly db: Knex,
    private readonly clock: Clock,
    private readonly inTransaction: boolean,
    /** false (AUDIT_LOG=0, for measuring what the log costs): nothing is written. */
    private readonly enabled = true,
  ) {}

  add(ctx: AuditContext, event: AuditEvent): void {
    if (!this.inTransaction) throw new Error('audit entries are written in the transaction of the change they record');
    if (this.enabled) this.pending.push({ ctx, event });
  }

  async flush(): Promise<number> {
    // The chain is made after the commit (src/background/audit-chainer.ts): here, the insert alone.
    const pending = this.pending.splice(0);
    for (const { ctx, event } of pending) {
      const entry = { id: crypto.randomUUID(), time: this.clock.now(), action: event.action, actor: ctx.actor, target: event.target, ip: ctx.ip, userAgent: ctx.userAgent, requestId: ctx.requestId, summary: event.summary };
      const fields = auditFields(entry);
      const summary = fields.pop();
      await this.db.raw(INSERT.sql, [...fields, JSON.stringify(summary)]).options({ name: INSERT.name });
    }
    return pending.length;
  }

  async list(q: AuditQuery): Promise<AuditEntry[]> {
    const query = this.db('audit_log').select(COLUMNS).orderBy([{ column: 'time', order: 'desc' }, { column: 'seq', order: 'desc' }]).limit(q.limit);
    if (q.actorId) query.where('actor_id', q.actorId);
    if (q.targetId) query.where('target_id', q.targetId);
    if (q.actions?.length) query.whereIn('action', q.actions);
    if (q.since) query.where('time', '>=', q.since);
    if (q.until) query.where('time', '<', q.until);
    if (q.before) query.whereRaw('(time, seq) < (?, ?)', [q.before.time, q.before.seq]);
    return (await query).map(toEntry);
  }

  async chain(limit: number, keys: ChainKeys): Promise<ChainPass> {
    return this.db.transaction(async (trx) => {
      await trx.raw('select pg_advisory_xact_lock(?)', [CHAIN_LOCK]);
      // Statements from here on see what the pass before (in any process) chained.
      const { rows: lasts } = await trx.raw<{ rows: { pos: string; xid: string; seq: string; hash: string; prev_max_time: Date | null; time: Date | null }[] }>(
        `select last.pos, last.xid::text as xid, last.seq, last.hash, last.prev_max_time, a.time
           from (${LAST_LINK}) last left join audit_log a on a.seq = last.seq`,
      );
      const last = lasts[0];
      const base = last ? { position: Number(last.pos), hash: last.hash } : undefined;
      // Below the horizon every transaction of this database has ended: the entries there are all
      // there will ever be, so taking them in (xid, seq) order never leaves one behind.
      const { rows } = await trx.raw<{ rows: (Row & { xid: string })[] }>(
        `with horizon as (${HORIZON})
         select ${SELECT_ENTRY}, a.xid::text as xid from audit_log a, horizon
          where (a.xid, a.seq) > (?::xid8, ?) and a.xid < horizon.h
          order by a.xid, a.seq limit ?`,
        [last?.xid ?? '0', last?.seq ?? '0', limit],
      );
      if (rows.length === 0) return { chained: 0, base, head: base };
      let prev = last ? { hash: last.hash, maxTime: last.time ? maxTime({ prevMaxTime: last.prev_max_time }, last.time) : last.prev_max_time } : undefined;
      let pos = Number(last?.pos ?? 0);
      const links = rows.map((r) => {
        const entry = toEntry(r);
        const link = makeLink(keys, ++pos, prev, entry);
        prev = { hash: link.hash, maxTime: maxTime(link, entry.time) };
        return { pos: link.pos, seq: String(r.seq), id: r.id, xid: r.xid, key_id: link.keyId, prev_hash: link.prevHash, prev_max_time: link.prevMaxTime, hash: link.hash };
      });
      await trx.raw(
        `insert into audit_chain (pos, seq, id, xid, key_id, prev_hash, prev_max_time, hash)
         select * from jsonb_to_recordset(?::jsonb) as l(pos bigint, seq bigint, id uuid, xid xid8, key_id text, prev_hash text, prev_max_time timestamptz, hash text)`,
        [JSON.stringify(links)],
      );
      const top = links[links.length - 1];
      return { chained: links.length, base, head: { position: top.pos, hash: top.hash } };
    });
  }

  async walk(afterPos: number, limit: number): Promise<{ link: ChainLink; entry: AuditEntry | null }[]> {
    const { rows } = await this.db.raw<{ rows: (Row & { pos: string; link_id: string; key_id: string; prev_hash: string; prev_max_time: Date | null; hash: string })[] }>(
      `select c.pos, c.id as link_id, c.key_id, c.prev_hash, c.prev_max_time, c.hash, ${SELECT_ENTRY}
         from audit_chain c left join audit_log a on a.seq = c.seq
        where c.pos > ? order by c.pos limit ?`,
      [afterPos, limit],
    );
    return rows.map((r) => ({
      link: { pos: Number(r.pos), id: r.link_id, keyId: r.key_id, prevHash: r.prev_hash, prevMaxTime: r.prev_max_time, hash: r.hash },
      entry: r.seq === null ? null : toEntry(r),
    }));
  }

  async head(): Promise<ChainHead | undefined> {
    const { rows } = await this.db.raw<{ rows: { pos: string; hash: string }[] }>(LAST_LINK);
    return rows[0] && { position: Number(rows[0].pos), hash: rows[0].hash };
  }

  async linkAt(pos: number): Promise<ChainHead | undefined> {
    const { rows } = await this.db.raw<{ rows: { pos: string; hash: string }[] }>('select pos, hash from audit_chain where pos = ?', [pos]);
    return rows[0] && { position: Number(rows[0].pos), hash: rows[0].hash };
  }

  async passedOver(): Promise<{ id: string } | undefined> {
    const { rows } = await this.db.raw<{ rows: { id: string }[] }>(
      `with last as (${LAST_LINK})
       select a.id from audit_log a, last
        where (a.xid, a.seq) <= (last.xid, last.seq) and not exists (select 1 from audit_chain c where c.seq = a.seq)
        order by a.xid, a.seq limit 1`,
    );
    return rows[0];
  }

  async unchained(): Promise<{ count: number; oldest?: { id: string; time: Date } }> {
    const { rows } = await this.db.raw<{ rows: { n: string; id: string | null; time: Date | null }[] }>(
      `select count(*) as n, (array_agg(a.id order by a.time, a.seq))[1] as id, min(a.time) as time from audit_log a
        where (a.xid, a.seq) > coalesce((select (xid, seq) from (${LAST_LINK}) last), ('0'::xid8, 0::bigint))`,
    );
    const r = rows[0];
    return { count: Number(r.n), oldest: r.id && r.time ? { id: r.id, time: r.time } : undefined };
  }

  async prune(before: Date, limit: number): Promise<number> {
    // Only ever the start of the chain, so what is kept is one unbroken chain (an entry already
    // gone from the log has no time to keep it by: its link goes with the others). The last link
    // stays, old or not: the next entry is chained after it, and verify finds the chain's end there.
    const { rowCount } = await this.db.raw<{ rowCount: number }>(
      `with head as (select c.pos, c.seq, a.time from audit_chain c left join audit_log a on a.seq = c.seq
                      where c.pos < (select max(pos) from audit_chain) order by c.pos limit ?),
            stop as (select min(pos) as pos from head where time >= ?),
            gone as (select head.pos, head.seq from head, stop where stop.pos is null or head.pos < stop.pos),
            entries as (delete from audit_log where seq in (select seq from gone))
       delete from audit_chain where pos in (select pos from gone)`,
      [limit, before],
    );
    return rowCount;
  }
}
