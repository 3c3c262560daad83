import type { AuditAction, AuditEntry } from '../domain/audit';
import { ChainVerifier, type ChainBreak, type ChainKeys, type Checkpoint } from '../domain/audit-chain';
import { ValidationError } from '../domain/errors';
import type { Clock, Page } from '../domain/types';
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

/**
 * `pending`: entries written but not chained yet (committed a moment ago, or behind a transaction
 * still open); `broken`: where and why the chain does not check out; `checkpoint`: the one it was
 * compared with.
 */
export interface ChainCheck {
  ok: boolean;
  rows: number;
  pending: number;
  broken?: ChainBreak;
  checkpoint?: Checkpoint;
}

/** How long verify waits for entries not chained yet (behind a transaction still open) before it walks. */
const VERIFY_WAIT_MS = 1000;

/** Rows read at a time while walking the chain. */
const WALK_BATCH = 1000;

/** Entries not chained this long after their time are held by a transaction of this database still open: verify says so. */
export const UNCHAINED_STALE_MS = 5000;

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
    private readonly chain: {
      keys: ChainKeys;
      /** The newest checkpoint known (memory, or the file read at start). */
      checkpoint: () => Checkpoint | undefined;
      /** AUDIT_RETENTION_DAYS in ms; 0 keeps everything. */
      retentionMs: number;
      clock: Clock;
    },
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
   * Chains what is committed and not chained yet, then walks the chain in its order
   * (domain/audit-chain.ts: keyed links, positions one after another, a start past position 1 only
   * where retention would have removed what went before, the newest checkpoint reached and
   * matched), then looks for an entry put in behind the chain (never to be chained) and for
   * entries a transaction still open has held unchained for more than a few seconds. Reports the
   * first break with its reason.
   */
  async verify(): Promise<ChainCheck> {
    // An entry committed after another transaction of this database began is chained once that
    // one ends: most end within milliseconds, so wait a little for them.
    await this.chainNow();
    let pending = await this.store.unchained();
    for (let wait = 0; pending.count > 0 && wait < VERIFY_WAIT_MS; wait += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      await this.chainNow();
      pending = await this.store.unchained();
    }
    const now = this.chain.clock.now();
    const checkpoint = this.chain.checkpoint();
    const verifier = new ChainVerifier(this.chain.keys, {
      retainedAfter: this.chain.retentionMs ? new Date(now.getTime() - this.chain.retentionMs) : undefined,
      checkpoints: checkpoint ? [checkpoint] : [],
    });
    let after = 0;
    for (let going = true; going; ) {
      const batch = await this.store.walk(after, WALK_BATCH);
      for (const { link, entry } of batch) {
        going = verifier.add(link, entry);
        if (!going) break;
      }
      if (batch.length < WALK_BATCH) break;
      after = batch[batch.length - 1].link.pos;
    }
    let broken = verifier.finish();
    if (!broken) {
      const passed = await this.store.passedOver();
      if (passed) broken = { reason: 'passed_over', at: passed.id, detail: 'an entry was put in behind the chain, where it will never be chained' };
    }
    const oldest = pending.oldest;
    if (!broken && oldest && now.getTime() - oldest.time.getTime() > UNCHAINED_STALE_MS) {
      broken = {
        reason: 'unchained',
        at: oldest.id,
        detail: `${pending.count} entries are not chained yet, the oldest of ${oldest.time.toISOString()}: a transaction of this database still open holds them, or they were put in where the chain cannot take them`,
      };
    }
    return { ok: !broken, rows: verifier.rows, pending: pending.count, broken, checkpoint };
  }
}
