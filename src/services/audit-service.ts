import { chainHash, type AuditAction, type AuditEntry } from '../domain/audit';
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

/** `pending`: entries written but not chained yet (committed a moment ago, or behind a transaction still open). */
export type ChainCheck = { ok: true; rows: number; pending: number } | { ok: false; brokenAt: string; rows: number; pending: number };

/** How long verify waits for entries not chained yet (behind a transaction still open) before it walks. */
const VERIFY_WAIT_MS = 1000;

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

/** `GET /audit` and `GET /audit/verify` (system admins; the policy has checked). */
export class AuditService {
  constructor(
    private readonly store: AuditStore,
    /** Chains what has been committed and not chained yet (the chainer's pass). */
    private readonly chainNow: () => Promise<number>,
  ) {}

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
   * Chains what is committed and not chained yet, then walks the chain in its order: each link
   * must name the hash of the one before it, and its hash must cover that and its entry's content
   * as stored now. The oldest link kept (retention removes the oldest) is trusted for the hash
   * before it. Reports the first entry that breaks the chain: one altered, the one after one
   * removed (or the removed one, when nothing follows it), or one put in behind the chain, which
   * the chainer has passed over.
   */
  async verify(): Promise<ChainCheck> {
    // An entry committed after another transaction began (anywhere in the database) is chained
    // once that one ends: most end within milliseconds, so wait a little for them.
    await this.chainNow();
    let pending = await this.store.unchained();
    for (let wait = 0; pending > 0 && wait < VERIFY_WAIT_MS; wait += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      await this.chainNow();
      pending = await this.store.unchained();
    }
    let rows = 0;
    let prev: string | undefined;
    let removed: string | undefined;
    let after: string | undefined;
    for (;;) {
      const batch = await this.store.walk(after, WALK_BATCH);
      for (const { link, entry } of batch) {
        if (!entry) {
          removed ??= link.id;
        } else if (removed !== undefined || (prev !== undefined && link.prevHash !== prev) || link.hash !== chainHash(link.prevHash, entry)) {
          return { ok: false, brokenAt: entry.id, rows, pending };
        } else {
          rows++;
        }
        prev = link.hash;
      }
      if (batch.length < WALK_BATCH) break;
      after = batch[batch.length - 1].link.pos;
    }
    if (removed !== undefined) return { ok: false, brokenAt: removed, rows, pending };
    const passed = await this.store.passedOver();
    return passed ? { ok: false, brokenAt: passed.id, rows, pending } : { ok: true, rows, pending };
  }
}
