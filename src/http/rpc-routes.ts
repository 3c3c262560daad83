import express, { Router, type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';
import { UnauthenticatedError } from '../domain/errors';
import { scopesAllow } from '../domain/scopes';
import type { Caller } from '../domain/types';
import type { AuthService } from '../services/auth-service';
import { isRpcMethod, rpcHttpMethod, RpcError, type RpcService } from '../services/rpc-service';
import { requestContext } from './authenticate';

export const RPC_PATH = '/_admin/api';

/** RhodeCode's messages for a bad envelope or token. */
export const INVALID_API_KEY = 'Invalid API KEY';
const INTERNAL_ERROR = 'Internal server error';

interface Envelope {
  id: unknown;
  token: string | undefined;
  method: string;
  args: Record<string, unknown>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The envelope, or the error message for a malformed one; `id` is kept whenever there is one. */
function readEnvelope(body: unknown): Envelope | { id: unknown; error: string } {
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

function isTextOrUntyped(contentType: string | undefined): boolean {
  return contentType === undefined || /^text\/plain\s*(;|$)/i.test(contentType);
}

/** A text body holds the same JSON. */
function parsedBody(req: Request): { body: unknown } | { error: string } {
  if (typeof req.body !== 'string') return { body: req.body };
  try {
    return { body: JSON.parse(req.body) };
  } catch {
    return { error: 'JSON parse error' };
  }
}

function answer(res: Response, id: unknown, result: unknown, error: string | null): void {
  res.status(200).json({ id: id === undefined ? null : id, result: error === null ? result : null, error });
}

/**
 * `POST /_admin/api`: RhodeCode's JSON-RPC envelope, HTTP 200 for every answer. The spec marks it
 * `security: []`: the token travels in the envelope, and is checked here as the authenticate
 * middleware checks a bearer token (its row on every call, the token's scopes, and the
 * confinement of a login token whose user must change their password).
 */
export function rpcRoutes(rpc: RpcService, auth: AuthService, log: Logger, bodyLimit: string): (RequestHandler | ErrorRequestHandler)[] {
  const router = Router();

  // express.json has read an application/json body; RhodeCode's clients also send text/plain
  // (its curl example) or no Content-Type at all (Python's `requests.post(url, data=...)`).
  const textBody = express.text({ type: (req) => isTextOrUntyped(req.headers['content-type']), limit: bodyLimit });

  router.post(RPC_PATH, textBody, async (req, res) => {
    const parsed = parsedBody(req);
    if ('error' in parsed) return answer(res, null, null, parsed.error);
    const envelope = readEnvelope(parsed.body);
    if ('error' in envelope) return answer(res, envelope.id, null, envelope.error);
    const { id, method, args } = envelope;
    if (!isRpcMethod(method)) return answer(res, id, null, `method \`${method}\` does not exist`);

    if (!envelope.token) return answer(res, id, null, INVALID_API_KEY);
    let caller: Caller;
    try {
      caller = await auth.authenticate(envelope.token, requestContext(req), 'bearer');
    } catch (err) {
      if (err instanceof UnauthenticatedError) return answer(res, id, null, INVALID_API_KEY);
      log.error({ err, request_id: String(req.id ?? ''), rpc_method: method }, 'unexpected error');
      return answer(res, id, null, INTERNAL_ERROR);
    }
    if (caller.token.kind === 'login' && caller.user.forcePasswordChange) return answer(res, id, null, 'Password change required');
    if (!scopesAllow(caller.token.scopes, rpcHttpMethod(method))) return answer(res, id, null, 'API KEY has bad role for an API call');
    res.set('Cache-Control', 'no-store');

    try {
      answer(res, id, await rpc.call(caller.user, method, args), null);
    } catch (err) {
      if (err instanceof RpcError) return answer(res, id, null, err.message);
      log.error({ err, request_id: String(req.id ?? ''), rpc_method: method }, 'unexpected error');
      answer(res, id, null, INTERNAL_ERROR);
    }
  });

  /** A body express.json could not parse, on this route only: an envelope, not a 400. */
  const parseErrors: ErrorRequestHandler = (err, req, res, next) => {
    const type = (err as { type?: string } | null)?.type;
    if (req.method === 'POST' && req.path === RPC_PATH && type === 'entity.parse.failed') return answer(res, null, null, 'JSON parse error');
    next(err);
  };

  return [router, parseErrors];
}
