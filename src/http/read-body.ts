import bytes from 'bytes';
import express, { type NextFunction, type Request, type RequestHandler } from 'express';
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
 * - a body sent in chunks is answered `413` as soon as it passes the limit (body-parser would
 *   read it to its end first, however long, before answering: see cutAtLimit);
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
    const once = cutAtLimit(req, limit, next);
    return operation.body === 'json' ? reader.json(req, res, once) : reader.any(req, res, once);
  };
}

/**
 * A body without a `Content-Length` (chunks) is answered `413` the moment it passes the limit,
 * with `Connection: close` (the error handler: its body is unread), so the rest is never read.
 * body-parser finds the same, but reads the whole request off the wire before it says so, which
 * a sender that never stops would make last until REQUEST_TIMEOUT. Its own answer, when it comes
 * (the connection closed), is dropped: `next` is called once.
 */
function cutAtLimit(req: Request, limit: number, next: NextFunction): NextFunction {
  let called = false;
  const once: NextFunction = (err?: unknown) => {
    if (called) return;
    called = true;
    req.off('data', count);
    next(err);
  };
  let seen = 0;
  const count = (chunk: Buffer): void => {
    seen += chunk.length;
    if (seen > limit) once(new PayloadTooLargeError(limit));
  };
  // Added before body-parser's own listener, in the same tick (the stream starts flowing on the next).
  if (req.headers['content-length'] === undefined) req.on('data', count);
  return once;
}
