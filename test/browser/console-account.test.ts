import { confirm, expectNoTrouble, requireSessionCookie, startConsole, type ConsoleRun, type ConsoleTab } from '../helpers/console';

/** The signed-in person's own pages: password, API tokens, sessions, settings. */
describe('the console: your account', () => {
  let run: ConsoleRun;
  beforeAll(async () => {
    run = await startConsole();
  });
  afterAll(async () => {
    await run?.close();
  });

  /** Whether the open dialog's question stands whole inside it (its text's box within the dialog's) and nothing in it scrolls sideways. */
  async function questionFits(tab: ConsoleTab) {
    const dialog = tab.page.getByRole('dialog');
    await dialog.waitFor();
    return tab.page.evaluate<{ textInside: boolean; clipped: boolean }>(`(() => {
      const d = document.querySelector('dialog[open]');
      const text = document.createRange();
      text.selectNodeContents(d.querySelector('p'));
      const t = text.getBoundingClientRect();
      const box = d.getBoundingClientRect();
      const textInside = t.left >= box.left && t.right <= box.right && t.top >= box.top && t.bottom <= box.bottom;
      const clipped = [d, ...d.querySelectorAll('*')].some((e) => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible') || d.scrollWidth > d.clientWidth + 1;
      return { textInside, clipped };
    })()`);
  }

  it('a forced password change: explained, the password signed in with asked for, nothing else reachable until done, then the account opens', async () => {
    const u = await run.t.factory.user({ password: 'old password 1', forcePasswordChange: true });
    const tab = await run.open();
    await run.signIn(tab, u);
    await tab.page.waitForURL((url) => url.pathname === '/account/password');
    const explanation = tab.page.getByText('Your administrator requires a new password before you continue');
    await explanation.waitFor();
    expect(await tab.page.getByRole('navigation', { name: 'Main' }).count()).toBe(0);
    await run.check(tab, 'account-password-forced');

    // Any other page sends the person back here.
    await tab.page.goto('/account/tokens');
    await tab.page.waitForURL((url) => url.pathname === '/account/password');
    await explanation.waitFor();

    // The session alone is not enough while the password works: the page asks for it.
    await tab.page.getByLabel('New password', { exact: true }).fill('new password 2');
    await tab.page.getByLabel('Repeat the new password').fill('new password 2');
    await tab.page.getByRole('button', { name: 'Change password' }).click();
    await tab.page.getByText('Enter the password you signed in with.').waitFor();
    await tab.page.getByLabel('Current password').fill('not the password');
    await tab.page.getByRole('button', { name: 'Change password' }).click();
    await tab.page.getByText('current password is wrong').waitFor();
    expect((await run.login(u.email, 'old password 1')).status).toBe(200);
    await tab.page.getByLabel('Current password').fill('old password 1');
    await tab.page.getByRole('button', { name: 'Change password' }).click();
    await tab.page.waitForURL((url) => url.pathname === '/account');
    await tab.page.getByRole('heading', { name: 'Profile' }).waitFor();
    await tab.page.getByRole('navigation', { name: 'Main' }).waitFor();

    expect((await run.login(u.email, 'old password 1')).status).toBe(401);
    const fresh = await run.login(u.email, 'new password 2');
    expect(fresh.status).toBe(200);
    expect(fresh.body.password_change_required).toBeFalsy();
    const me = await run.call('GET', '/user/me', { bearer: fresh.body.jwt_token });
    expect(me).toMatchObject({ status: 200, body: { id: u.user.id, force_password_change: false } });
    // Still signed in in the browser, with a session that works.
    expect((await run.call('GET', '/user/me', { cookie: await requireSessionCookie(tab) })).status).toBe(200);
    expectNoTrouble(tab.trouble, ['POST /user/me/password 403']);
  });

  it('changes the password: a mismatch and a wrong current password are said by their fields; then this session stays, the others end', async () => {
    const u = await run.t.factory.user({ password: 'first password 1' });
    const tab = await run.open();
    const other = await run.open();
    await run.signIn(tab, u);
    await run.signIn(other, u);
    const otherCookie = await requireSessionCookie(other);

    await tab.page.goto('/account/password');
    await tab.page.getByRole('heading', { name: 'Password' }).waitFor();
    await run.check(tab, 'account-password');

    const current = tab.page.getByLabel('Current password');
    const fresh = tab.page.getByLabel('New password', { exact: true });
    const repeat = tab.page.getByLabel('Repeat the new password');
    const submit = tab.page.getByRole('button', { name: 'Change password' });

    // The repeat is checked in the page (no request).
    await current.fill('not my password');
    await fresh.fill('second password 2');
    await repeat.fill('second password 3');
    await submit.click();
    await tab.page.locator('#field-repeat-error').filter({ hasText: 'not the same' }).waitFor();
    expect(await repeat.getAttribute('aria-invalid')).toBe('true');

    // A wrong current password: the API's message under that field.
    await repeat.fill('second password 2');
    await submit.click();
    await tab.page.locator('#field-current_password-error').filter({ hasText: 'current password is wrong' }).waitFor();
    expect(await current.getAttribute('aria-invalid')).toBe('true');
    expect((await run.login(u.email, 'first password 1')).status).toBe(200);

    await current.fill('first password 1');
    await submit.click();
    await tab.page.getByRole('status').filter({ hasText: 'Password changed. Your other sessions were signed out.' }).waitFor();

    // This browser is still signed in, and it is the only session left.
    await tab.page.goto('/account/sessions');
    await tab.page.getByText('This session').waitFor();
    await tab.page.getByText('You are signed in nowhere else.').waitFor();
    // (The test's own login above made a session too; it ended with the others.)
    expect(await tab.page.locator('tbody tr').count()).toBe(1);

    // The other browser's session is refused.
    expect((await run.call('GET', '/user/me', { cookie: otherCookie })).status).toBe(401);
    await other.page.reload();
    await other.page.waitForURL((url) => url.pathname === '/sign-in');

    expect((await run.login(u.email, 'first password 1')).status).toBe(401);
    expect((await run.login(u.email, 'second password 2')).status).toBe(200);
    expectNoTrouble(tab.trouble, ['POST /user/me/password 403']);
    expectNoTrouble(other.trouble, ['GET /user/me 401']);
  });

  it('creates an API token, shows its secret once, which works from outside, and deletes it', async () => {
    const u = await run.t.factory.user({ password: 'token password 1' });
    const tab = await run.open();
    await run.signIn(tab, u);
    await tab.page.goto('/account/tokens');
    await tab.page.getByText('You have no API tokens.').waitFor();

    // A name with a space and a slash, as the API allows (percent-encoded in its path).
    const name = 'ci deploys / nightly';
    await tab.page.getByLabel('Name', { exact: true }).fill(name);
    // At least one scope: the page says so under the scopes.
    await tab.page.getByLabel('api', { exact: true }).uncheck();
    await tab.page.getByRole('button', { name: 'Create token' }).click();
    await tab.page.getByText('Choose at least one scope.').waitFor();
    await tab.page.getByLabel('api:read', { exact: true }).check();
    await tab.page.getByLabel('Expires after').selectOption({ label: '30 days' });
    await tab.page.getByRole('button', { name: 'Create token' }).click();

    const box = tab.page.locator('.secret');
    await box.waitFor();
    await box.getByText('it will not be shown again').waitFor();
    const secret = (await box.locator('code').textContent())!.trim();
    expect(secret).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    await box.getByRole('button', { name: 'Copy token' }).click();
    expect(await tab.page.evaluate<string>('navigator.clipboard.readText()')).toBe(secret);
    await tab.page.getByRole('rowheader', { name }).waitFor();
    await run.check(tab, 'account-tokens');

    // The secret works from a script: read-only, as chosen.
    const me = await run.call('GET', '/user/me', { bearer: secret });
    expect(me).toMatchObject({ status: 200, body: { id: u.user.id } });
    expect((await run.call('POST', '/user/me', { bearer: secret }, { first_name: 'Nope' })).status).toBe(403);
    const listed = await run.call('GET', '/user/me/token', { bearer: secret });
    expect(listed.body).toEqual([expect.objectContaining({ name, scopes: ['api:read'] })]);
    const days = (Date.parse(listed.body[0].expires) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);

    await box.getByRole('button', { name: 'I have copied it' }).click();
    await box.waitFor({ state: 'detached' });
    await tab.page.reload();
    await tab.page.getByRole('rowheader', { name }).waitFor();
    expect(await tab.page.content()).not.toContain(secret);
    expect(await tab.page.locator('body').innerText()).not.toContain(secret);
    await run.check(tab, 'account-tokens-list');

    await tab.page.getByRole('button', { name: `Delete token ${name}`, exact: true }).click();
    // The question is read whole, at either width: its text wraps inside the dialog, nothing cut at its edge.
    for (const width of [1440, 375]) {
      await tab.page.setViewportSize({ width, height: 900 });
      expect({ width, ...(await questionFits(tab)) }).toEqual({ width, textInside: true, clipped: false });
    }
    await confirm(tab, 'Delete token');
    await tab.page.getByText('You have no API tokens.').waitFor();
    expect((await run.call('GET', '/user/me', { bearer: secret })).status).toBe(401);
    expectNoTrouble(tab.trouble);
  });

  it('revokes every API token at once', async () => {
    const u = await run.t.factory.user({ password: 'token password 2' });
    const first = await run.t.factory.apiToken(u.user);
    const second = await run.t.factory.apiToken(u.user, ['api:read']);
    const tab = await run.open();
    await run.signIn(tab, u);
    await tab.page.goto('/account/tokens');
    await tab.page.locator('tbody tr').nth(1).waitFor();
    await tab.page.getByRole('button', { name: 'Revoke all API tokens' }).click();
    await confirm(tab, 'Revoke all API tokens');
    await tab.page.getByText('You have no API tokens.').waitFor();
    expect((await run.call('GET', '/user/me', { bearer: first })).status).toBe(401);
    expect((await run.call('GET', '/user/me', { bearer: second })).status).toBe(401);
    // The browser session is a login token: it stays.
    expect((await run.call('GET', '/user/me', { cookie: await requireSessionCookie(tab) })).status).toBe(200);
    expectNoTrouble(tab.trouble);
  });

  it('ends another session, whose token is refused from then on', async () => {
    const u = await run.t.factory.user({ password: 'session password 1' });
    const tab = await run.open();
    const other = await run.open();
    await run.signIn(tab, u);
    await run.signIn(other, u);
    const otherCookie = await requireSessionCookie(other);
    expect((await run.call('GET', '/user/me', { cookie: otherCookie })).status).toBe(200);

    await tab.page.goto('/account/sessions');
    await tab.page.getByText('This session').waitFor();
    const rows = tab.page.locator('tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await rows.filter({ hasText: 'This session' }).count()).toBe(1);
    expect(await rows.filter({ hasText: 'Chrome on Linux' }).count()).toBe(2);
    // The current session has no End button; the other has.
    expect(await rows.filter({ hasText: 'This session' }).getByRole('button').count()).toBe(0);
    await run.check(tab, 'account-sessions');

    await rows.filter({ hasNotText: 'This session' }).getByRole('button', { name: /^End session/ }).click();
    await confirm(tab, 'End session');
    await tab.page.getByText('You are signed in nowhere else.').waitFor();
    expect(await rows.count()).toBe(1);

    expect((await run.call('GET', '/user/me', { cookie: otherCookie })).status).toBe(401);
    await other.page.goto('/account');
    await other.page.waitForURL((url) => url.pathname === '/sign-in');
    // This one still works.
    expect((await run.call('GET', '/user/me', { cookie: await requireSessionCookie(tab) })).status).toBe(200);
    expectNoTrouble(tab.trouble);
    expectNoTrouble(other.trouble, ['GET /user/me 401']);
  });

  it('adds, replaces and deletes settings, refusing what is not JSON in the page', async () => {
    const u = await run.t.factory.loggedIn({ password: 'settings password 1' });
    const stored = async () => (await run.call('GET', '/user/me/settings', { bearer: u.jwt })).body;
    const tab = await run.open();
    await run.signIn(tab, u);
    await tab.page.goto('/account/settings');
    await tab.page.getByText('You have no settings.').waitFor();

    const key = tab.page.getByLabel('Key', { exact: true });
    const value = tab.page.getByLabel('Value (JSON)');
    const saveOne = tab.page.getByRole('button', { name: 'Save setting' });
    await key.fill('theme');
    await value.fill('"dark"');
    await saveOne.click();
    await tab.page.getByRole('rowheader', { name: 'theme' }).waitFor();

    await key.fill('editor');
    await value.fill('{oops');
    await saveOne.click();
    await tab.page.locator('#field-value-error').filter({ hasText: 'not valid JSON' }).waitFor();
    expect(await value.getAttribute('aria-invalid')).toBe('true');
    await value.fill('{"size": 14, "tabs": [2, 4]}');
    await saveOne.click();
    await tab.page.getByRole('rowheader', { name: 'editor' }).waitFor();
    expect(await stored()).toEqual({ theme: 'dark', editor: { size: 14, tabs: [2, 4] } });
    const all = tab.page.getByLabel('All settings (JSON object)');
    expect(JSON.parse(await all.inputValue())).toEqual({ theme: 'dark', editor: { size: 14, tabs: [2, 4] } });
    await run.check(tab, 'account-settings');

    // The whole set: not an object is refused in the page; an object replaces everything.
    const saveAll = tab.page.getByRole('button', { name: 'Save all settings' });
    await all.fill('[1, 2]');
    await saveAll.click();
    await tab.page.locator('#field-all-error').filter({ hasText: 'one JSON object' }).waitFor();
    await all.fill('{"theme": "light", "lang": "fr"}');
    await saveAll.click();
    await tab.page.getByRole('status').filter({ hasText: 'These are now all your settings.' }).waitFor();
    await tab.page.getByRole('rowheader', { name: 'lang' }).waitFor();
    expect(await stored()).toEqual({ theme: 'light', lang: 'fr' });

    await tab.page.getByRole('button', { name: 'Delete setting theme', exact: true }).click();
    await confirm(tab, 'Delete setting');
    await tab.page.getByRole('rowheader', { name: 'theme' }).waitFor({ state: 'detached' });
    expect(await stored()).toEqual({ lang: 'fr' });

    // Emptied to {}: every key deleted.
    await all.fill('{}');
    await saveAll.click();
    await tab.page.getByText('You have no settings.').waitFor();
    expect(await stored()).toEqual({});
    expectNoTrouble(tab.trouble);
  });
});
