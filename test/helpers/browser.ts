import fs from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's chromium package (CHROMIUM_PATH to use another build). */
export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => !!p);
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`no Chromium found (tried ${candidates.join(', ')}); install Debian's chromium package`);
  return found;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: ['--no-sandbox'] });
}

/**
 * What a page did that a person would call broken: console errors, failed requests, requests to
 * other hosts; and the answers of 400 and above it got (`POST /login 401`), which a test compares
 * with the refusals it provoked. (Chromium logs each such answer as a console error "Failed to
 * load resource: the server responded with a status of ..."; those lines are counted here instead.)
 */
export interface PageTrouble {
  consoleErrors: string[];
  failedRequests: string[];
  offOrigin: string[];
  errorAnswers: string[];
}

/** Records a page's trouble from now on; requests to another origin than `origin` are aborted and listed. */
export async function watch(page: Page, origin: string): Promise<PageTrouble> {
  const trouble: PageTrouble = { consoleErrors: [], failedRequests: [], offOrigin: [], errorAnswers: [] };
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of \d{3}\b/.test(m.text())) trouble.consoleErrors.push(m.text());
  });
  page.on('response', (r) => {
    if (r.status() >= 400) trouble.errorAnswers.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`);
  });
  page.on('pageerror', (e) => trouble.consoleErrors.push(String(e)));
  page.on('requestfailed', (r) => trouble.failedRequests.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('data:') || new URL(url).origin === origin) return route.continue();
    trouble.offOrigin.push(url);
    return route.abort();
  });
  return trouble;
}
