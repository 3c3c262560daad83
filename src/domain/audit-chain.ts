import crypto from 'node:crypto';
import { auditFields, canonicalJson, type AuditEntry } from './audit';

/**
 * The audit chain's keyed links and signed checkpoints (API.md §2.4b, issue 18): what they cover,
 * and the walk that checks them, shared by `GET /audit/verify` and the offline
 * `accounts admin audit verify FILE`.
 *
 * A link is an HMAC-SHA256, with a key derived from `AUDIT_KEY`, over its position, the previous
 * link, the newest time of the entries before it, and its entry's content: without the key nobody
 * can make a link, so an entry rewritten with every later link recomputed is found. Positions run
 * on by one from the first link kept; a start past position 1 is accepted only when every entry
 * before it was older than the retention age (`prevMaxTime`, covered by the link). A checkpoint is
 * the head (position, link, time) signed with the same key, kept outside
 * the database: a chain shorter than it, or different at its position, was cut or rewritten.
 */

/** Keys for one purpose: `current` signs, `get(id)` finds the one a link names (rotation). */
export interface ChainKeys {
  current: { id: string; key: Buffer };
  get(id: string): Buffer | undefined;
}

/** The HKDF purpose of the key derived from AUDIT_KEY (links and checkpoints say which they are in what they sign). */
export const CHAIN_KEY_PURPOSE = 'audit chain';

/** One entry's place in the chain. */
export interface ChainLink {
  pos: number;
  /** The entry's id (kept on the link, so a removed entry can still be named). */
  id: string;
  /** The configured key the link was made with. */
  keyId: string;
  /** The previous link's hash ('' at position 1). */
  prevHash: string;
  /** The newest time of the entries before this one in the chain (null at position 1). */
  prevMaxTime: Date | null;
  hash: string;
}

/** The link of `entry` at `pos` after a link `prev` (undefined: the first). */
export function makeLink(keys: ChainKeys, pos: number, prev: { hash: string; maxTime: Date | null } | undefined, entry: Omit<AuditEntry, 'seq'>): ChainLink {
  const link = { pos, id: entry.id, keyId: keys.current.id, prevHash: prev?.hash ?? '', prevMaxTime: prev?.maxTime ?? null };
  return { ...link, hash: linkHash(keys.current.key, link, entry) };
}

export function linkHash(key: Buffer, link: Pick<ChainLink, 'pos' | 'prevHash' | 'prevMaxTime'>, entry: Omit<AuditEntry, 'seq'>): string {
  const covered = canonicalJson(['link', link.pos, link.prevHash, link.prevMaxTime?.toISOString() ?? null, ...auditFields(entry)]);
  return crypto.createHmac('sha256', key).update(covered, 'utf8').digest('hex');
}

/** The newest time up to and including a link's entry: the next link's `prevMaxTime`. */
export function maxTime(link: Pick<ChainLink, 'prevMaxTime'>, entryTime: Date): Date {
  return link.prevMaxTime && link.prevMaxTime > entryTime ? link.prevMaxTime : entryTime;
}

/** The chain's head as of `time`, signed. */
export interface Checkpoint {
  position: number;
  hash: string;
  time: Date;
  keyId: string;
  mac: string;
}

function checkpointMac(key: Buffer, c: Pick<Checkpoint, 'position' | 'hash' | 'time'>): string {
  return crypto.createHmac('sha256', key).update(canonicalJson(['checkpoint', c.position, c.hash, c.time.toISOString()]), 'utf8').digest('hex');
}

export function signCheckpoint(keys: ChainKeys, head: { position: number; hash: string }, time: Date): Checkpoint {
  const c = { position: head.position, hash: head.hash, time };
  return { ...c, keyId: keys.current.id, mac: checkpointMac(keys.current.key, c) };
}

/** Whether a checkpoint was signed with one of `keys`. */
export function checkpointSigned(keys: ChainKeys, c: Checkpoint): boolean {
  const key = keys.get(c.keyId);
  if (!key) return false;
  const expected = Buffer.from(checkpointMac(key, c), 'hex');
  const given = Buffer.from(c.mac, 'hex');
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

/** A checkpoint as JSON (the file, the log line, the export's last line). */
export function checkpointJson(c: Checkpoint): { position: number; hash: string; time: string; key_id: string; mac: string } {
  return { position: c.position, hash: c.hash, time: c.time.toISOString(), key_id: c.keyId, mac: c.mac };
}

/** A checkpoint read back from JSON; undefined when it is not one. */
export function parseCheckpoint(value: unknown): Checkpoint | undefined {
  const v = value as Record<string, unknown> | null;
  if (!v || typeof v !== 'object') return undefined;
  const { position, hash, time, key_id: keyId, mac } = v;
  if (typeof position !== 'number' || !Number.isSafeInteger(position) || position < 1) return undefined;
  if (typeof hash !== 'string' || typeof time !== 'string' || typeof keyId !== 'string' || typeof mac !== 'string' || !/^[0-9a-f]{64}$/.test(mac)) return undefined;
  const at = new Date(time);
  if (Number.isNaN(at.getTime())) return undefined;
  return { position, hash, time: at, keyId, mac };
}

/** Why a chain does not check out: a stable code (the API's `reason`). */
export type ChainBreakReason =
  /** An entry's content (or its link) is not what its link was made over. */
  | 'altered'
  /** A link's entry is gone. */
  | 'entry_removed'
  /** Positions skip: links were removed with their entries. */
  | 'gap'
  /** A link does not follow the one before it (links of another chain, or reordered). */
  | 'relinked'
  /** A link was made with a key that is not configured (AUDIT_KEY lost a key, or the link is forged). */
  | 'unknown_key'
  /** The chain starts past position 1 while the entries before it were not yet due for removal. */
  | 'start_cut'
  /** The chain ends before the last checkpoint's position. */
  | 'truncated'
  /** The chain differs from the last checkpoint at its position. */
  | 'checkpoint_mismatch'
  /** The checkpoint is not signed with a configured key. */
  | 'checkpoint_invalid'
  /** An entry was put in behind the chain: never to be chained. */
  | 'passed_over'
  /** Entries older than a few seconds are still not chained. */
  | 'unchained';

export interface ChainBreak {
  reason: ChainBreakReason;
  /** The entry where it broke, when there is one. */
  at?: string;
  /** One sentence for the operator. */
  detail: string;
}

/**
 * Walks a chain fed link by link in position order (each with its entry, null when gone), and
 * says where it first breaks. `retainedAfter`: the entries before it may have been removed by
 * retention (undefined: retention keeps everything). `checkpoints`: those known (the newest the
 * service keeps; an export's own and one shipped elsewhere), each checked where the chain has it.
 */
export class ChainVerifier {
  /** Entries that checked out, before the break if any. */
  rows = 0;
  private last: { pos: number; hash: string; maxTime: Date } | undefined;
  private broken: ChainBreak | undefined;
  private readonly checkpoints = new Map<number, Checkpoint>();
  private readonly checkpointBreak: ChainBreak | undefined;

  constructor(
    private readonly keys: ChainKeys,
    private readonly options: { retainedAfter?: Date; checkpoints?: readonly Checkpoint[] },
  ) {
    for (const c of options.checkpoints ?? []) {
      if (!checkpointSigned(keys, c)) {
        this.checkpointBreak ??= { reason: 'checkpoint_invalid', detail: `the checkpoint at position ${c.position} (${c.time.toISOString()}) is not signed with a configured AUDIT_KEY` };
      } else {
        this.checkpoints.set(c.position, c);
      }
    }
  }

  /** The next link; false once the chain is broken (feed no more). */
  add(link: ChainLink, entry: Omit<AuditEntry, 'seq'> | null): boolean {
    if (this.broken) return false;
    this.broken = this.check(link, entry);
    if (this.broken) return false;
    this.rows++;
    this.last = { pos: link.pos, hash: link.hash, maxTime: maxTime(link, (entry as AuditEntry).time) };
    return true;
  }

  private check(link: ChainLink, entry: Omit<AuditEntry, 'seq'> | null): ChainBreak | undefined {
    const last = this.last;
    if (!last && link.pos !== 1) {
      const cutoff = this.options.retainedAfter;
      if (!cutoff || !link.prevMaxTime || link.prevMaxTime >= cutoff) {
        const why = cutoff
          ? `the entries before it (up to ${link.prevMaxTime?.toISOString() ?? 'an unknown time'}) were not due for removal (before ${cutoff.toISOString()})`
          : 'retention keeps every entry (AUDIT_RETENTION_DAYS=0)';
        return { reason: 'start_cut', at: link.id, detail: `the chain starts at position ${link.pos}, but ${why}` };
      }
    }
    if (last && link.pos !== last.pos + 1) {
      return { reason: 'gap', at: link.id, detail: `positions ${last.pos + 1} to ${link.pos - 1} are missing` };
    }
    if (last && (link.prevHash !== last.hash || link.prevMaxTime?.getTime() !== last.maxTime.getTime())) {
      return { reason: 'relinked', at: link.id, detail: `the link at position ${link.pos} does not follow the one before it` };
    }
    const key = this.keys.get(link.keyId);
    if (!key) return { reason: 'unknown_key', at: link.id, detail: `the link at position ${link.pos} was made with key ${link.keyId}, which AUDIT_KEY does not hold` };
    if (!entry) return { reason: 'entry_removed', at: link.id, detail: `the entry at position ${link.pos} is gone` };
    if (entry.id !== link.id || linkHash(key, link, entry) !== link.hash) {
      return { reason: 'altered', at: entry.id, detail: `the entry at position ${link.pos} is not the one its link was made over` };
    }
    const c = this.checkpoints.get(link.pos);
    if (c && link.hash !== c.hash) {
      return { reason: 'checkpoint_mismatch', at: entry.id, detail: `the chain differs at position ${c.position} from the checkpoint of ${c.time.toISOString()}` };
    }
    return undefined;
  }

  /** After the last link: the first break, if any. */
  finish(): ChainBreak | undefined {
    if (this.broken) return this.broken;
    const end = this.last?.pos ?? 0;
    const beyond = [...this.checkpoints.values()].filter((c) => c.position > end).sort((a, b) => b.position - a.position)[0];
    if (beyond) {
      return { reason: 'truncated', detail: `the chain ends at position ${end}, but the checkpoint of ${beyond.time.toISOString()} has position ${beyond.position}` };
    }
    return this.checkpointBreak;
  }

  /** The head that checked out. */
  get head(): { position: number; hash: string } | undefined {
    return this.last && { position: this.last.pos, hash: this.last.hash };
  }
}
