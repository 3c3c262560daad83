import { isUtf8 } from 'node:buffer';
import express, { type RequestHandler, type Response } from 'express';
import type { Logger } from 'pino';
import { isDatabaseUnavailable } from '../../db/availability';
import { UnauthenticatedError } from '../../domain/errors';
import type { Caller } from '../../domain/types';
import type { RpcApi } from '../../rpc/api';
import { readEnvelope, isObject } from '../../rpc/envelope';
import { INVALID_API_KEY, RpcError } from '../../rpc/errors';
import type { AuthService } from '../../services/auth-service';
import { requestContext } from '../authenticate';
import { requestMeta } from '../audit-context';
import type { Handlers } from '../mount';
import { findInvalidJson } from '../text-rule';

const INTERNAL_ERROR = 'Internal server error';

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by readAnyAsJson when the body is not JSON. */
    rpcParseError?: boolean;
  }
}

/**
 * The JSON-RPC body, whatever its Content-Type (RhodeCode's docs send `text/plain`, `curl
 * --data-binary` a form type, Python's `requests.post(data=...)` none): read as UTF-8 JSON.
 * Bytes that are not UTF-8 are marked for the text rule; a body that is not JSON is marked for
 * the handler to answer with an error envelope.
 */
export function readAnyAsJson(limit: number | string): RequestHandler {
  const raw = express.raw({ type: () => true, limit, inflate: false });
  return (req, res, next) => {
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
 * database is out of reach the route answers `503` like every other (a transport failure, for
 * clients to retry). The operation is public in the spec: the token travels in the envelope, and
 * is checked here as a bearer token is (its row on every call). Each method's policy is checked
 * by the RPC API: only API tokens (`tokens: api`), as RhodeCode accepts only API keys.
 */
export function rpcHandlers(rpc: RpcApi, auth: AuthService, log: Logger): Handlers {
  return {
    rhodecodeJsonRpc: async (req, res) => {
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
      if (!rpc.has(method)) return answer(res, id, null, `method \`${method}\` does not exist`);

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
      res.set('Cache-Control', 'no-store');

      try {
        answer(res, id, await rpc.call(caller, method, args, requestMeta(req)), null);
      } catch (err) {
        if (err instanceof RpcError) return answer(res, id, null, err.message);
        if (isDatabaseUnavailable(err) || (err as { code?: string }).code === 'unavailable') throw err;
        log.error({ err, request_id: String(req.id ?? ''), rpc_method: method }, 'unexpected error');
        answer(res, id, null, INTERNAL_ERROR);
      }
    },
  };
}
