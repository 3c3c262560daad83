import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { loadApiSpec } from '../../src/api-spec';
import { createApp } from '../../src/app';
import { createDrainingServer } from '../../src/http/draining-server';
import { assertFieldsAreData } from '../../src/http/request-objects';
import { createLogger } from '../../src/logger';
import { createTestApp, type TestApp } from '../helpers/test-app';

/**
 * What the service's requests and responses gained after they were made: every property the
 * request path sets must be declared when the object is made (see src/http/request-objects.ts).
 * Node itself adds `_eventsCount` to a request when it discards the unread rest of it after the
 * answer, which is none of the request path's doing.
 */
async function propertiesAddedBy(t: TestApp, send: (base: string) => Promise<Response>): Promise<{ status: number; added: string[] }> {
  const added: string[] = [];
  const drained = createDrainingServer((req, res) => {
    res.on('finish', () => {
      added.push(...Object.keys(req).filter((k) => !reqBefore.has(k) && k !== '_eventsCount'));
      added.push(...Object.keys(res).filter((k) => !resBefore.has(k)).map((k) => `res.${k}`));
    });
    const reqBefore = new Set(Object.keys(req));
    const resBefore = new Set(Object.keys(res));
    t.app(req, res);
  });
  drained.server.listen(0, '127.0.0.1');
  await new Promise((r) => drained.server.once('listening', r));
  try {
    const answer = await send(`http://127.0.0.1:${(drained.server.address() as AddressInfo).port}`);
    await answer.arrayBuffer();
    await new Promise((r) => setImmediate(r));
    return { status: answer.status, added };
  } finally {
    await drained.drain(5_000);
  }
}

describe.each([
  ['warn', 'no access log'],
  ['info', 'the access log on'],
])('requests and responses of the served app (LOG_LEVEL=%s: %s)', (level) => {
  let t: TestApp;
  let jwt: string;
  beforeAll(async () => {
    // As served (responses are validated in tests only, by a validator that wraps each response's `json`).
    t = await createTestApp({ env: { LOG_LEVEL: level, VALIDATE_RESPONSES: '0' }, logDestination: { write: () => undefined } });
    jwt = (await t.factory.loggedIn({ admin: true })).jwt;
  });
  afterAll(() => t.close());

  const cases: [string, number, (base: string, jwt: string) => Promise<Response>][] = [
    ['GET /user/me', 200, (base, jwt) => fetch(`${base}/user/me`, { headers: { authorization: `Bearer ${jwt}` } })],
    ['HEAD /user/me', 200, (base, jwt) => fetch(`${base}/user/me`, { method: 'HEAD', headers: { authorization: `Bearer ${jwt}` } })],
    ['GET /user/me by cookie', 200, (base, jwt) => fetch(`${base}/user/me`, { headers: { cookie: `account_session=${jwt}` } })],
    ['GET /user?limit=2 (validated)', 200, (base, jwt) => fetch(`${base}/user?limit=2`, { headers: { authorization: `Bearer ${jwt}` } })],
    ['POST /user/me with a body', 200, (base, jwt) => fetch(`${base}/user/me?send_mail=0`, { method: 'POST', headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' }, body: '{"first_name":"Ada"}' })],
    ['POST /login refused (throttled route)', 401, (base) => fetch(`${base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"nobody@example.test","password":"wrong password"}' })],
    ['an unknown route', 404, (base) => fetch(`${base}/no/such/route`)],
    ['JSON-RPC', 200, (base, jwt) => fetch(`${base}/_admin/api`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ id: 1, api_key: jwt, method: 'get_user', args: {} }) })],
  ];
  it.each(cases)('%s gets no property it was not made with', async (_name, status, send) => {
    const seen = await propertiesAddedBy(t, (base) => send(base, jwt));
    expect(seen.status).toBe(status);
    expect(seen.added).toEqual([]);
  });
});

describe('assertFieldsAreData', () => {
  it('accepts Express as it is, and refuses a declared field that is an accessor on the request or response prototype', () => {
    expect(() => assertFieldsAreData(express())).not.toThrow();
    const app = express();
    Object.defineProperty(app.request, 'caller', { get: () => undefined });
    Object.defineProperty(app.response, 'locals', { get: () => ({}), set: () => undefined });
    expect(() => assertFieldsAreData(app)).toThrow('request.caller, response.locals');
  });

  it('is what createApp checks: it fails on such a field', async () => {
    const t = await createTestApp();
    Object.defineProperty(http.IncomingMessage.prototype, 'operation', { get: () => undefined, configurable: true });
    try {
      expect(() =>
        createApp({ config: t.config, services: t.container.services, maintenance: t.container.stores.maintenance, log: createLogger('silent'), apiSpec: loadApiSpec(), rateLimits: t.container.stores.rateLimits, clock: t.clock, metrics: t.container.metrics }),
      ).toThrow('request.operation');
    } finally {
      delete (http.IncomingMessage.prototype as unknown as Record<string, unknown>).operation;
      await t.close();
    }
  });
});
