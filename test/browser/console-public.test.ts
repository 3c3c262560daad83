import { unique } from '../helpers/test-app';
import { expectNoTrouble, startConsole, type ConsoleRun, type ConsoleTab } from '../helpers/console';

/** The signed-out pages and the pages the mailed links open. */
describe('the console: signed-out pages and mailed links', () => {
  let run: ConsoleRun;
  beforeAll(async () => {
    run = await startConsole({ env: { ALLOW_REGISTRATION: '1' } });
  });
  afterAll(async () => {
    await run?.close();
  });

  const bearer = (jwt: string) => ({ Authorization: `Bearer ${jwt}` });
  const mailTo = async (address: string, link: string) => (await run.t.mail.waitFor((m) => m.to.includes(address) && m.text.includes(`/${link}?token=`), 1, 15_000))[0];
  const userRow = (id: string) => run.t.knex('users').where({ id }).first();

  /** Opens a mailed link and waits until the page has taken the token out of the address bar. */
  async function follow({ page }: ConsoleTab, text: string, link: string) {
    await page.goto(run.linkIn(text, `/${link}`));
    await page.waitForURL((u) => u.pathname === `/${link}` && u.search === '');
    expect(page.url()).not.toContain('token');
  }

  /**
   * A signed-in user asks on the profile page to move to a new address, first without their
   * password (the page asks for it), then with it; the pending state shows.
   */
  async function changeEmail(tab: ConsoleTab, newEmail: string, password: string) {
    await tab.page.getByLabel('Email').fill(newEmail);
    await tab.page.getByRole('button', { name: 'Save changes' }).click();
    await tab.page.getByText('Enter your current password to change your address.').waitFor();
    await tab.page.getByLabel('Current password').fill(password);
    await tab.page.getByRole('button', { name: 'Save changes' }).click();
    await tab.page.getByRole('status').filter({ hasText: `Your new address ${newEmail} is waiting for confirmation` }).waitFor();
  }

  it('forgot password through the mail: asks, sets a new one (weak first), signs in with it; the link works once', async () => {
    const u = await run.t.factory.user({ password: 'old password 1' });
    const tab = await run.open();
    const { page } = tab;
    await page.goto('/sign-in');
    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    await page.getByRole('heading', { name: 'Forgot your password?' }).waitFor();
    await page.getByLabel('Email').fill(u.email);
    await page.getByRole('button', { name: 'Send me a link' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: 'If an account uses that address, we have sent it a link to set a new password. The link works once, for a limited time.' })
      .waitFor();
    await run.check(tab, 'forgot-password');

    const mail = await run.t.mail.waitFor((m) => m.to.includes(u.email) && /reset-password/.test(m.text), 1, 15_000);
    const link = run.linkIn(mail[0].text, '/reset-password');
    await follow(tab, mail[0].text, 'reset-password');
    await page.getByRole('heading', { name: 'Set your password' }).waitFor();

    // The repeat is checked in the page (no request), its message under the repeat field.
    await page.getByLabel('New password', { exact: true }).fill('new password 2');
    await page.getByLabel('Repeat the new password').fill('new password 3');
    await page.getByRole('button', { name: 'Set password' }).click();
    await page.locator('#field-repeat-error').filter({ hasText: 'This is not the same as the password above.' }).waitFor();

    // Too short: the API's weak_password message under the password field.
    await page.getByLabel('New password', { exact: true }).fill('short');
    await page.getByLabel('Repeat the new password').fill('short');
    await page.getByRole('button', { name: 'Set password' }).click();
    const weak = page.locator('#field-password-error');
    await weak.waitFor();
    expect(await weak.textContent()).toMatch(/at least 8 characters/);
    expect(await page.getByLabel('New password', { exact: true }).getAttribute('aria-invalid')).toBe('true');
    await run.check(tab, 'reset-password');

    await page.getByLabel('New password', { exact: true }).fill('new password 2');
    await page.getByLabel('Repeat the new password').fill('new password 2');
    await page.getByRole('button', { name: 'Set password' }).click();
    await page.getByRole('status').filter({ hasText: 'Your password is set. Sign in with it.' }).waitFor();
    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.waitForURL('**/sign-in');
    await run.signIn(tab, { email: u.email, password: 'new password 2' });
    expect((await run.t.http().post('/login').send({ email: u.email, password: 'old password 1' })).status).toBe(401);

    // The same link again: used up.
    await page.goto(link);
    await page.getByLabel('New password', { exact: true }).fill('another password 4');
    await page.getByLabel('Repeat the new password').fill('another password 4');
    await page.getByRole('button', { name: 'Set password' }).click();
    await page.getByRole('alert').filter({ hasText: 'This link does not work any more' }).waitFor();
    await page.getByRole('link', { name: 'Ask for a new link' }).waitFor();
    await run.check(tab, 'reset-password-invalid');
    expect((await run.t.http().post('/login').send({ email: u.email, password: 'new password 2' })).status).toBe(200);
    expectNoTrouble(tab.trouble, ['POST /password/reset/confirm 400', 'POST /password/reset/confirm 400']);
  });

  it('register and verify: the unverified address cannot sign in, the mailed link confirms it, then sign-in works', async () => {
    const name = unique('reg');
    const email = `${name}@example.test`;
    const password = 'register password 1';
    const tab = await run.open();
    const { page } = tab;
    await page.goto('/sign-in');
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByRole('heading', { name: 'Create an account' }).waitFor();
    await run.check(tab, 'sign-up');
    await page.getByLabel('User name').fill(name);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByLabel('Repeat the password').fill(password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('status').filter({ hasText: `Check your mail: we sent a link to ${email} to confirm the address.` }).waitFor();
    expect(await run.t.knex('users').where({ email }).first()).toMatchObject({ name, email_verified: false });

    // Before verifying: the API's email_unverified message at sign-in.
    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'Verify your email address first' }).waitFor();

    const mail = await mailTo(email, 'verify-email');
    await follow(tab, mail.text, 'verify-email');
    const confirmed = page.getByRole('status').filter({ hasText: 'Your address is confirmed. You can sign in now.' });
    await confirmed.waitFor();
    // Good news does not wear the warning's colour (a plain notice's, the forced password change's).
    const colours = await page.evaluate<Record<'success' | 'warning', { background: string; border: string }>>(`(() => {
      const done = [...document.querySelectorAll('[role=status]')].find((e) => e.textContent.includes('Your address is confirmed'));
      const warning = document.createElement('p');
      warning.className = 'notice';
      done.after(warning);
      const of = (e) => ({ background: getComputedStyle(e).backgroundColor, border: getComputedStyle(e).borderTopColor });
      const both = { success: of(done), warning: of(warning) };
      warning.remove();
      return both;
    })()`);
    expect(colours.success.background).not.toBe(colours.warning.background);
    expect(colours.success.border).not.toBe(colours.warning.border);
    await run.check(tab, 'verify-email');
    expect((await run.t.knex('users').where({ email }).first()).email_verified).toBe(true);
    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.waitForURL('**/sign-in');
    await run.signIn(tab, { email, password });
    await page.getByRole('heading', { name: 'Profile' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/account');
    expectNoTrouble(tab.trouble, ['POST /login 403']);
  });

  it('signing up: messages under the fields; an address that is taken shows the same message and makes no account', async () => {
    const u = await run.t.factory.user();
    const tab = await run.open({ width: 375 });
    const { page } = tab;
    await page.goto('/sign-up');
    // A taken name (names are public handles, so the API says so) and a malformed address: under their fields.
    await page.getByLabel('User name').fill(u.user.name);
    await page.getByLabel('Email').fill('not-an-address');
    await page.getByLabel('Password', { exact: true }).fill('register password 2');
    await page.getByLabel('Repeat the password').fill('register password 2');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.locator('#field-email-error').waitFor();
    expect(await page.getByLabel('Email').getAttribute('aria-invalid')).toBe('true');
    await page.getByLabel('Email').fill(`${unique('free')}@example.test`);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.locator('#field-name-error').filter({ hasText: 'That user name is taken' }).waitFor();

    const name = unique('again');
    await page.getByLabel('User name').fill(name);
    await page.getByLabel('Email').fill(u.email);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('status').filter({ hasText: `Check your mail: we sent a link to ${u.email} to confirm the address.` }).waitFor();
    await run.t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'You already have an Accounts account', 1, 15_000);
    expect(Number((await run.t.knex('users').whereRaw('lower(email) = lower(?)', [u.email]).count({ n: '*' }))[0].n)).toBe(1);
    expect(await run.t.knex('users').where({ name }).first()).toBeUndefined();
    expectNoTrouble(tab.trouble, ['POST /register 400', 'POST /register 409']);
  });

  it('confirms an email change through the link mailed to the new address', async () => {
    const u = await run.t.factory.user({ password: 'confirm password 1' });
    const newEmail = `${unique('moved')}@example.test`;
    const tab = await run.open();
    const { page } = tab;
    await run.signIn(tab, u);
    await changeEmail(tab, newEmail, u.password);
    expect((await userRow(u.user.id)).email).toBe(u.email);

    const mail = await mailTo(newEmail, 'confirm-email');
    await follow(tab, mail.text, 'confirm-email');
    await page.getByRole('status').filter({ hasText: 'Your new address is confirmed; sign in with it from now on.' }).waitFor();
    await run.check(tab, 'confirm-email');
    expect(await userRow(u.user.id)).toMatchObject({ email: newEmail, pending_email: null });

    await page.getByRole('link', { name: 'Go to your profile' }).click();
    await page.getByRole('heading', { name: 'Profile' }).waitFor();
    expect(await page.locator('.facts dd').first().textContent()).toBe(newEmail);
    expect(await page.getByLabel('Email').inputValue()).toBe(newEmail);
    expect(await page.getByText('is waiting for confirmation').count()).toBe(0);
    expectNoTrouble(tab.trouble);
  });

  it('reverts an email change through the link mailed to the old address, only on a click, ending every token', async () => {
    const u = await run.t.factory.user({ password: 'revert password 1' });
    const jwt = await run.t.factory.login(u);
    const newEmail = `${unique('taken')}@example.test`;
    const tab = await run.open();
    const { page } = tab;
    await run.signIn(tab, u);
    await changeEmail(tab, newEmail, u.password);
    // The change goes through (as if whoever asked for it holds the new mailbox).
    const confirm = await mailTo(newEmail, 'confirm-email');
    const confirmToken = new URL(`https://x${run.linkIn(confirm.text, '/confirm-email')}`).searchParams.get('token');
    await run.t.http().post('/user/me/email/confirm').send({ token: confirmToken }).expect(204);
    expect((await userRow(u.user.id)).email).toBe(newEmail);

    const notice = await mailTo(u.email, 'revert-email');
    await follow(tab, notice.text, 'revert-email');
    await page.getByRole('heading', { name: 'Undo the email change' }).waitFor();
    await page.getByText('every session of the account ends').waitFor();
    const button = page.getByRole('button', { name: 'Put my old address back and sign out everywhere' });
    await button.waitFor();
    await run.check(tab, 'revert-email');
    // Opening the page changed nothing.
    expect((await userRow(u.user.id)).email).toBe(newEmail);
    expect((await run.t.http().get('/user/me').set(bearer(jwt))).status).toBe(200);

    await button.click();
    await page.getByRole('status').filter({ hasText: 'Your old address is back and every session has ended.' }).waitFor();
    await page.getByText('we have mailed a link to set a new one to your old address').waitFor();
    await page.getByRole('link', { name: 'Ask for another link' }).waitFor();
    expect(await userRow(u.user.id)).toMatchObject({ email: u.email, pending_email: null, force_password_change: true, password_hash: null });
    expect((await run.t.http().get('/user/me').set(bearer(jwt))).status).toBe(401);
    // This browser shows itself signed out.
    expect(await page.getByRole('button', { name: 'Sign out' }).count()).toBe(0);

    // The old address's owner sets a new password by the link mailed to it.
    const reset = (await run.t.mail.waitFor((m) => m.to.includes(u.email) && m.subject === 'Reset your Accounts password', 1, 15_000))[0];
    await follow(tab, reset.text, 'reset-password');
    await page.getByLabel('New password', { exact: true }).fill('owner password 2');
    await page.getByLabel('Repeat the new password').fill('owner password 2');
    await page.getByRole('button', { name: 'Set password' }).click();
    await page.getByRole('status').filter({ hasText: 'Your password is set' }).waitFor();
    expect((await run.t.http().post('/login').send({ email: u.email, password: 'owner password 2' })).status).toBe(200);
    expectNoTrouble(tab.trouble);
  });

  it('says a link without its token is incomplete and offers the way to a new one', async () => {
    const tab = await run.open({ width: 375 });
    const { page } = tab;
    for (const [path, way] of [
      ['/reset-password', 'Ask for a new link'],
      ['/verify-email', 'register again'],
      ['/confirm-email', 'profile'],
      ['/revert-email', 'set a new password'],
    ]) {
      await page.goto(path);
      await page.getByRole('heading', { name: 'This link is incomplete' }).waitFor();
      await page.getByRole('link', { name: way }).waitFor();
    }
    expectNoTrouble(tab.trouble);
  });
});
