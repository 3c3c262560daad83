/** RhodeCode's envelope: `{"id", "auth_token" (or the older "api_key"), "method", "args"}`. */
export interface Envelope {
  id: unknown;
  token: string | undefined;
  method: string;
  args: Record<string, unknown>;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The envelope, or RhodeCode's message for a malformed one; `id` is kept whenever there is one. */
export function readEnvelope(body: unknown): Envelope | { id: unknown; error: string } {
  if (!isObject(body)) return { id: null, error: 'Incorrect JSON data. The request must be a JSON object' };
  const id = body.id ?? null;
  const token = body.auth_token ?? body.api_key;
  if (token !== undefined && token !== null && typeof token !== 'string') return { id, error: 'Incorrect JSON data. `auth_token` must be a string' };
  if (body.method === undefined || body.method === null) return { id, error: "Incorrect JSON data. Missing 'method'" };
  if (typeof body.method !== 'string') return { id, error: 'Incorrect JSON data. `method` must be a string' };
  const args = body.args ?? {};
  if (!isObject(args)) return { id, error: 'Incorrect JSON data. `args` must be an object' };
  return { id, token: token ?? undefined, method: body.method, args };
}
