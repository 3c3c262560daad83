import http from 'node:http';

export interface PartialAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
  /** The server said `100 Continue` (asked for the body) before it answered. */
  continued: boolean;
  /** Resolves when the server has closed the connection (rejects if it stays open past the deadline). */
  closed: Promise<void>;
}

export interface PartialRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  /** What is sent of the body, right after the headers; the headers may promise more. */
  send?: Buffer | string;
  /** Sent once the server asks (`100 Continue`), for requests that `Expect` it. */
  onContinue?: Buffer | string;
  /** Then one more byte (a space) every this many milliseconds, until the answer: a slow sender. */
  trickleEveryMs?: number;
  /** How long to wait for the answer, and for the connection to close, before failing. */
  deadlineMs?: number;
}

/**
 * A request over a real socket of which only the headers and `send` go out, the rest of the
 * body never (or `onContinue`, if the server asks for it): an answer proves the server answered
 * without the rest, so without reading, inflating or parsing it. No answer within the deadline
 * rejects (the server is waiting for the body).
 */
export function partialRequest(baseUrl: string, options: PartialRequest): Promise<PartialAnswer> {
  const deadlineMs = options.deadlineMs ?? 5000;
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    let continued = false;
    const req = http.request({ host: hostname, port, method: options.method, path: options.path, headers: options.headers, agent: false });
    const socketClosed = new Promise<void>((closedResolve, closedReject) => {
      req.once('socket', (socket) => {
        const timer = setTimeout(() => closedReject(new Error(`the server kept the connection open for ${deadlineMs} ms`)), deadlineMs);
        socket.once('close', () => {
          clearTimeout(timer);
          closedResolve();
        });
      });
    });
    socketClosed.catch(() => undefined); // awaited by the test that wants it
    const trickle = options.trickleEveryMs === undefined ? undefined : setInterval(() => req.write(' '), options.trickleEveryMs);
    const timer = setTimeout(() => {
      clearInterval(trickle);
      req.destroy();
      reject(new Error(`no answer within ${deadlineMs} ms: the server waited for the rest of the body`));
    }, deadlineMs);
    req.on('continue', () => {
      continued = true;
      if (options.onContinue !== undefined) req.end(options.onContinue);
    });
    req.on('response', (res) => {
      clearInterval(trickle);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          // not JSON: the text as it is
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, continued, closed: socketClosed.finally(() => req.destroy()) });
        if (res.headers.connection !== 'close') req.destroy(); // a kept-alive connection: the test is done with it
      });
    });
    req.on('error', (err) => {
      clearInterval(trickle);
      clearTimeout(timer);
      reject(err);
    });
    req.flushHeaders();
    if (options.send !== undefined) req.write(options.send);
  });
}
