import { ValidationError } from '../domain/errors';
import { isUuid } from '../domain/identifiers';
import type { Page } from '../domain/types';

export interface NameCursor {
  name: string;
  id: string;
}

/** Keyset cursors for lists ordered by (name, id): opaque to clients, checked when read back. */
export function encodeCursor(c: NameCursor): string {
  return Buffer.from(JSON.stringify([c.name, c.id]), 'utf8').toString('base64url');
}

/**
 * A page from `limit + 1` rows read in (name, id) order: the extra row only says that more remain,
 * and the cursor points after the last row kept.
 */
export function pageOf<T extends NameCursor>(rows: T[], limit: number): Page<T> {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, next: rows.length > limit && last ? encodeCursor({ name: last.name, id: last.id }) : null };
}

export function decodeCursor(raw: string): NameCursor {
  try {
    const value: unknown = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string' && isUuid(value[1])) {
      return { name: value[0], id: value[1].toLowerCase() };
    }
  } catch {
    // fall through
  }
  throw new ValidationError('invalid cursor', [{ path: '/query/cursor', message: 'is not a cursor this service issued' }]);
}

/** A keyset position in a list ordered by (time, id): a webhook's `created`, a delivery's. */
export interface TimeCursor {
  time: Date;
  id: string;
}

export function encodeTimeCursor(c: TimeCursor): string {
  return Buffer.from(JSON.stringify([c.time.toISOString(), c.id]), 'utf8').toString('base64url');
}

export function decodeTimeCursor(raw: string): TimeCursor {
  try {
    const value: unknown = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string' && isUuid(value[1])) {
      const time = new Date(value[0]);
      if (!Number.isNaN(time.getTime())) return { time, id: value[1].toLowerCase() };
    }
  } catch {
    // fall through
  }
  throw new ValidationError('invalid cursor', [{ path: '/query/cursor', message: 'is not a cursor this service issued' }]);
}

/** A page from `limit + 1` rows read in (time, id) order (see pageOf). */
export function timePageOf<T>(rows: T[], limit: number, key: (row: T) => TimeCursor): Page<T> {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, next: rows.length > limit && last ? encodeTimeCursor(key(last)) : null };
}
