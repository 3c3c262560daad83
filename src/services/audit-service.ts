import crypto from 'node:crypto';
import { auditContent, type AuditAction, type AuditEntry } from '../domain/audit';
import { ValidationError } from '../domain/errors';
import type { Page } from '../domain/types';
import type { AuditStore } from '../stores/audit-store';

export interface AuditFilters {
  limit: number;
  cursor?: string;
  actorId?: string;
  targetId?: string;
  actions?: AuditAction[];
  since?: Date;
  until?: Date;
}

export type ChainCheck = { ok: true; rows: number } | { ok: false; brokenAt: string; rows: number };

/** Rows read at a time while walking the chain. */
const WALK_BATCH = 1000;

/** Keyset cursors for the log's order (time, seq), newest first: opaque, checked when read back. */
function encodeCursor(e: AuditEntry): string {
  return Buffer.from(JSON.stringify([e.time.toISOString(), e.seq]), 'utf8').toString('base64url');
}

function decodeCursor(raw: string): { time: Date; seq: string } {
  try {
    const value: unknown = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string' && /^\d{1,19}$/.test(value[1])) {
      const time = new Date(value[0]);
      if (!Number.isNaN(time.getTime())) return { time, seq: value[1] };
    }
  } catch {
    // fall through
  }
  throw new ValidationError('invalid cursor', [{ path: '/query/cursor', message: 'is not a cursor this service issued' }]);
}

function hashOf(prevHash: string, e: AuditEntry): string {
  return crypto.createHash('sha256').update(prevHash + auditContent(e), 'utf8').digest('hex');
}

/** `GET /audit` and `GET /audit/verify` (system admins; the policy has checked). */
export class AuditService {
  constructor(private readonly store: AuditStore) {}

  async list(f: AuditFilters): Promise<Page<AuditEntry>> {
    const rows = await this.store.list({
      limit: f.limit + 1,
      before: f.cursor === undefined ? undefined : decodeCursor(f.cursor),
      actorId: f.actorId,
      targetId: f.targetId,
      actions: f.actions,
      since: f.since,
      until: f.until,
    });
    const items = rows.slice(0, f.limit);
    const last = items[items.length - 1];
    return { items, next: rows.length > f.limit && last ? encodeCursor(last) : null };
  }

  /**
   * Walks the chain in the order it was written: each row's hash must cover its content and the
   * previous row's hash, which it must name. The oldest row kept (retention removes the oldest)
   * is trusted for the hash before it. Reports the first row that breaks the chain.
   */
  async verify(): Promise<ChainCheck> {
    let rows = 0;
    let prev: string | undefined;
    let after: string | undefined;
    for (;;) {
      const batch = await this.store.walk(after, WALK_BATCH);
      for (const e of batch) {
        if ((prev !== undefined && e.prevHash !== prev) || e.hash !== hashOf(e.prevHash, e)) return { ok: false, brokenAt: e.id, rows };
        prev = e.hash;
        rows++;
      }
      if (batch.length < WALK_BATCH) return { ok: true, rows };
      after = batch[batch.length - 1].seq;
    }
  }
}
