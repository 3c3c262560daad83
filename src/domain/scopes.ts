import type { Scope } from './types';

const READ_METHODS = new Set(['GET', 'HEAD']);

/** `api` and `api:write` allow everything; `api:read` only reads. */
export function scopesAllow(scopes: readonly Scope[], method: string): boolean {
  if (scopes.includes('api') || scopes.includes('api:write')) return true;
  return scopes.includes('api:read') && READ_METHODS.has(method.toUpperCase());
}
