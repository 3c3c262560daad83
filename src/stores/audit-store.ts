import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { auditFields, chainHash, type AuditAction, type AuditContext, type AuditEntry, type AuditEvent } from '../domain/audit';
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
   * Chains up to `limit` committed entries after the last one chained (one pass of the chainer:
   * one transaction, serialised across processes); returns how many.
   */
  chain(limit: number): Promise<number>;
  /** The chain in its order after position `afterPos`, each link with its entry (null: the entry is gone). */
  walk(afterPos: string | undefined, limit: number): Promise<{ link: ChainLink; entry: AuditEntry | null }[]>;
  /** An entry the chain has passed over (one that was put in behind it, so never chained), if any. */
  passedOver(): Promise<{ id: string } | undefined>;
  /** Entries written but not chained yet. */
  unchained(): Promise<number>;
  /** Removes up to `limit` of the oldest chained entries older than `before`; returns how many went. */
  prune(before: Date, limit: number): Promise<number>;
}

/** One entry's place in the chain. */
export interface ChainLink {
  pos: string;
  seq: string;
  id: string;
  prevHash: string;
  hash: string;
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
const LAST_LINK = 'select pos, xid, seq, hash from audit_chain order by pos desc limit 1';

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

  async chain(limit: number): Promise<number> {
    return this.db.transaction(async (trx) => {
      await trx.raw('select pg_advisory_xact_lock(?)', [CHAIN_LOCK]);
      // Statements from here on see what the pass before (in any process) chained.
      const { rows: lasts } = await trx.raw<{ rows: { pos: string; xid: string; seq: string; hash: string }[] }>(
        `select pos, xid::text as xid, seq, hash from (${LAST_LINK}) last`,
      );
      const last = lasts[0];
      // Below the snapshot's xmin every transaction has ended: the entries there are all there
      // will ever be, so taking them in (xid, seq) order never leaves one behind.
      const { rows } = await trx.raw<{ rows: (Row & { xid: string })[] }>(
        `select ${SELECT_ENTRY}, a.xid::text as xid from audit_log a
          where (a.xid, a.seq) > (?::xid8, ?) and a.xid < pg_snapshot_xmin(pg_current_snapshot())
          order by a.xid, a.seq limit ?`,
        [last?.xid ?? '0', last?.seq ?? '0', limit],
      );
      if (rows.length === 0) return 0;
      let prev = last?.hash ?? '';
      let pos = BigInt(last?.pos ?? 0);
      const links = rows.map((r) => {
        const hash = chainHash(prev, toEntry(r));
        const link = { pos: String(++pos), seq: String(r.seq), id: r.id, xid: r.xid, prev_hash: prev, hash };
        prev = hash;
        return link;
      });
      await trx.raw(
        `insert into audit_chain (pos, seq, id, xid, prev_hash, hash)
         select * from jsonb_to_recordset(?::jsonb) as l(pos bigint, seq bigint, id uuid, xid xid8, prev_hash text, hash text)`,
        [JSON.stringify(links)],
      );
      return links.length;
    });
  }

  async walk(afterPos: string | undefined, limit: number): Promise<{ link: ChainLink; entry: AuditEntry | null }[]> {
    const { rows } = await this.db.raw<{ rows: (Row & { pos: string; link_seq: string; link_id: string; prev_hash: string; hash: string })[] }>(
      `select c.pos, c.seq as link_seq, c.id as link_id, c.prev_hash, c.hash, ${SELECT_ENTRY}
         from audit_chain c left join audit_log a on a.seq = c.seq
        where c.pos > ? order by c.pos limit ?`,
      [afterPos ?? '0', limit],
    );
    return rows.map((r) => ({
      link: { pos: String(r.pos), seq: String(r.link_seq), id: r.link_id, prevHash: r.prev_hash, hash: r.hash },
      entry: r.seq === null ? null : toEntry(r),
    }));
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

  async unchained(): Promise<number> {
    const { rows } = await this.db.raw<{ rows: { n: string }[] }>(
      `select count(*) as n from audit_log a
        where (a.xid, a.seq) > coalesce((select (xid, seq) from (${LAST_LINK}) last), ('0'::xid8, 0::bigint))`,
    );
    return Number(rows[0].n);
  }

  async prune(before: Date, limit: number): Promise<number> {
    // Only ever the start of the chain, so what is kept is one unbroken chain (an entry already
    // gone from the log has no time to keep it by: its link goes with the others).
    const { rowCount } = await this.db.raw<{ rowCount: number }>(
      `with head as (select c.pos, c.seq, a.time from audit_chain c left join audit_log a on a.seq = c.seq order by c.pos limit ?),
            stop as (select min(pos) as pos from head where time >= ?),
            gone as (select head.pos, head.seq from head, stop where stop.pos is null or head.pos < stop.pos),
            entries as (delete from audit_log where seq in (select seq from gone))
       delete from audit_chain where pos in (select pos from gone)`,
      [limit, before],
    );
    return rowCount;
  }
}
