import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { createDrainingServer } from '../../src/http/draining-server';
import { partialRequest } from '../helpers/partial-request';
import { createTestApp } from '../helpers/test-app';

/** An app whose answers wait until the test lets them go; it counts the requests it saw. */
function slowApp() {
  const seen: string[] = [];
  const waiting: (() => void)[] = [];
  const app: http.RequestListener = (req, res) => {
    seen.push(req.url ?? '');
    waiting.push(() => res.end('done'));
  };
  return { app, seen, releaseAll: () => waiting.splice(0).forEach((go) => go()), waiting };
}

function request(port: number, agent: http.Agent, path: string): Promise<{ status?: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The draining server over `app`, listening on a free port. */
async function serve(app: http.RequestListener) {
  const drained = createDrainingServer(app);
  drained.server.listen(0, '127.0.0.1');
  await new Promise((r) => drained.server.once('listening', r));
  return { drained, port: (drained.server.address() as AddressInfo).port };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!check()) throw new Error('timed out');
}

describe('the draining server', () => {
  it('stops listening, finishes requests in flight with Connection: close, and closes every connection, idle keep-alive ones too', async () => {
    const { app, seen, releaseAll, waiting } = slowApp();
    const { drained, port } = await serve(app);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    try {
      // Two keep-alive connections: one busy, one idle after a first answer.
      const warm = request(port, agent, '/warm');
      await until(() => waiting.length === 1);
      releaseAll();
      expect((await warm).status).toBe(200);
      const busy = request(port, agent, '/busy');
      await until(() => waiting.length === 1);
      const done = drained.drain(5_000);
      expect(drained.inFlight).toBe(1);

      // A request that comes after the drain began never reaches the app.
      const idleSocketGone = new Promise<void>((resolve) => setTimeout(resolve, 50));
      await idleSocketGone;
      const late = await new Promise<{ status?: number; headers: http.IncomingHttpHeaders; body: string } | Error>((resolve) => {
        // A fresh connection: the listener is closed, so it is refused outright.
        const req = http.request({ host: '127.0.0.1', port, path: '/late', agent: false }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
        });
        req.on('error', (err) => resolve(err));
        req.end();
      });
      expect(late).toMatchObject({ code: 'ECONNREFUSED' });
      expect(seen).toEqual(['/warm', '/busy']);

      releaseAll();
      const answered = await busy;
      expect(answered.status).toBe(200);
      expect(answered.headers.connection).toBe('close');
      expect(await done).toBe(true); // the server's close callback: every connection, the idle one too, is closed
    } finally {
      agent.destroy();
      drained.server.close();
    }
  });

  it('answers a request completed on an open connection after the drain began with 503 unavailable and Connection: close', async () => {
    const { app, seen } = slowApp();
    const { drained, port } = await serve(app);
    const net = await import('node:net');
    const socket = net.connect(port, '127.0.0.1');
    let raw = '';
    socket.on('data', (c) => (raw += c));
    // Half a request before the drain (the connection is not idle), the rest after it.
    socket.write('POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n');
    await new Promise((r) => setTimeout(r, 50));
    const done = drained.drain(5_000);
    socket.write('X-Request-Id: late-1\r\n\r\n{}');
    await new Promise((r) => socket.once('close', r));
    expect(await done).toBe(true);
    expect(seen).toEqual([]);
    expect(raw).toMatch(/^HTTP\/1\.1 503 /);
    expect(raw).toMatch(/\r\nConnection: close\r\n/i);
    expect(raw).toMatch(/\r\nRetry-After: 2\r\n/i);
    expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toEqual({ error: expect.any(String), code: 'unavailable', request_id: 'late-1' });
  });

  it('never hands a pipelined request queued behind the last answer to the app', async () => {
    const { app, seen, releaseAll, waiting } = slowApp();
    const { drained, port } = await serve(app);
    const net = await import('node:net');
    const socket = net.connect(port, '127.0.0.1');
    let raw = '';
    socket.on('data', (c) => (raw += c));
    socket.write('GET /first HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => waiting.length === 1);
    const done = drained.drain(5_000);
    socket.write('GET /second HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 50));
    releaseAll();
    await new Promise((r) => socket.once('close', r));
    expect(await done).toBe(true);
    expect(seen).toEqual(['/first']);
    expect(raw).toMatch(/^HTTP\/1\.1 200 OK\r\nConnection: close\r\n/);
    expect(raw.match(/HTTP\/1\.1 /g)).toHaveLength(1);
  });

  it('reports a timeout while requests are still in flight', async () => {
    const { app, waiting, releaseAll } = slowApp();
    const { drained, port } = await serve(app);
    const pending = request(port, new http.Agent({ keepAlive: false }), '/stuck');
    await until(() => waiting.length === 1);
    expect(await drained.drain(100)).toBe(false);
    expect(drained.inFlight).toBe(1);
    releaseAll();
    expect((await pending).status).toBe(200);
  });
});

describe('the draining server in front of Express', () => {
  it('still marks an answer in flight Connection: close (Express swaps the response prototype)', async () => {
    const express = (await import('express')).default;
    const waiting: (() => void)[] = [];
    const app = express();
    app.get('/slow', (_req, res) => {
      waiting.push(() => res.json({ done: true }));
    });
    const { drained, port } = await serve(app as unknown as http.RequestListener);
    const pending = request(port, new http.Agent({ keepAlive: true }), '/slow');
    await until(() => waiting.length === 1);
    const done = drained.drain(5_000);
    waiting[0]();
    const answered = await pending;
    expect([answered.status, answered.headers.connection, answered.body]).toEqual([200, 'close', '{"done":true}']);
    expect(await done).toBe(true);
  });
});

describe('slow senders', () => {
  /** Raw bytes to the server, then whatever it answers until it closes the connection (or the deadline). */
  function rawExchange(port: number, head: string, deadlineMs = 5000): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write(head));
      let answer = '';
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`the connection was still open after ${deadlineMs} ms: ${JSON.stringify(answer)}`));
      }, deadlineMs);
      socket.on('data', (c) => (answer += c.toString('latin1')));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(answer);
      });
    });
  }

  it('cuts a request whose body trickles at requestTimeoutMs (408, connection closed) and one whose headers never end at headersTimeoutMs; others are served meanwhile', async () => {
    // An app that reads the whole body before answering, as body-parser does.
    const app: http.RequestListener = (req, res) => {
      let length = 0;
      req.on('data', (c: Buffer) => (length += c.length));
      req.on('end', () => res.end(String(length)));
    };
    const drained = createDrainingServer(app, undefined, { headersTimeoutMs: 200, requestTimeoutMs: 400 });
    drained.server.listen(0, '127.0.0.1');
    await new Promise((r) => drained.server.once('listening', r));
    const port = (drained.server.address() as AddressInfo).port;
    try {
      const trickling = partialRequest(`http://127.0.0.1:${port}`, { method: 'POST', path: '/slow', headers: { 'Content-Length': '1000' }, send: '{', trickleEveryMs: 50 });
      const stalled = rawExchange(port, 'POST /stalled HTTP/1.1\r\nHost: x\r\nContent-Le');
      await until(() => drained.inFlight === 1);
      // Meanwhile the event loop is free: other requests are answered.
      for (let i = 0; i < 3; i++) expect((await request(port, new http.Agent(), '/other')).status).toBe(200);
      const cut = await trickling;
      expect(cut.status).toBe(408);
      await cut.closed;
      expect(await stalled).toMatch(/^HTTP\/1\.1 408 /);
      // Their connections are gone: nothing holds a drain.
      expect(await drained.drain(5_000)).toBe(true);
    } finally {
      drained.server.closeAllConnections();
      drained.server.close();
    }
  });

  it('takes HEADERS_TIMEOUT and REQUEST_TIMEOUT from the configuration: a login trickling its body is cut with 408, logs no error, and GET /user/me is served meanwhile', async () => {
    const lines: string[] = [];
    const t = await createTestApp({ env: { HEADERS_TIMEOUT: '300ms', REQUEST_TIMEOUT: '600ms', LOG_LEVEL: 'warn' }, logDestination: { write: (line) => lines.push(line) } });
    try {
      const me = await t.factory.loggedIn();
      const trickling = partialRequest(t.baseUrl, { method: 'POST', path: '/login', headers: { 'Content-Type': 'application/json', 'Content-Length': '1000' }, send: '{"email": ', trickleEveryMs: 50 });
      for (let i = 0; i < 3; i++) expect((await t.http().get('/user/me').set('Authorization', `Bearer ${me.jwt}`)).status).toBe(200);
      const cut = await trickling;
      expect(cut.status).toBe(408);
      await cut.closed;
      expect(lines.filter((l) => (JSON.parse(l) as { level: number }).level >= 50)).toEqual([]);
    } finally {
      await t.close();
    }
  });
});

describe('the draining server under back-to-back keep-alive clients', () => {
  it('answers a request that arrives on a kept-alive connection while it drains 503 with Connection: close, never a reset, even when the drain begins late (a busy event loop)', async () => {
    const { drained, port } = await serve((_req, res) => void setImmediate(() => res.end('ok')));
    const CLIENTS = 6;
    const outcomes: { status?: number; connection?: string; error?: string }[] = [];
    const client = async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (;;) {
          const o: (typeof outcomes)[number] = await request(port, agent, '/next').then(
            (r) => ({ status: r.status, connection: r.headers.connection }),
            (err: NodeJS.ErrnoException) => ({ error: `${err.code ?? ''} ${err.message}` }),
          );
          outcomes.push(o);
          if (o.error || o.connection === 'close') return;
        }
      } finally {
        agent.destroy();
      }
    };
    const clients = Array.from({ length: CLIENTS }, client);
    await until(() => outcomes.length >= CLIENTS * 5);
    // The event loop busy for a while (as when the embedded database runs a query and the signal
    // waits): the clients' next requests wait, unread, in the sockets' buffers.
    const busyUntil = performance.now() + 100;
    while (performance.now() < busyUntil);
    const done = drained.drain(10_000);
    await Promise.all(clients);
    expect(await done).toBe(true);
    expect(outcomes.filter((o) => o.error)).toEqual([]);
    expect(outcomes.filter((o) => !(o.status === 200 || (o.status === 503 && o.connection === 'close')))).toEqual([]);
    expect(outcomes.filter((o) => o.connection === 'close')).toHaveLength(CLIENTS);
  });
});
