import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { auditContent, auditFields, type AuditAction, type AuditContext, type AuditEntry, type AuditEvent } from '../domain/audit';
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
  /** Queues an entry, written (in order, chained) when the transaction commits; outside one it throws. */
  add(ctx: AuditContext, event: AuditEvent): void;
  /** Writes what was added: the transactor's last step before commit. */
  flush(): Promise<void>;
  /** Newest first. */
  list(query: AuditQuery): Promise<AuditEntry[]>;
  /** In the order written, after `afterSeq` (for walking the chain). */
  walk(afterSeq: string | undefined, limit: number): Promise<AuditEntry[]>;
  /** Removes up to `limit` of the oldest entries older than `before`; returns how many went. */
  prune(before: Date, limit: number): Promise<number>;
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
  prev_hash: string;
  hash: string;
}

const COLUMNS = ['seq', 'id', 'time', 'action', 'actor_id', 'actor_name', 'target_type', 'target_id', 'target_name', 'ip', 'user_agent', 'request_id', 'summary', 'prev_hash', 'hash'];

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
    prevHash: r.prev_hash,
    hash: r.hash,
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

  async flush(): Promise<void> {
    // The transactor's last step before the commit: audit_append (see its migration) takes the
    // append lock, held from here to the commit, so appends are serialised without holding it
    // while the change is made, and chains each entry to the last one committed.
    for (const { ctx, event } of this.pending.splice(0)) {
      const entry = { id: crypto.randomUUID(), time: this.clock.now(), action: event.action, actor: ctx.actor, target: event.target, ip: ctx.ip, userAgent: ctx.userAgent, requestId: ctx.requestId, summary: event.summary };
      const fields = auditFields(entry);
      const summary = fields.pop();
      await this.db.raw('select audit_append(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb, ?)', [...fields, JSON.stringify(summary), auditContent(entry)]);
    }
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

  async walk(afterSeq: string | undefined, limit: number): Promise<AuditEntry[]> {
    const query = this.db('audit_log').select(COLUMNS).orderBy('seq').limit(limit);
    if (afterSeq !== undefined) query.where('seq', '>', afterSeq);
    return (await query).map(toEntry);
  }

  async prune(before: Date, limit: number): Promise<number> {
    // Only ever the oldest rows, in written order, so what is kept is one unbroken chain.
    const { rowCount } = await this.db.raw<{ rowCount: number }>(
      `with head as (select seq, time from audit_log order by seq limit ?),
            stop as (select min(seq) as seq from head where time >= ?)
       delete from audit_log where seq in (select head.seq from head, stop where stop.seq is null or head.seq < stop.seq)`,
      [limit, before],
    );
    return rowCount;
  }
}
