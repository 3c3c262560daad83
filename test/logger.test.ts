import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../src/logger';
import { bearer, createTestApp, testAppWithAdmin } from './helpers/test-app';

function capture() {
  const lines: Record<string, unknown>[] = [];
  return { lines, write: (line: string) => void lines.push(JSON.parse(line)) };
}

describe('logging', () => {
  it('redacts authorization, cookies, passwords and tokens wherever they appear', () => {
    const out = capture();
    const log = createLogger('info', out);
    log.info({ req: { headers: { authorization: 'Bearer abc', cookie: 'account_session=abc' } }, body: { password: 'hunter22', token: 'tkn' } }, 'x');
    const text = JSON.stringify(out.lines);
    for (const secret of ['Bearer abc', 'account_session=abc', 'hunter22', 'tkn']) expect(text).not.toContain(secret);
    expect(text).toContain('[redacted]');
  });

  describe('over HTTP', () => {
    const out = capture();
    // A console of its own (one page), so a mailed link lands on a page whether or not `npm run build` has made the real one.
    const consoleDir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-logger-console-'));
    fs.writeFileSync(path.join(consoleDir, 'index.html'), '<!doctype html><title>console</title>');
    const { t, admin } = testAppWithAdmin({ env: { LOG_LEVEL: 'info', CONSOLE_DIR: consoleDir }, logDestination: out });
    afterAll(() => fs.rmSync(consoleDir, { recursive: true, force: true }));

    it('writes one access line a request, without secrets, and a 500 once with its request id', async () => {
      // The access lines: the background workers log lines of their own (the audit checkpoint).
      const access = () => out.lines.filter((l) => 'req' in l);
      out.lines.length = 0;
      await t.http().get('/user/me').set(bearer(admin.jwt)).expect(200);
      expect(access()).toHaveLength(1);
      expect(access()[0]).toMatchObject({ req: { method: 'GET', url: '/user/me' }, res: { statusCode: 200 } });
      expect(JSON.stringify(out.lines)).not.toContain(admin.jwt);
      out.lines.length = 0;
      await t.http().head('/user/me').set(bearer(admin.jwt)).expect(200);
      expect(access()).toMatchObject([{ req: { method: 'HEAD', url: '/user/me' }, res: { statusCode: 200 } }]);

      // A mailed link followed to the API, a secret in a query a route does not take: never in the log.
      out.lines.length = 0;
      const secret = 'cZd8Qx7-secret_value';
      await t.http().get(`/reset-password?token=${secret}&x=1`).expect(200);
      await t.http().get(`/user?limit=2&api%5Fkey=${secret}&q=ad`).set(bearer(admin.jwt)).expect(400);
      await t.http().get('/user?limit=2&q=ad').set(bearer(admin.jwt)).expect(200);
      expect(access().map((l) => (l.req as { url: string }).url)).toEqual([
        '/reset-password?token=[redacted]&x=[redacted]',
        '/user?limit=2&api%5Fkey=[redacted]&q=ad',
        '/user?limit=2&q=ad', // the parameters operations declare are shown
      ]);
      expect(JSON.stringify(out.lines)).not.toContain(secret);

      await t.knex.raw('alter table users rename column last_name to family_name');
      out.lines.length = 0;
      const res = await t.http().get(`/user/${crypto.randomUUID()}`).set(bearer(admin.jwt));
      expect(res.status).toBe(500);
      const errors = out.lines.filter((l) => l.level === 50);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ request_id: res.body.request_id, msg: 'unexpected error' });
      expect(JSON.stringify(res.body)).not.toMatch(/family_name|last_name|column/);
    });
  });

  it('writes a 503 access line without an error or a stack trace (an outage is logged once, where it starts)', async () => {
    const out = capture();
    const t = await createTestApp({ env: { LOG_LEVEL: 'info' }, logDestination: out });
    await t.container.stop();
    await t.knex.destroy();
    try {
      out.lines.length = 0;
      const res = await t.http().get('/readyz');
      expect(res.status).toBe(503);
      const access = out.lines.filter((l) => 'req' in l);
      expect(access).toHaveLength(1);
      expect(access[0]).toMatchObject({ req: { url: '/readyz' }, res: { statusCode: 503 } });
      expect(access[0]).not.toHaveProperty('err');
      expect(JSON.stringify(out.lines)).not.toMatch(/stack|    at /);
    } finally {
      await t.close().catch(() => undefined);
    }
  });
});
