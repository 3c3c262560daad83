import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from '../../generated/openapi';

/** The service's API as the user's CLI calls it: typed by the types generated from openapi.yaml. */
export type ApiClient = Client<paths>;
export type ErrorBody = components['schemas']['ErrorBody'];

/** How long one request may take before the CLI gives up on the server. */
const REQUEST_TIMEOUT_MS = 30_000;

/** The client for the server at `baseUrl`, presenting `token` (an API or login token) when given. */
export function createApiClient(baseUrl: string, token?: string): ApiClient {
  return createClient<paths>({
    baseUrl,
    headers: { 'User-Agent': 'accounts CLI', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    fetch: (request: Request) => globalThis.fetch(request, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }),
  });
}

/** The server answered with an error: its `error` and `code` (exit status 1). */
export class ApiRefusal extends Error {
  override readonly name = 'ApiRefusal';
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    readonly error: string,
    /** Seconds from a `Retry-After` header (a `429`), when the server sent one. */
    readonly retryAfter?: number,
  ) {
    super(code ? `${error} (${code})` : error);
  }
}

/** The server could not be reached at all (exit status 1). */
export class UnreachableError extends Error {
  override readonly name = 'UnreachableError';
  constructor(url: string, reason: string) {
    super(`cannot reach ${url} (${reason})`);
  }
}

/** Why a fetch failed, in a few words: undici hides the system error in `cause`. */
function unreachableReason(err: unknown): string {
  if ((err as { name?: string }).name === 'TimeoutError') return `no answer in ${REQUEST_TIMEOUT_MS / 1000} s`;
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  switch (cause?.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'connection reset';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connection timed out';
    default:
      return (cause?.message ?? (err as Error).message ?? String(err)).split('\n')[0];
  }
}

/**
 * Sends one request of the generated client and returns its data, or throws: `ApiRefusal` with
 * the error body's `error` and `code` for an error status, `UnreachableError` when no answer came.
 */
export async function send<D>(url: string, request: Promise<{ data?: D; error?: unknown; response: Response }>): Promise<D> {
  let result: { data?: D; error?: unknown; response: Response };
  try {
    result = await request;
  } catch (err) {
    if (err instanceof SyntaxError) throw new ApiRefusal(0, undefined, `${url} answered with something that is not JSON: is it an accounts server?`);
    throw new UnreachableError(url, unreachableReason(err));
  }
  const { response } = result;
  if (response.ok) return result.data as D;
  const body = result.error as Partial<ErrorBody> | undefined;
  const retryAfter = /^\d+$/.test(response.headers.get('retry-after') ?? '') ? Number(response.headers.get('retry-after')) : undefined;
  if (body && typeof body === 'object' && typeof body.error === 'string') {
    throw new ApiRefusal(response.status, typeof body.code === 'string' ? body.code : undefined, body.error, retryAfter);
  }
  throw new ApiRefusal(response.status, undefined, `${url} answered ${response.status} ${response.statusText}`.trim());
}
