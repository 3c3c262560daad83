import { ValidationError } from '../domain/errors';
import type { ClearTokens } from '../services/password-service';
import type { RevokeMode } from '../services/token-service';

/** Flag query parameters: the strings `0` and `1` (the spec admits nothing else). */
export function flag(value: unknown, fallback: boolean): boolean {
  if (value === '1') return true;
  if (value === '0') return false;
  return fallback;
}


/** `clear_tokens`: `none` (also 0, no, false), `login_only` (also 1), `all`. */
export function clearTokens(value: unknown, fallback: ClearTokens): ClearTokens {
  switch (value) {
    case 'none':
    case '0':
    case 'no':
    case 'false':
      return 'none';
    case 'login_only':
    case '1':
      return 'login_only';
    case 'all':
      return 'all';
    default:
      return fallback;
  }
}

/** `login_only` and `api_only` flags: all tokens by default; both at once is an error. */
export function revokeMode(loginOnly: unknown, apiOnly: unknown): RevokeMode {
  const login = flag(loginOnly, false);
  const api = flag(apiOnly, false);
  if (login && api) {
    throw new ValidationError('login_only and api_only cannot both be set', [{ path: '/query/api_only', message: 'conflicts with login_only' }]);
  }
  return login ? 'login_only' : api ? 'api_only' : 'all';
}
