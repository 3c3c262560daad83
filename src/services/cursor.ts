import { ValidationError } from '../domain/errors';
import { isUuid } from '../domain/identifiers';

export interface NameCursor {
  name: string;
  id: string;
}

/** Keyset cursors for lists ordered by (name, id): opaque to clients, checked when read back. */
export function encodeCursor(c: NameCursor): string {
  return Buffer.from(JSON.stringify([c.name, c.id]), 'utf8').toString('base64url');
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
