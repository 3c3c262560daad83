import type { AuditAction, AuditEntry } from '../../domain/audit';
import type { AuditService } from '../../services/audit-service';
import { query } from '../bodies';
import type { Handlers } from '../mount';
import { linkNext, pageQuery } from '../paging';

/** An entry as `GET /audit` shows it (and `accounts admin audit export` writes it). */
export function presentAuditEntry(e: AuditEntry) {
  return {
    id: e.id,
    time: e.time.toISOString(),
    action: e.action,
    actor: e.actor,
    target: e.target,
    ip: e.ip,
    user_agent: e.userAgent,
    request_id: e.requestId,
    summary: e.summary,
  };
}

/** A repeatable query parameter, as the validator leaves it: one value or several. */
function many<T>(value: T | T[] | undefined): T[] | undefined {
  return value === undefined ? undefined : Array.isArray(value) ? value : [value];
}

/** The audit log, for system admins. */
export function auditHandlers(audit: AuditService): Handlers {
  return {
    listAudit: async (req, res) => {
      const q = query(req, 'listAudit');
      const { limit, cursor } = pageQuery(req);
      const page = await audit.list({
        limit,
        cursor,
        actorId: q.actor?.toLowerCase(),
        targetId: q.target?.toLowerCase(),
        actions: many(q.action) as AuditAction[] | undefined,
        since: q.since === undefined ? undefined : new Date(q.since),
        until: q.until === undefined ? undefined : new Date(q.until),
      });
      linkNext(req, res, page, limit);
      res.json(page.items.map(presentAuditEntry));
    },

    verifyAudit: async (_req, res) => {
      const { ok, rows, pending, broken, checkpoint } = await audit.verify();
      res.json({
        ok,
        rows,
        pending,
        ...(broken && { reason: broken.reason, ...(broken.at && { broken_at: broken.at }), detail: broken.detail }),
        ...(checkpoint && { checkpoint: { position: checkpoint.position, time: checkpoint.time.toISOString() } }),
      });
    },
  };
}
