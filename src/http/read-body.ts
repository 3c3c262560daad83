import bytes from 'bytes';
import express, { type Request, type RequestHandler } from 'express';
import { PayloadTooLargeError } from '../domain/errors';
import { readAnyAsJson } from './handlers/rpc';
import type { Operation } from './route-table';
import { verifyUtf8 } from './text-rule';

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by the draining server: the client waits for `100 Continue` before it sends its body. */
    awaitingContinue?: boolean;
  }
}

/** The request says it has a body (a length above 0, or chunks). */
export function hasBody(req: Request): boolean {
  return Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

/** It has a body that nobody has read to its end: answering now leaves the rest on the wire. */
export function bodyUnread(req: Request): boolean {
  return hasBody(req) && !req.complete;
}

/** `BODY_LIMIT` (a size such as `64kb`) in bytes. */
export function parseLimit(limit: string): number {
  const parsed = bytes.parse(limit);
  if (parsed === null || parsed <= 0) throw new Error(`not a size: ${limit}`);
  return parsed;
}

/**
 * The body, as the operation takes it: JSON, anything read as JSON (JSON-RPC), or none (left
 * unread). Runs after the policy: a body is read only for a caller the operation accepts (or for a
 * public operation), up to the operation's limit (`x-body-limit`, else `defaultLimit`):
 * - a `Content-Length` above the limit is `413` at once, before a byte of the body is read;
 * - a body sent in chunks is cut at the limit (`413`);
 * - a `Content-Encoding` other than `identity` is `415` (body-parser's `inflate: false`): nothing
 *   is inflated, so a small gzip cannot become a large body;
 * - a client that asked `Expect: 100-continue` (the draining server holds it back) is told to send
 *   its body only here, when the body will be read.
 * An error answered before the body was read closes the connection (the error handler).
 */
export function readBody(defaultLimit: number): RequestHandler {
  const readers = new Map<number, { json: RequestHandler; any: RequestHandler }>();
  const readersFor = (limit: number) => {
    let found = readers.get(limit);
    if (!found) {
      found = { json: express.json({ limit, inflate: false, verify: verifyUtf8 }), any: readAnyAsJson(limit) };
      readers.set(limit, found);
    }
    return found;
  };
  return (req, res, next) => {
    const operation: Operation = req.operation!;
    if (operation.body === 'none') return next();
    const limit = operation.bodyLimit ?? defaultLimit;
    if (Number(req.headers['content-length']) > limit) return next(new PayloadTooLargeError(limit));
    if (req.awaitingContinue) {
      req.awaitingContinue = false;
      res.writeContinue();
    }
    const reader = readersFor(limit);
    return operation.body === 'json' ? reader.json(req, res, next) : reader.any(req, res, next);
  };
}
