import type { Browser } from 'playwright-core';
import { launchBrowser, watch } from '../helpers/browser';
import { createTestApp, type TestApp } from '../helpers/test-app';

describe('the docs page in Chromium', () => {
  let t: TestApp;
  let browser: Browser;
  beforeAll(async () => {
    t = await createTestApp();
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('renders every operation with no console error, no failed request and nothing fetched from another host, and "Try it out" calls this server', async () => {
    const page = await browser.newPage();
    const origin = new URL(t.baseUrl).origin;
    const trouble = await watch(page, origin);
    await page.goto(`${t.baseUrl}/docs`);
    await page.getByRole('heading', { name: /Account service/i }).first().waitFor();
    const operations = await page.locator('.opblock').count();
    expect(operations).toBeGreaterThan(50);

    // Try GET /healthz through the page, as a person would.
    const healthz = page.locator('#operations-operations-healthz');
    await healthz.locator('.opblock-summary').click();
    await healthz.getByRole('button', { name: 'Try it out' }).click();
    const answer = page.waitForResponse((r) => r.url() === `${origin}/healthz`);
    await healthz.getByRole('button', { name: 'Execute' }).click();
    expect((await answer).status()).toBe(200);
    await healthz.locator('.live-responses-table .response-col_status').filter({ hasText: '200' }).first().waitFor();

    expect(trouble).toEqual({ consoleErrors: [], failedRequests: [], offOrigin: [], errorAnswers: [] });
    await page.close();
  });
});
