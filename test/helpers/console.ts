import fs from 'node:fs';
import path from 'node:path';
import AxeBuilder from '@axe-core/playwright';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchBrowser, watch, type PageTrouble } from './browser';
import { freePort } from './pg-cluster';
import { createTestApp, type TestApp, type TestAppOptions, type TestUser } from './test-app';

/**
 * The web console in headless Chromium, over a test app of its own (the embedded database unless
 * DATABASE_URL says otherwise; `.ci/run` runs this suite on the embedded default). Mail goes to
 * the test app's in-process SMTP server; the links in it are followed on this app's origin.
 */

/** Where every page's screenshots go, at both widths (docs/console.md, "Screenshots and tests"). */
export const SCREENSHOTS = path.resolve(__dirname, '../../screenshots/console');

/** The widths the console must be readable at. */
export const WIDTHS = [375, 1440] as const;

export interface ConsoleTab {
  page: Page;
  context: BrowserContext;
  trouble: PageTrouble;
}

export interface ConsoleRun {
  t: TestApp;
  browser: Browser;
  origin: string;
  /**
   * A new browser context (its own cookies) and page, watched for trouble from the start. (In
   * `page.waitForFunction` and `evaluate`, a string is evaluated by the page and the strict CSP
   * refuses it for waitForFunction: pass a function there.)
   */
  open(options?: { width?: number }): Promise<ConsoleTab>;
  /** Signs in through the sign-in page; resolves once the account page shows. */
  signIn(tab: ConsoleTab, user: Pick<TestUser, 'email' | 'password'>): Promise<void>;
  /**
   * What a reviewer looks at on the page now showing: nothing moved when its data arrived (the
   * page's cumulative layout shift since it was opened or last checked is under 0.1, the "good"
   * bound of Chrome's Web Vitals), no id stands twice on it, axe finds no serious or critical violation at either width,
   * nothing is wider than the window, and a full-page screenshot of each width is written to
   * SCREENSHOTS/<name>-<width>.png. The page is left at 1440 px.
   */
  check(tab: ConsoleTab, name: string): Promise<void>;
  /** A mailed link (to APP_URL) as a path on this app, e.g. `/reset-password?token=...`. */
  linkIn(text: string, pathname: string): string;
  /** A call to the API from outside the browser (Node's fetch), as a script would make it. */
  call(method: string, path: string, auth?: { bearer?: string; cookie?: string }, body?: unknown): Promise<{ status: number; body: any }>;
  /** POST /login from outside the browser. */
  login(email: string, password: string): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

/**
 * `localhost`: the app on http://localhost:<port> with APP_URL saying so, so its WebAuthn relying
 * party (RP ID `localhost`, origin `http://localhost:<port>`, both from APP_URL) is the page's
 * own: a secure context, and a host a browser takes as an RP ID (an IP address it does not).
 */
export async function startConsole(options: TestAppOptions & { localhost?: boolean } = {}): Promise<ConsoleRun> {
  if (options.localhost) {
    const port = await freePort();
    options = { ...options, listen: { port, host: 'localhost' }, env: { APP_URL: `http://localhost:${port}`, ...options.env } };
  }
  const browser = await launchBrowser();
  // CONSOLE_DIR: a console built elsewhere (`node console/build.mjs <dir>`), as two checkouts'
  // worth of work may share one dist/.
  const consoleDir: Record<string, string> = process.env.CONSOLE_DIR ? { CONSOLE_DIR: process.env.CONSOLE_DIR } : {};
  const t = await createTestApp({ ...options, env: { ...consoleDir, ...options.env } }).catch(async (e: unknown) => {
    await browser.close();
    throw e;
  });
  const origin = new URL(t.baseUrl).origin;
  const contexts: BrowserContext[] = [];
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const call: ConsoleRun['call'] = async (method, path, auth = {}, body) => {
    const headers: Record<string, string> = {};
    if (auth.bearer) headers.Authorization = `Bearer ${auth.bearer}`;
    if (auth.cookie) headers.Cookie = `account_session=${auth.cookie}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(`${t.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };

  return {
    t,
    browser,
    origin,
    async open({ width = 1440 } = {}) {
      const context = await browser.newContext({ viewport: { width, height: 900 }, baseURL: t.baseUrl, reducedMotion: 'reduce' });
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
      contexts.push(context);
      // Layout shifts, as Chromium reports them (not those right after the person's input), added
      // up from the start of each page view; check() reads and resets the sum. An init script runs
      // outside the page's CSP.
      await context.addInitScript(`(() => {
        window.__layoutShift = 0;
        new PerformanceObserver((list) => {
          for (const e of list.getEntries()) if (!e.hadRecentInput) window.__layoutShift += e.value;
        }).observe({ type: 'layout-shift', buffered: true });
      })()`);
      const page = await context.newPage();
      const trouble = await watch(page, origin);
      return { page, context, trouble };
    },
    async signIn({ page }, user) {
      await page.goto('/sign-in');
      await page.getByLabel('Email').fill(user.email);
      await page.getByLabel('Password', { exact: true }).fill(user.password);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.waitForURL((u) => u.pathname.startsWith('/account'));
    },
    async check({ page }, name) {
      const shift = await page.evaluate<number>('(() => { const s = window.__layoutShift ?? 0; window.__layoutShift = 0; return Math.round(s * 1000) / 1000; })()');
      expect({ page: name, layoutShift: shift < 0.1 ? 'under 0.1' : shift }).toEqual({ page: name, layoutShift: 'under 0.1' });
      // Every id once on the page, when two forms of it have a field of one name too (each form prefixes its fields' ids).
      const duplicateIds = await page.evaluate<string[]>(
        '(() => { const n = new Map(); for (const e of document.querySelectorAll("[id]")) n.set(e.id, (n.get(e.id) ?? 0) + 1); return [...n].filter(([, c]) => c > 1).map(([id]) => id); })()',
      );
      expect({ page: name, duplicateIds }).toEqual({ page: name, duplicateIds: [] });
      for (const width of WIDTHS) {
        await page.setViewportSize({ width, height: 900 });
        await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
        const results = await new AxeBuilder({ page }).analyze();
        const serious = results.violations
          .filter((v) => v.impact === 'serious' || v.impact === 'critical')
          .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
        expect({ page: name, width, serious }).toEqual({ page: name, width, serious: [] });
        const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
        expect({ page: name, width, overflow: overflow > 0 ? overflow : 0 }).toEqual({ page: name, width, overflow: 0 });
        await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${width}.png`), fullPage: true });
      }
      // What the changes of width moved is not the page's doing.
      await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => { window.__layoutShift = 0; r(); })))');
    },
    linkIn(text, pathname) {
      const match = new RegExp(`https?://\\S+${pathname.replace(/[/-]/g, '\\$&')}\\?token=[A-Za-z0-9_\\-.~%]+`).exec(text);
      if (!match) throw new Error(`no ${pathname} link in: ${text}`);
      const url = new URL(match[0]);
      return `${url.pathname}${url.search}`;
    },
    call,
    login: (email, password) => call('POST', '/login', {}, { email, password }),
    async close() {
      for (const c of contexts) await c.close().catch(() => undefined);
      await browser.close();
      await t.close();
    },
  };
}

/** The tab's session cookie, if it has one. */
export async function sessionCookie(tab: ConsoleTab): Promise<string | undefined> {
  return (await tab.context.cookies()).find((c) => c.name === 'account_session')?.value;
}

/** The tab's session cookie, which it must have (a test that a session ended needs one that began). */
export async function requireSessionCookie(tab: ConsoleTab): Promise<string> {
  const cookie = await sessionCookie(tab);
  if (!cookie) throw new Error('no session cookie');
  return cookie;
}

/** Confirms the modal dialog an ActionButton opened, with its button named `button`. */
export async function confirm(tab: ConsoleTab, button: string): Promise<void> {
  const dialog = tab.page.getByRole('dialog');
  await dialog.waitFor();
  await dialog.getByRole('button', { name: button, exact: true }).click();
}

/**
 * No console error, no failed request, nothing fetched from another host, and no answer of 400 or
 * above but those the test provoked on purpose (`['POST /login 401']`), in order.
 */
export function expectNoTrouble(trouble: PageTrouble, provoked: string[] = []): void {
  expect(trouble).toEqual({ consoleErrors: [], failedRequests: [], offOrigin: [], errorAnswers: provoked });
}
