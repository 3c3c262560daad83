import { isUtf8 } from 'node:buffer';
import type { NextFunction, Request, Response } from 'express';
import { UnauthenticatedError, UnsupportedMediaTypeError, ValidationError, type ErrorDetail } from '../domain/errors';
import { isText } from '../domain/text';

/** JSON nested deeper than this is refused (API.md §0): `{"a": 1}` is one level. */
export const MAX_JSON_DEPTH = 32;

declare module 'express-serve-static-core' {
  interface Request {
    /** Set for `x-invalid-text: handler` operations whose input breaks the text rule. */
    invalidInput?: ErrorDetail;
    /** Set by verifyUtf8 when the body's bytes are not UTF-8 (answered once the operation is known). */
    bodyNotUtf8?: boolean;
  }
}

function pointer(path: string, key: string): string {
  return `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

/**
 * The first place in a parsed JSON value that breaks the rules every body is held to: a string
 * (value or key) that is not text, or nesting deeper than MAX_JSON_DEPTH. Recursion stops at the
 * limit, so no input can exhaust the stack.
 */
export function findInvalidJson(value: unknown, path = '/body', depth = 0): ErrorDetail | undefined {
  if (typeof value === 'string') return isText(value) ? undefined : { path, message: 'must be UTF-8 text without NUL characters or lone surrogates' };
  if (typeof value !== 'object' || value === null) return undefined;
  if (depth >= MAX_JSON_DEPTH) return { path, message: `is nested deeper than ${MAX_JSON_DEPTH} levels` };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findInvalidJson(value[i], `${path}/${i}`, depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    if (!isText(key)) return { path: pointer(path, '?'), message: 'property names must be UTF-8 text without NUL characters or lone surrogates' };
    const found = findInvalidJson(item, pointer(path, key), depth + 1);
    if (found) return found;
  }
  return undefined;
}

/**
 * The URL's part of the text rule: percent-encodings that decode to UTF-8 text without NUL.
 * (Lone surrogates cannot be percent-encoded: they are not UTF-8.) Only URLs with a `%` need a look.
 */
function findInvalidUrl(url: string): ErrorDetail | undefined {
  if (!url.includes('%')) return undefined;
  const q = url.indexOf('?');
  const parts: [string, string][] = q < 0 ? [['/path', url]] : [['/path', url.slice(0, q)], ['/query', url.slice(q + 1)]];
  for (const [path, part] of parts) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(part);
    } catch {
      return { path, message: 'has a malformed percent-encoding (it must encode UTF-8)' };
    }
    if (decoded.includes('\u0000')) return { path, message: 'must not contain NUL characters' };
  }
  return undefined;
}

/**
 * `express.json`'s `verify`: a JSON body is UTF-8 (RFC 8259). Another charset is a 415 (thrown
 * errors keep their status through body-parser); bytes that are not UTF-8 are marked, and
 * answered by `textRule` as the operation says.
 */
export function verifyUtf8(req: Request, _res: unknown, body: Buffer, encoding: string | null): void {
  if (encoding && !/^utf-?8$/i.test(encoding)) throw new UnsupportedMediaTypeError('JSON bodies are UTF-8');
  if (!isUtf8(body)) req.bodyNotUtf8 = true;
}

const NOT_UTF8: ErrorDetail = { path: '/body', message: 'is not valid UTF-8' };

/**
 * API.md §0's text rule for every operation of the spec, after the caller is authenticated and
 * before the request is validated: every string of the path, query and body is UTF-8 text
 * without NUL or lone surrogates, and JSON is at most 32 levels deep. What breaks it is answered
 * as the operation's `x-invalid-text` says (the default: 400 validation_failed).
 */
export function textRule(req: Request, res: Response, next: NextFunction): void {
  const problem =
    findInvalidUrl(req.originalUrl) ?? (req.bodyNotUtf8 ? NOT_UTF8 : undefined) ?? (req.body === undefined ? undefined : findInvalidJson(req.body));
  if (!problem) return next();
  const answer = req.operation!.invalidText;
  const tooDeep = problem.message.startsWith('is nested');
  if (tooDeep && answer !== 'handler') return next(new ValidationError('JSON is nested too deeply', [problem]));
  switch (answer) {
    case 'unauthenticated':
      return next(new UnauthenticatedError());
    case 'accepted':
      res.status(202).end();
      return;
    case 'handler':
      req.invalidInput = problem;
      return next();
    default:
      return next(new ValidationError('invalid text', [problem]));
  }
}
