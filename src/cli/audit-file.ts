import fs from 'node:fs';
import readline from 'node:readline';
import type { AuditAction, AuditEntry } from '../domain/audit';
import { ChainVerifier, checkpointJson, parseCheckpoint, signCheckpoint, type ChainBreak, type ChainKeys, type ChainLink, type Checkpoint } from '../domain/audit-chain';
import type { Clock } from '../domain/types';
import { presentAuditEntry } from '../http/handlers/audit';
import type { AuditStore } from '../stores/audit-store';

/**
 * An export of the audit log (`accounts admin audit export`), checked offline by `accounts admin
 * audit verify FILE`: JSON lines, one per link in the chain's order,
 * `{"link": {position, id, key_id, prev_hash, prev_max_time, hash}, "entry": <as GET /audit shows it> | null}`,
 * and last `{"checkpoint": {position, hash, time, key_id, mac}}`, the head exported, signed (null
 * for an empty chain): a file without that line was cut short.
 */

const BATCH = 1000;

type Writable = Pick<NodeJS.WritableStream, 'write' | 'once'>;

async function writeLine(out: Writable, value: unknown): Promise<void> {
  if (!out.write(`${JSON.stringify(value)}\n`)) await new Promise((resolve) => out.once('drain', resolve));
}

/** Writes the chain as it is now, then a checkpoint of its head; says what it wrote. */
export async function exportAudit(store: Pick<AuditStore, 'walk'>, keys: ChainKeys, clock: Clock, out: Writable): Promise<{ rows: number; first?: number; checkpoint?: Checkpoint }> {
  let rows = 0;
  let first: number | undefined;
  let last: ChainLink | undefined;
  for (let after = 0; ; ) {
    const batch = await store.walk(after, BATCH);
    for (const { link, entry } of batch) {
      first ??= link.pos;
      last = link;
      rows++;
      const l = { position: link.pos, id: link.id, key_id: link.keyId, prev_hash: link.prevHash, prev_max_time: link.prevMaxTime?.toISOString() ?? null, hash: link.hash };
      await writeLine(out, { link: l, entry: entry && presentAuditEntry(entry) });
    }
    if (batch.length < BATCH) break;
    after = batch[batch.length - 1].link.pos;
  }
  const checkpoint = last && signCheckpoint(keys, { position: last.pos, hash: last.hash }, clock.now());
  await writeLine(out, { checkpoint: checkpoint ? checkpointJson(checkpoint) : null });
  return { rows, first, checkpoint };
}

export type FileCheck = { ok: true; rows: number; first?: number; head?: number; checkpoints: Checkpoint[] } | { ok: false; rows: number; broken: ChainBreak };

/**
 * Checks an export: every link with the keys, the positions, the start against `retentionMs`
 * (counted back from the export's own checkpoint), the export's checkpoint and `checkpoint` (one
 * kept elsewhere).
 */
export async function verifyAuditFile(file: string, keys: ChainKeys, options: { retentionMs: number; checkpoint?: Checkpoint }): Promise<FileCheck> {
  // Two reads, so a long export is never held in memory: its last line (the export's checkpoint,
  // which the start is judged from), then every link in turn.
  let lastLine = 0;
  let lastText = '';
  for await (const { number, text } of lines(file)) [lastLine, lastText] = [number, text];
  const end = lastText ? parseLine(lastText) : undefined;
  if (!end || !('checkpoint' in end)) return { ok: false, rows: 0, broken: { reason: 'truncated', detail: "the file ends without the export's checkpoint: it was cut short" } };
  const own = end.checkpoint;
  const checkpoints = [...(own ? [own] : []), ...(options.checkpoint ? [options.checkpoint] : [])];
  const verifier = new ChainVerifier(keys, {
    retainedAfter: options.retentionMs && own ? new Date(own.time.getTime() - options.retentionMs) : undefined,
    checkpoints,
  });
  let first: number | undefined;
  for await (const { number, text } of lines(file)) {
    if (number === lastLine) break;
    const parsed = parseLine(text);
    if (!parsed || 'checkpoint' in parsed) return { ok: false, rows: verifier.rows, broken: { reason: 'altered', detail: `line ${number} is not a link of an audit export` } };
    first ??= parsed.link.pos;
    if (!verifier.add(parsed.link, parsed.entry)) break;
  }
  const broken = verifier.finish();
  if (broken) return { ok: false, rows: verifier.rows, broken };
  return { ok: true, rows: verifier.rows, first, head: verifier.head?.position, checkpoints };
}

/** The file's non-empty lines, numbered from 1. */
async function* lines(file: string): AsyncGenerator<{ number: number; text: string }> {
  const input = fs.createReadStream(file, 'utf8');
  const reader = readline.createInterface({ input, crlfDelay: Infinity });
  let number = 0;
  try {
    for await (const text of reader) {
      number++;
      if (text.trim() !== '') yield { number, text };
    }
  } finally {
    reader.close();
    input.destroy();
  }
}

/** A checkpoint kept outside: the service's file (`{position, hash, ...}`), or its `audit checkpoint` log line (the last in the file). */
export function readCheckpointFile(file: string): Checkpoint | undefined {
  const last = fs.readFileSync(file, 'utf8').trim().split('\n').pop() ?? '';
  try {
    const value = JSON.parse(last) as Record<string, unknown>;
    return parseCheckpoint(value?.audit_checkpoint ?? value?.checkpoint ?? value);
  } catch {
    return undefined;
  }
}

function parseLine(text: string): { link: ChainLink; entry: Omit<AuditEntry, 'seq'> | null } | { checkpoint: Checkpoint | null } | undefined {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object') return undefined;
  if ('checkpoint' in value) {
    if (value.checkpoint === null) return { checkpoint: null };
    const c = parseCheckpoint(value.checkpoint);
    return c && { checkpoint: c };
  }
  const l = value.link as Record<string, unknown> | undefined;
  if (!l || typeof l !== 'object' || typeof l.position !== 'number' || typeof l.id !== 'string' || typeof l.key_id !== 'string' || typeof l.prev_hash !== 'string' || typeof l.hash !== 'string') return undefined;
  if (l.prev_max_time !== null && (typeof l.prev_max_time !== 'string' || Number.isNaN(new Date(l.prev_max_time).getTime()))) return undefined;
  const link: ChainLink = { pos: l.position, id: l.id, keyId: l.key_id, prevHash: l.prev_hash, prevMaxTime: l.prev_max_time === null ? null : new Date(l.prev_max_time as string), hash: l.hash };
  const e = value.entry as Record<string, unknown> | null | undefined;
  if (e === null) return { link, entry: null };
  if (!e || typeof e !== 'object' || typeof e.id !== 'string' || typeof e.time !== 'string' || Number.isNaN(new Date(e.time).getTime())) return undefined;
  return {
    link,
    entry: {
      id: e.id,
      time: new Date(e.time),
      action: e.action as AuditAction,
      actor: (e.actor ?? null) as AuditEntry['actor'],
      target: (e.target ?? null) as AuditEntry['target'],
      ip: (e.ip ?? null) as string | null,
      userAgent: (e.user_agent ?? null) as string | null,
      requestId: (e.request_id ?? null) as string | null,
      summary: (e.summary ?? {}) as Record<string, unknown>,
    },
  };
}
