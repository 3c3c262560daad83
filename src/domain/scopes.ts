import type { Scope } from './types';

/** `api` and `api:write` allow everything; `api:read` only what writes nothing. */
export function scopesAllow(scopes: readonly Scope[], writes: boolean): boolean {
  if (scopes.includes('api') || scopes.includes('api:write')) return true;
  return scopes.includes('api:read') && !writes;
}
