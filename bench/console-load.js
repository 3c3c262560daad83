'use strict';
/**
 * console_load: how soon the web console's first page can be used, from a cold cache, and what it
 * weighs. The targets: interactive within 1 s on this machine, and under 150 kB of
 * JavaScript compressed on every page (the console is one script, so every page loads the same).
 *
 * The built service (dist/src/server.js, with the console of dist/console) runs on the embedded
 * default (PGlite in a temp DATA_DIR, as `npm start` does), with a first admin. Debian's chromium
 * (CHROMIUM_PATH to use another) is launched once; each sample is a NEW browser context (an empty
 * cache, no cookies but those given) that opens a page, and the figure is the time from the start
 * of navigation to the moment the page's form can be used (its submit button is in the document
 * and enabled), read in the page from `performance.now()`. Two first pages: `/sign-in` signed out,
 * and `/account` with a session cookie (the page also asks the API who is signed in before it can
 * show the form). The sample count is BENCH_CONSOLE_SAMPLES (15); the figure is the p50 and the
 * worst, the target applied to the worst.
 */
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');
const lib = require('./lib');

const { HOST, PASSWORD, round2, median, table, verdict, heading } = lib;
const ROOT = path.resolve(__dirname, '..');
const TARGETS = { interactiveMsMax: 1000, scriptKbCompressedMax: 150 };

function chromiumPath() {
  const found = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean).find((p) => fs.existsSync(p));
  if (!found) throw new Error("console_load needs Chromium: install Debian's chromium package (or set CHROMIUM_PATH)");
  return found;
}

/** The script and style sheet the console's page names, with their sizes raw, gzip and brotli (kB). */
function assetSizes() {
  const dir = path.join(ROOT, 'dist/console');
  const html = fs.readFileSync(path.join(dir, 'index.html'), 'utf8');
  const names = [...html.matchAll(/(?:src|href)="\/assets\/([^"]+)"/g)].map((m) => m[1]);
  return names.map((name) => {
    const body = fs.readFileSync(path.join(dir, 'assets', name));
    return {
      name,
      kb: round2(body.length / 1024),
      gzipKb: round2(zlib.gzipSync(body, { level: 9 }).length / 1024),
      brotliKb: round2(zlib.brotliCompressSync(body).length / 1024),
    };
  });
}

async function scenario({ samples = lib.int('BENCH_CONSOLE_SAMPLES', 15) } = {}) {
  heading('console_load', "the console's first page from a cold cache (embedded database, Chromium)");
  if (!fs.existsSync(path.join(ROOT, 'dist/console/index.html'))) throw new Error('dist/console is missing: run `npm run build` first');
  const { chromium } = require('playwright-core');
  const tmp = lib.tmpDir('acct-bench-console-');
  const port = await lib.freePort();
  const base = `http://${HOST}:${port}`;
  const email = 'console-admin@example.com';
  const service = lib.startChild('service (embedded database)', path.join(ROOT, 'dist/src/server.js'), {
    DATABASE_URL: '',
    DATA_DIR: path.join(tmp, 'data'),
    PORT: String(port),
    HOST,
    APP_URL: base,
    LOG_LEVEL: 'warn',
    BCRYPT_COST: '4',
    COOKIE_SECURE: '0',
    ADMIN_EMAIL: email,
    ADMIN_PASSWORD: PASSWORD,
    SMTP_URL: '',
  });
  await lib.waitReady(service, base);
  const browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: ['--no-sandbox'] });
  try {
    // A session cookie for the signed-in page: a login made the way the console makes it.
    const login = await fetch(`${base}/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email, password: PASSWORD, set_session: true }) });
    const cookie = /account_session=([^;]+)/.exec(login.headers.get('set-cookie') ?? '')?.[1];
    if (login.status !== 200 || !cookie) throw new Error(`console_load: the admin could not sign in (${login.status})`);

    const measure = async (urlPath, withCookie, ready) => {
      const ms = [];
      for (let i = 0; i < samples + 1; i++) {
        const context = await browser.newContext();
        if (withCookie) await context.addCookies([{ name: 'account_session', value: cookie, url: base }]);
        const page = await context.newPage();
        await page.goto(`${base}${urlPath}`, { waitUntil: 'commit' });
        await page.waitForFunction(ready, undefined, { polling: 'raf', timeout: 10_000 });
        const at = await page.evaluate('performance.now()');
        await context.close();
        if (i > 0) ms.push(at); // the first warms the service (and Chromium), not the page's cache
      }
      ms.sort((a, b) => a - b);
      return { p50Ms: round2(median(ms)), worstMs: round2(ms[ms.length - 1]), samples: ms.length };
    };
    // Usable: the sign-in form's button (or the profile form's) is there and enabled.
    // (Functions, not strings: the page's CSP forbids evaluating a string.)
    const signIn = await measure('/sign-in', false, () => [...document.querySelectorAll('button[type=submit]')].some((b) => b.textContent === 'Sign in' && !b.disabled));
    const account = await measure('/account', true, () => [...document.querySelectorAll('button[type=submit]')].some((b) => b.textContent === 'Save changes' && !b.disabled));
    const assets = assetSizes();
    const scriptGzipKb = assets.filter((a) => a.name.endsWith('.js')).reduce((s, a) => s + a.gzipKb, 0);
    table([
      ['first page (cold cache)', 'p50 ms', 'worst ms', 'samples'],
      ['/sign-in (signed out)', signIn.p50Ms, signIn.worstMs, signIn.samples],
      ['/account (signed in)', account.p50Ms, account.worstMs, account.samples],
    ]);
    table([['asset', 'kB', 'gzip kB', 'brotli kB'], ...assets.map((a) => [a.name, a.kb, a.gzipKb, a.brotliKb])]);
    const worst = Math.max(signIn.worstMs, account.worstMs);
    return {
      signIn,
      account,
      assets,
      scriptGzipKb: round2(scriptGzipKb),
      worstMs: worst,
      targets: TARGETS,
      pass: { interactive: worst <= TARGETS.interactiveMsMax, size: scriptGzipKb <= TARGETS.scriptKbCompressedMax },
    };
  } finally {
    await browser.close();
    await lib.stopChild(service);
  }
}

function summaryRows(r) {
  return [
    ['console_load', `first page usable in ${r.signIn.p50Ms} ms p50 signed out, ${r.account.p50Ms} ms signed in; worst ${r.worstMs} ms`, `<= ${TARGETS.interactiveMsMax} ms`, verdict(r.pass.interactive)],
    ['console_load', `script ${r.scriptGzipKb} kB gzip`, `< ${TARGETS.scriptKbCompressedMax} kB`, verdict(r.pass.size)],
  ];
}

module.exports = { scenario, summaryRows, TARGETS };
