import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import express from 'express';
import supertest from 'supertest';
import { loadApiSpec } from '../../src/api-spec';
import { CONSOLE_PATH, CONSOLE_ROUTES } from '../../src/console-paths';
import { CONSOLE_ASSETS, CONSOLE_PAGES, consolePages } from '../../src/http/console';
import { createTestApp, type TestApp } from '../helpers/test-app';

/**
 * The web console as the service serves it (the pages themselves are tested in Chromium, in
 * test/browser/console-*.test.ts): built by console/build.mjs into a directory of this file's own,
 * on its own paths, with the API's CSP, cached by content hash, and never in an API route's way.
 */
const root = path.resolve(__dirname, '../..');
let dir: string;
let t: TestApp;
let script: string;
let style: string;

function build(out: string) {
  const res = spawnSync(process.execPath, [path.join(root, 'console/build.mjs'), out], { encoding: 'utf8' });
  expect({ status: res.status, stderr: res.stderr }).toEqual({ status: 0, stderr: '' });
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-console-'));
  build(dir);
  t = await createTestApp({ env: { CONSOLE_DIR: dir } });
  const html = fs.readFileSync(path.join(dir, 'index.html'), 'utf8');
  script = /src="(\/assets\/[^"]+\.js)"/.exec(html)![1];
  style = /href="(\/assets\/[^"]+\.css)"/.exec(html)![1];
}, 60_000);

afterAll(async () => {
  await t?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the console build', () => {
  it('names its script and style sheet by their content, and the page names them', () => {
    expect(script).toMatch(/^\/assets\/console-[A-Z0-9]{8}\.js$/);
    expect(style).toMatch(/^\/assets\/console-[A-Z0-9]{8}\.css$/);
    expect(fs.readdirSync(path.join(dir, 'assets')).sort()).toEqual([path.basename(script), path.basename(style)].sort());
  });

  it('keeps the script under 150 kB compressed (every page loads this one script)', () => {
    const body = fs.readFileSync(path.join(dir, script));
    expect(zlib.gzipSync(body).length).toBeLessThan(150 * 1024);
  });

  it('rewrites no file when nothing changed', () => {
    const files = ['index.html', script.slice(1), style.slice(1)].map((f) => path.join(dir, f));
    const before = files.map((f) => fs.statSync(f).mtimeMs);
    build(dir);
    expect(files.map((f) => fs.statSync(f).mtimeMs)).toEqual(before);
  }, 60_000);
});

describe('the console pages', () => {
  const pages = ['/', '/sign-in', '/sign-up', '/forgot-password', '/reset-password?token=abc', '/verify-email?token=abc', '/confirm-email?token=abc', '/revert-email?token=abc', '/account', '/account/tokens', '/admin/users', '/admin/users/6f1c2a1e-3b4d-4c5e-8f70-9a1b2c3d4e5f', '/admin/audit'];

  it.each(pages)('GET %s answers the page: HTML, not cached without asking, under the strict CSP', async (p) => {
    const res = await t.http().get(p);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.headers['content-security-policy']).toMatch(/script-src 'self'[;]/);
    expect(res.headers['content-security-policy']).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(res.text).toContain(`<script type="module" src="${script}"></script>`);
    expect(res.text).toContain(`<link rel="stylesheet" href="${style}">`);
    expect(res.text).not.toMatch(/<script>|<script [^>]*>[^<]/); // no inline script
    expect(res.text).toContain('<meta name="registration" content="off">');
    expect(res.text).not.toContain('name="session"');
  });

  it('answers HEAD as GET, without a body', async () => {
    const res = await t.http().head('/account');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.text ?? '').toBe('');
  });

  it('tells the page when the request carried a session cookie (HttpOnly: the page cannot see it), so a signed-out visit asks the API nothing', async () => {
    const res = await t.http().get('/account').set('Cookie', 'account_session=x.y.z');
    expect(res.text).toContain('<meta name="session" content="on">');
    expect(res.headers.vary).toMatch(/Cookie/);
  });

  it('tells the page whether registration is open (ALLOW_REGISTRATION)', async () => {
    const open = consolePages({ dir, registration: true })!;
    const app = express().use(open);
    const res = await supertest(app).get('/sign-up');
    expect(res.text).toContain('<meta name="registration" content="on">');
  });

  it('serves the script and style sheet for a year, immutable, with their types', async () => {
    const js = await t.http().get(script);
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toMatch(/^(application|text)\/javascript; charset=utf-8$/);
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    const css = await t.http().get(style);
    expect(css.status).toBe(200);
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(css.headers['cache-control']).toBe('public, max-age=31536000, immutable');
  });

  it("answers an asset that is not there with the API's 404 body", async () => {
    for (const p of ['/assets/console-AAAAAAAA.js', '/assets/../index.html', '/assets/']) {
      const res = await t.http().get(p);
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ code: 'not_found', error: 'Route Not Found' });
    }
  });

  it('leaves other methods on its paths to the API (404 Route Not Found)', async () => {
    const res = await t.http().post('/sign-in').send({});
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ code: 'not_found' });
  });

  it('is not served when not built (the API alone)', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-console-none-'));
    try {
      expect(consolePages({ dir: empty, registration: false })).toBeUndefined();
    } finally {
      fs.rmSync(empty, { recursive: true });
    }
  });
});

describe("the console's paths and the API's", () => {
  it('share no first path segment: no API route is, or is under, a console path', () => {
    const consoleFirst = new Set([...CONSOLE_PAGES, CONSOLE_ASSETS].map((p) => p.split('/')[1]));
    const spec = loadApiSpec() as { paths: Record<string, unknown> };
    const clashes = Object.keys(spec.paths).filter((p) => consoleFirst.has(p.split('/')[1]));
    expect(clashes).toEqual([]);
    expect(Object.keys(spec.paths)).not.toContain('/');
  });

  it('hold every link the service mails: a reset link opens the page', async () => {
    const u = await t.factory.user();
    await t.http().post('/password/reset').send({ email: u.email }).expect(202);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(u.email));
    const link = new URL(/https?:\/\/\S+\/reset-password\?token=\S+/.exec(mail.text)![0]);
    expect(link.origin).toBe(t.config.appUrl);
    const res = await t.http().get(`${link.pathname}${link.search}`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
  });

  // The page routes what src/console-paths.ts lists (console/main.tsx has a component for each, or does not compile).
  it.each(CONSOLE_ROUTES.map((r) => [r]))('serves %s, a route of the page, with the console', async (route) => {
    const p = route.replace(':id', '0b9d0f3a-6c43-4b8e-9d1e-2f1a3c4b5d6e');
    expect(CONSOLE_PATH.test(p)).toBe(true);
    const res = await t.http().get(p);
    expect({ status: res.status, type: res.headers['content-type'] }).toEqual({ status: 200, type: 'text/html; charset=utf-8' });
    expect(res.text).toContain(script);
  });

  it('tells its paths from others the same way on both sides', () => {
    for (const p of ['/', '/account', '/account/', '/account/nothing?x=1', '/admin/users/1', '/sign-in?next=1']) expect([p, CONSOLE_PATH.test(p)]).toEqual([p, true]);
    for (const p of ['/docs', '/accounts', '/user/me', '/assets/x.js', '/sign-inx', '']) expect([p, CONSOLE_PATH.test(p)]).toEqual([p, false]);
  });

  it.each(['reset-password', 'verify-email', 'confirm-email', 'revert-email'])('includes /%s, a path the mails link to', (p) => {
    expect(CONSOLE_PAGES).toContain(`/${p}`);
    const templates = fs.readFileSync(path.join(root, 'src/mail/templates.ts'), 'utf8');
    expect(templates).toContain(`'${p}'`);
  });
});
