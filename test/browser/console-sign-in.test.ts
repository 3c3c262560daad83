import type { Page } from 'playwright-core';
import { expectNoTrouble, startConsole, type ConsoleRun } from '../helpers/console';

/** Presses Tab until the focused element matches `selector` (at most 15 times); fails otherwise. */
async function tabTo(page: Page, selector: string): Promise<void> {
  for (let i = 0; i < 15; i++) {
    await page.keyboard.press('Tab');
    if (await page.locator(selector).evaluate((el) => el === (el.ownerDocument as { activeElement: unknown }).activeElement)) return;
  }
  throw new Error(`Tab never reached ${selector}`);
}

describe('the console: signing in and out', () => {
  let run: ConsoleRun;
  beforeAll(async () => {
    run = await startConsole();
  });
  afterAll(async () => {
    await run?.close();
  });

  it('shows the API message next to the form for a wrong password, then signs in and out', async () => {
    const u = await run.t.factory.user({ password: 'right password 1' });
    const tab = await run.open();
    await tab.page.goto('/');
    await tab.page.waitForURL('**/sign-in');
    await run.check(tab, 'sign-in');
    await tab.page.getByLabel('Email').fill(u.email);
    await tab.page.getByLabel('Password', { exact: true }).fill('wrong password');
    await tab.page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await tab.page.getByRole('alert').filter({ hasText: 'The email or the password is wrong.' }).waitFor();
    await run.check(tab, 'sign-in-refused');
    await run.signIn(tab, u);
    await tab.page.getByRole('heading', { name: 'Profile' }).waitFor();
    await run.check(tab, 'profile');
    await tab.page.getByRole('button', { name: 'Sign out' }).click();
    await tab.page.waitForURL('**/sign-in');
    // Signed out for the API too: the cookie is gone, and the page's own answer says so.
    expect((await tab.context.cookies()).filter((c) => c.name === 'account_session')).toEqual([]);
    await tab.page.goto('/account');
    await tab.page.waitForURL((url) => url.pathname === '/sign-in' && url.searchParams.get('next') === '/account');
    expectNoTrouble(tab.trouble, ['POST /login 401']);
  });

  it('comes back to the page asked for after signing in, and never to another site', async () => {
    const u = await run.t.factory.user({ password: 'right password 2' });
    const tab = await run.open();
    await tab.page.goto('/account/settings');
    await tab.page.waitForURL('**/sign-in?next=%2Faccount%2Fsettings');
    await tab.page.getByLabel('Email').fill(u.email);
    await tab.page.getByLabel('Password', { exact: true }).fill(u.password);
    await tab.page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await tab.page.waitForURL('**/account/settings');
    const other = await run.open();
    await other.page.goto('/sign-in?next=https://evil.example/steal');
    await other.page.getByLabel('Email').fill(u.email);
    await other.page.getByLabel('Password', { exact: true }).fill(u.password);
    await other.page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await other.page.waitForURL((url) => url.pathname === '/account');
    expectNoTrouble(tab.trouble);
    expectNoTrouble(other.trouble);
  });

  it('works with the keyboard alone: Tab to the fields, Enter to sign in, Tab to Sign out', async () => {
    const u = await run.t.factory.user({ password: 'right password 3' });
    const tab = await run.open({ width: 375 });
    await tab.page.goto('/sign-in');
    await tab.page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await tabTo(tab.page, '#field-email');
    await tab.page.keyboard.type(u.email);
    await tab.page.keyboard.press('Tab');
    await tab.page.keyboard.type(u.password);
    await tab.page.keyboard.press('Enter');
    await tab.page.waitForURL('**/account');
    await tab.page.getByRole('heading', { name: 'Profile' }).waitFor();
    await tabTo(tab.page, 'button:has-text("Sign out")');
    await tab.page.keyboard.press('Enter');
    await tab.page.waitForURL('**/sign-in');
    expectNoTrouble(tab.trouble);
  });

  it('follows the system into dark mode', async () => {
    const tab = await run.open();
    await tab.page.emulateMedia({ colorScheme: 'dark' });
    await tab.page.goto('/sign-in');
    await tab.page.getByRole('heading', { name: 'Sign in' }).waitFor();
    expect(await tab.page.evaluate<string>('getComputedStyle(document.body).backgroundColor')).toBe('rgb(13, 17, 23)');
    await run.check(tab, 'sign-in-dark');
    await tab.page.emulateMedia({ colorScheme: 'light' });
    expect(await tab.page.evaluate<string>('getComputedStyle(document.body).backgroundColor')).toBe('rgb(246, 247, 249)');
    expectNoTrouble(tab.trouble);
  });

  it('(the harness) sees a layout shift: content pushed down after the page settled fails check()', async () => {
    const tab = await run.open();
    await tab.page.goto('/sign-in');
    await tab.page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await tab.page.evaluate(`new Promise((r) => setTimeout(() => {
      const late = document.createElement('div');
      late.style.height = '300px';
      document.getElementById('app').prepend(late);
      requestAnimationFrame(() => requestAnimationFrame(r));
    }, 100))`);
    await expect(run.check(tab, 'layout-shift-probe')).rejects.toThrow(/layoutShift/);
    expectNoTrouble(tab.trouble);
  });

  it('answers an unknown console path with a page that says so', async () => {
    const tab = await run.open();
    await tab.page.goto('/account/nothing-here');
    await tab.page.getByRole('heading', { name: 'Page not found' }).waitFor();
    expectNoTrouble(tab.trouble);
  });
});
