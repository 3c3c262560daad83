import { isUtf8 } from 'node:buffer';
import express, { Router, type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';
import { isDatabaseUnavailable } from '../db/availability';
import { UnauthenticatedError } from '../domain/errors';
import { scopesAllow } from '../domain/scopes';
import type { Caller } from '../domain/types';
import type { AuthService } from '../services/auth-service';
import { isRpcMethod, rpcHttpMethod, RpcError, type RpcService } from '../services/rpc-service';
import { requestContext } from './authenticate';
import { findInvalidJson } from './text-rule';

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

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by rpcBodyReader when the body is not JSON. */
    rpcParseError?: boolean;
  }
}

/**
 * The JSON-RPC body, whatever its Content-Type (RhodeCode's docs send `text/plain`, `curl
 * --data-binary` a form type, Python's `requests.post(data=...)` none): read as UTF-8 JSON, before
 * `express.json` (which then leaves it alone). Bytes that are not UTF-8 are marked for the text
 * rule; a body that is not JSON is marked for the handler to answer with an error envelope.
 */
export function rpcBodyReader(limit: string): RequestHandler {
  const raw = express.raw({ type: () => true, limit });
  return (req, res, next) => {
    if (req.method !== 'POST' || req.path !== RPC_PATH) return next();
    raw(req, res, (err?: unknown) => {
      if (err) return next(err);
      const body: unknown = req.body;
      req.body = undefined;
      if (!Buffer.isBuffer(body) || body.length === 0) return next();
      if (!isUtf8(body)) {
        req.bodyNotUtf8 = true;
        return next();
      }
      try {
        req.body = JSON.parse(body.toString('utf8'));
      } catch {
        req.rpcParseError = true;
      }
      next();
    });
  };
}

function answer(res: Response, id: unknown, result: unknown, error: string | null): void {
  res.status(200).json({ id: id === undefined ? null : id, result: error === null ? result : null, error });
}

/**
 * `POST /_admin/api`: RhodeCode's JSON-RPC envelope, HTTP 200 for every answer but one: while the
 * database is out of reach, the route answers `503` like every other (a transport failure, for
 * clients to retry). The spec marks it `security: []`: the token travels in the envelope, and
 * is checked here as the authenticate middleware checks a bearer token (its row on every call,
 * the token's scopes). Only API tokens are accepted, as RhodeCode accepts only API keys.
 */
export function rpcRoutes(rpc: RpcService, auth: AuthService, log: Logger): Router {
  const router = Router();

  router.post(RPC_PATH, async (req, res) => {
    if (req.rpcParseError) return answer(res, null, null, 'JSON parse error');
    const body: unknown = req.body;
    if (req.invalidInput) {
      const { path, message } = req.invalidInput;
      const id = isObject(body) && !findInvalidJson(body.id) ? (body.id ?? null) : null;
      return answer(res, id, null, `Incorrect JSON data. ${path.replace(/^\/body\/?/, '') || 'the body'} ${message}`);
    }
    const envelope = readEnvelope(body ?? {}); // an empty body is an envelope with nothing in it
    if ('error' in envelope) return answer(res, envelope.id, null, envelope.error);
    const { id, method, args } = envelope;
    if (!isRpcMethod(method)) return answer(res, id, null, `method \`${method}\` does not exist`);

    if (!envelope.token) return answer(res, id, null, INVALID_API_KEY);
    let caller: Caller;
    try {
      caller = await auth.authenticate(envelope.token, requestContext(req), 'bearer');
    } catch (err) {
      if (err instanceof UnauthenticatedError) return answer(res, id, null, INVALID_API_KEY);
      if (isDatabaseUnavailable(err)) throw err;
      log.error({ err, request_id: String(req.id ?? ''), rpc_method: method }, 'unexpected error');
      return answer(res, id, null, INTERNAL_ERROR);
    }
    if (caller.token.kind !== 'api') return answer(res, id, null, INVALID_API_KEY);
    if (!scopesAllow(caller.token.scopes, rpcHttpMethod(method))) return answer(res, id, null, 'API KEY has bad role for an API call');
    res.set('Cache-Control', 'no-store');

    try {
      answer(res, id, await rpc.call(caller.user, method, args), null);
    } catch (err) {
      if (err instanceof RpcError) return answer(res, id, null, err.message);
      if (isDatabaseUnavailable(err)) throw err;
      log.error({ err, request_id: String(req.id ?? ''), rpc_method: method }, 'unexpected error');
      answer(res, id, null, INTERNAL_ERROR);
    }
  });

  return router;
}
