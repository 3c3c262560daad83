import http, { type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { RETRY_AFTER_SECONDS } from '../domain/errors';
import { requestIdOf } from './request-logger';

export interface DrainingServer {
  server: http.Server;
  /**
   * Stops taking requests on every connection at once and waits for those in flight: resolves
   * true when they have all been answered and every connection is closed, false if `timeoutMs`
   * passed first (the caller then decides what to cut).
   */
  drain(timeoutMs: number): Promise<boolean>;
  /** Requests being handled now. */
  readonly inFlight: number;
}

/**
 * An HTTP server that shuts down without losing or cutting work (API.md §5). Once draining:
 * the listening socket is closed; idle keep-alive connections are closed; a response still in
 * the making gets `Connection: close`, so its connection ends with it; a request that still
 * arrives on an open connection is answered `503 unavailable` with `Connection: close` and never
 * reaches the app, so nothing of it commits. Requests already in the app run to their end.
 */
export function createDrainingServer(app: RequestListener): DrainingServer {
  const inFlight = new Set<ServerResponse>();
  let draining = false;

  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    if (draining) return refuse(req, res);
    inFlight.add(res);
    res.once('close', () => {
      inFlight.delete(res);
      // This response may have left a keep-alive connection idle: close it rather than wait for another request.
      if (draining) setImmediate(() => server.closeIdleConnections());
    });
    app(req, res);
  });

  const drain = (timeoutMs: number): Promise<boolean> => {
    draining = true;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref();
      server.close(() => {
        clearTimeout(timer);
        resolve(true);
      });
      for (const res of inFlight) {
        if (!res.headersSent) res.setHeader('Connection', 'close');
      }
      server.closeIdleConnections();
    });
  };

  return {
    server,
    drain,
    get inFlight() {
      return inFlight.size;
    },
  };
}

function refuse(req: IncomingMessage, res: ServerResponse): void {
  const requestId = requestIdOf(req);
  const body = JSON.stringify({ error: 'the service is shutting down; try again', code: 'unavailable', request_id: requestId });
  res.writeHead(503, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Retry-After': String(RETRY_AFTER_SECONDS),
    'X-Request-Id': requestId,
    'Cache-Control': 'no-store',
    Connection: 'close',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  req.resume(); // the body, if any, is not read: let it drain so the socket can close cleanly
}
