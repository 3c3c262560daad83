import crypto from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';

const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A sane incoming X-Request-Id, or a fresh one. */
export function requestIdOf(req: IncomingMessage): string {
  const incoming = req.headers['x-request-id'];
  return typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
}

/** A sane incoming X-Request-Id is kept; otherwise a fresh one. Echoed in the response. */
function assignRequestId(req: IncomingMessage, res: ServerResponse): string {
  const id = requestIdOf(req);
  res.setHeader('X-Request-Id', id);
  return id;
}

/**
 * The URL as the request log shows it: the value of every query parameter that no operation
 * declares is replaced by `[redacted]`. No operation takes a secret in its query, but a mailed
 * link followed to the API (`/reset-password?token=...`) or a client's mistake can put one there.
 */
export function loggableUrl(url: string, shown: ReadonlySet<string>): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const query = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 0) return pair;
      let name: string;
      try {
        name = decodeURIComponent(pair.slice(0, eq).replace(/\+/g, ' '));
      } catch {
        name = '';
      }
      return shown.has(name) ? pair : `${pair.slice(0, eq)}=[redacted]`;
    });
  return `${url.slice(0, q)}?${query.join('&')}`;
}

/** Request ids (a sane incoming X-Request-Id is kept) and one log line per request. */
export function requestLogger(log: Logger, shownQueryNames: ReadonlySet<string>) {
  // pino-http makes a child logger and hooks the response on every request even when the access
  // line would be dropped; with info off, only the request id is needed (the error handler uses it).
  if (!log.isLevelEnabled('info')) {
    return (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
      req.id = assignRequestId(req, res);
      next();
    };
  }
  return pinoHttp({
    logger: log,
    genReqId: assignRequestId,
    // A 500 is logged once, with its error, by the error handler; this is the access log.
    customLogLevel: () => 'info',
    // pino-http puts an error with its stack on the access line of every 5xx; a 503 is an
    // outage or a shutdown (logged once where it starts), not a failure of this request.
    customErrorObject: (_req: IncomingMessage, res: ServerResponse, _err: Error, val: Record<string, unknown>) => {
      if (res.statusCode !== 503) return val;
      const { err: _dropped, ...rest } = val;
      return rest;
    },
    serializers: {
      req: (req: { id: string; method: string; url: string; remoteAddress?: string; raw?: { isHead?: boolean } }) => ({
        id: req.id,
        method: req.raw?.isHead ? 'HEAD' : req.method, // routed as GET (app.ts), logged as what it was
        url: loggableUrl(req.url, shownQueryNames),
        remoteAddress: req.remoteAddress,
      }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  });
}
