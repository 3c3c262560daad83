import createClient from 'openapi-fetch';
import type { components, paths } from '../src/generated/openapi';

export type Schemas = components['schemas'];
export type ErrorBody = Schemas['ErrorBody'];
export type UserDetailed = Schemas['UserDetailed'];

/**
 * The API as the console calls it: the public routes of openapi.yaml, typed by the same generated
 * types a client of ours uses (openapi-fetch), signed in by the session cookie. Every request says
 * `X-Requested-With`, which the service asks of a cookie-signed change that has no JSON body.
 */
export const api = createClient<paths>({
  baseUrl: '',
  credentials: 'same-origin',
  headers: { 'X-Requested-With': 'XMLHttpRequest' },
});

/** A refused call: the API's error body, or one of ours when no answer came. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
    readonly response?: Response,
  ) {
    super(body.error);
  }

  get code(): string {
    return this.body.code;
  }

  /** Messages by field name, from `details` (`/body/email` is `email`, `/query/q` is `q`). */
  fieldMessages(): Record<string, string> {
    const fields: Record<string, string> = {};
    for (const d of this.body.details ?? []) {
      const name = d.path.split('/').filter(Boolean).slice(1).join('.') || d.path;
      fields[name] ??= d.message;
    }
    return fields;
  }
}

function networkError(): ApiError {
  return new ApiError(0, { error: 'The service could not be reached. Check your connection and try again.', code: 'unavailable', request_id: '' });
}

function isErrorBody(x: unknown): x is ErrorBody {
  return typeof x === 'object' && x !== null && typeof (x as ErrorBody).error === 'string' && typeof (x as ErrorBody).code === 'string';
}

/**
 * The data of a call that succeeded, or an ApiError. `const me = await ok(api.GET('/user/me'))`.
 * A `Retry-After` (429, 503) is added to the message, as a person needs to know how long to wait.
 */
export async function ok<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await call;
  } catch {
    throw networkError();
  }
  const { data, error, response } = result;
  // A success without a JSON body (202, 204): openapi-fetch leaves it unread, which Chromium
  // reports as an aborted request. Read it, so the call ends cleanly.
  if (response.ok && !response.bodyUsed && response.body) await response.arrayBuffer().catch(() => undefined);
  if (response.ok) return data as T;
  const body: ErrorBody = isErrorBody(error)
    ? error
    : { error: `The service answered ${response.status} ${response.statusText}.`, code: 'internal_error', request_id: response.headers.get('X-Request-Id') ?? '' };
  const retry = response.headers.get('Retry-After');
  if (retry && /^\d+$/.test(retry) && (response.status === 429 || response.status === 503)) {
    body.error = `${body.error} Try again in ${retry} s.`;
  }
  throw new ApiError(response.status, body, response);
}

/** The `cursor` of the next page, from a `Link: <...>; rel="next"` header. */
export function nextCursor(response: Response | undefined): string | undefined {
  const link = response?.headers.get('Link');
  const match = link ? /<([^>]*)>\s*;\s*rel="?next"?/.exec(link) : null;
  if (!match) return undefined;
  return new URL(match[1], location.origin).searchParams.get('cursor') ?? undefined;
}

/** A page of a list and the cursor of the one after it. */
export async function page<T>(call: Promise<{ data?: T[]; error?: unknown; response: Response }>): Promise<{ items: T[]; next?: string }> {
  let response: Response | undefined;
  const items = await ok(
    call.then((r) => {
      response = r.response;
      return r;
    }),
  );
  return { items: items ?? [], next: nextCursor(response) };
}
