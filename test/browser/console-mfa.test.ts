import fs from 'node:fs';
import * as OTPAuth from 'otpauth';
import { confirm, expectNoTrouble, requireSessionCookie, startConsole, type ConsoleRun, type ConsoleTab } from '../helpers/console';
import type { TestUser } from '../helpers/test-app';

/**
 * Two-factor sign-in in the console: the security page (adding an authenticator app, the recovery
 * codes, removing, regenerating), the second sign-in step, the forced enrolment of administrators
 * and the administrator's reset. The codes are computed from the secret the page shows, as an
 * authenticator app would.
 */

// Each flow is long (sign-in, several pages, axe at two widths per check): room for a loaded machine.
jest.setTimeout(120_000);

const STEP_MS = 30_000;

/**
 * An authenticator app: the codes of a secret, each step's at most once (the service accepts a
 * code once per factor, and none of a step before the last one accepted).
 */
class App {
  private last = -1;
  private readonly totp: OTPAuth.TOTP;
  constructor(
    readonly secret: string,
    private readonly now: () => number,
  ) {
    this.totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 });
  }

  /** A code the service takes now: this step's, or the next one's (accepted too) when this one was used. */
  async code(): Promise<string> {
    let current = Math.floor(this.now() / STEP_MS);
    if (this.last >= current + 1) {
      // Both were used: wait for the next step.
      await new Promise((r) => setTimeout(r, (this.last - current) * STEP_MS - (this.now() % STEP_MS) + 200));
      current = Math.floor(this.now() / STEP_MS);
    }
    const step = Math.max(current, this.last + 1);
    this.last = step;
    return this.totp.generate({ timestamp: step * STEP_MS });
  }

  /** Six digits that are no code of the steps around now. */
  wrong(): string {
    const step = Math.floor(this.now() / STEP_MS);
    const near = new Set([-2, -1, 0, 1, 2].map((d) => this.totp.generate({ timestamp: (step + d) * STEP_MS })));
    for (let n = 0; ; n++) {
      const candidate = String(n).padStart(6, '0');
      if (!near.has(candidate)) return candidate;
    }
  }
}

type MfaUser = TestUser & { app: App; recovery: string[]; factorId: string };

describe('the console: two-factor sign-in', () => {
  let run: ConsoleRun;
  beforeAll(async () => {
    run = await startConsole();
  });
  afterAll(async () => {
    await run?.close();
  });

  const now = () => run.t.clock.now().getTime();

  /** A user who turned two-factor sign-in on through the API, and their app. */
  async function mfaUser(options: { admin?: boolean } = {}): Promise<MfaUser> {
    const u = await run.t.factory.user({ admin: options.admin, password: `mfa password ${Math.random()}` });
    const jwt = (await run.login(u.email, u.password)).body.jwt_token;
    const made = await run.call('POST', '/user/me/factor', { bearer: jwt }, { type: 'totp', name: 'Phone', current_password: u.password });
    expect(made.status).toBe(201);
    const app = new App(made.body.secret, now);
    const verified = await run.call('POST', `/user/me/factor/${made.body.id}/verify`, { bearer: jwt }, { code: await app.code() });
    expect(verified.status).toBe(200);
    return { ...u, app, recovery: verified.body.recovery_codes, factorId: made.body.id };
  }

  /** Whether the password alone still signs `u` in fully (no second step asked). */
  async function asksForCode(u: TestUser): Promise<boolean> {
    const res = await run.login(u.email, u.password);
    expect(res.status).toBe(200);
    return res.body.mfa_required === true;
  }

  /** A recovery code tried through the API, on a fresh first step: the status of `POST /login/mfa`. */
  async function tryRecovery(u: TestUser, code: string): Promise<number> {
    const first = await run.login(u.email, u.password);
    return (await run.call('POST', '/login/mfa', { bearer: first.body.jwt_token }, { code })).status;
  }

  /** The password step of the sign-in page. */
  async function enterPassword(tab: ConsoleTab, u: TestUser, path = '/sign-in') {
    await tab.page.goto(path);
    await tab.page.getByLabel('Email').fill(u.email);
    await tab.page.getByLabel('Password', { exact: true }).fill(u.password);
    await tab.page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await tab.page.getByRole('heading', { name: 'Two-factor sign-in' }).waitFor();
  }

  /** Signs in with the password and the app's code; resolves once an account page shows. */
  async function signInWithCode(tab: ConsoleTab, u: MfaUser) {
    await enterPassword(tab, u);
    await tab.page.getByLabel('Code from your app').fill(await u.app.code());
    await tab.page.getByRole('button', { name: 'Verify' }).click();
    await tab.page.waitForURL((url) => url.pathname.startsWith('/account'));
  }

  /** The ten codes of the box that shows them once. */
  async function shownCodes(tab: ConsoleTab): Promise<string[]> {
    const codes = (await tab.page.locator('.mfa-code-list code').allTextContents()).map((c) => c.trim());
    expect(codes).toHaveLength(10);
    for (const c of codes) expect(c).toMatch(/^[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}$/);
    return codes;
  }

  it('turns two-factor sign-in on: QR code and key shown, a wrong code said by its field, the right one confirms; the recovery codes shown once, copied and downloaded', async () => {
    const u = await run.t.factory.user({ password: 'enrol password 1' });
    const tab = await run.open();
    const other = await run.open();
    await run.signIn(tab, u);
    await run.signIn(other, u);
    const otherCookie = await requireSessionCookie(other);
    const { page } = tab;

    // In the account's navigation.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Security' }).click();
    await page.waitForURL('**/account/security');
    await page.getByText('You have not set up two-factor sign-in.').waitFor();
    await page.getByText('Two-factor sign-in is off.', { exact: true }).waitFor();
    await run.check(tab, 'account-security');

    // The current password is asked for, and checked.
    await page.getByLabel('Name', { exact: true }).fill('My phone');
    await page.getByRole('form', { name: 'Add an authenticator app' }).getByLabel('Current password').fill('not my password');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.locator('#field-current_password-error').filter({ hasText: /password/i }).waitFor();
    await page.getByRole('form', { name: 'Add an authenticator app' }).getByLabel('Current password').fill(u.password);
    await page.getByRole('button', { name: 'Continue' }).click();

    const enrol = page.getByRole('region', { name: 'Set up “My phone”' });
    await enrol.waitFor();
    // The QR code is drawn (an image of the API's SVG), and the key is there to type, in groups of four.
    const qr = enrol.getByRole('img', { name: /QR code/ });
    const drawn = await qr.evaluate((img) => {
      const image = img as unknown as { decode(): Promise<void>; naturalWidth: number };
      return image.decode().then(() => image.naturalWidth);
    });
    expect(drawn).toBeGreaterThan(0);
    const src = (await qr.getAttribute('src'))!;
    expect(src.startsWith('data:image/svg+xml')).toBe(true);
    expect(decodeURIComponent(src.slice(src.indexOf(',') + 1))).toMatch(/^(<\?xml[^>]*>\s*)?<svg[\s>]/);
    const shown = (await enrol.locator('code.mfa-secret').textContent())!;
    expect(shown).toMatch(/^([A-Z2-7]{4} )+[A-Z2-7]{1,4}$/);
    const secret = shown.replace(/ /g, '');
    await enrol.getByRole('button', { name: 'Copy key' }).click();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(secret);
    const uri = await enrol.getByRole('link', { name: 'Open it in your authenticator app' }).getAttribute('href');
    expect(new URL(uri!).searchParams.get('secret')).toBe(secret);
    // Listed, not yet confirmed.
    await page.getByRole('rowheader', { name: 'My phone' }).waitFor();
    await page.getByText('Not confirmed').waitFor();
    await run.check(tab, 'account-security-enrol');

    const app = new App(secret, now);
    const codeField = enrol.getByLabel('Code from the app');
    // Not six digits: said in the page, nothing sent.
    await codeField.fill('12345');
    await enrol.getByRole('button', { name: 'Confirm' }).click();
    await page.locator('#field-code-error').filter({ hasText: 'Enter the 6 digits' }).waitFor();
    // A wrong code: the API's refusal under the field.
    await codeField.fill(app.wrong());
    await enrol.getByRole('button', { name: 'Confirm' }).click();
    await page.locator('#field-code-error').filter({ hasText: 'That code is wrong' }).waitFor();
    expect(await codeField.getAttribute('aria-invalid')).toBe('true');
    expect(await asksForCode(u)).toBe(false);

    await codeField.fill(await app.code());
    await enrol.getByRole('button', { name: 'Confirm' }).click();
    const box = page.getByRole('region', { name: /Save your recovery codes/ });
    await box.waitFor();
    await box.getByText('they will not be shown again').waitFor();
    const codes = await shownCodes(tab);
    await page.getByText('Two-factor sign-in is on.', { exact: true }).waitFor();
    await page.getByText('10 of 10 left.').waitFor();
    await run.check(tab, 'account-security-codes');

    // Copied, all ten, one a line.
    await box.getByRole('button', { name: 'Copy codes' }).click();
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(codes.join('\n'));
    // Downloaded as a text file made in the page (no request: the trouble list would show one).
    const [download] = await Promise.all([page.waitForEvent('download'), box.getByRole('button', { name: 'Download as a text file' }).click()]);
    expect(download.suggestedFilename()).toBe('recovery-codes.txt');
    const file = fs.readFileSync((await download.path())!, 'utf8');
    expect(file).toContain(u.email);
    for (const c of codes) expect(file).toContain(`\n${c}\n`);

    await box.getByRole('button', { name: 'I have saved them' }).click();
    await box.waitFor({ state: 'detached' });
    await page.getByText('Active', { exact: true }).waitFor();

    // On for the API: the password alone no longer signs in; this session stayed (now aal2), the other ended.
    expect(await asksForCode(u)).toBe(true);
    expect((await run.call('GET', '/user/me', { cookie: await requireSessionCookie(tab) })).body).toMatchObject({ id: u.user.id, mfa_enabled: true });
    expect((await run.call('GET', '/user/me', { cookie: otherCookie })).status).toBe(401);
    expect(await tryRecovery(u, codes[3].toUpperCase())).toBe(200);

    // Shown once: after a reload, neither the key nor a code is anywhere in the page.
    await page.reload();
    await page.getByRole('rowheader', { name: 'My phone' }).waitFor();
    await page.getByText('9 of 10 left.').waitFor();
    const html = await page.content();
    expect(html).not.toContain(secret);
    for (const c of codes) expect(html).not.toContain(c);
    await page.goto('/account/tokens');
    await page.getByText('You have no API tokens.').waitFor();
    expectNoTrouble(tab.trouble, ['POST /user/me/factor 403', 'POST /user/me/factor/' + (await factorIdOf(u)) + '/verify 400']);
  });

  /** The id of the user's one factor (for the trouble list's paths). */
  async function factorIdOf(u: TestUser): Promise<string> {
    const rows = await run.t.knex('mfa_factors').select('id').where({ user_id: u.user.id });
    expect(rows).toHaveLength(1);
    return rows[0].id as string;
  }

  it('signs in with the app’s code after the password, back to the page asked for; a malformed and a wrong code are said clearly', async () => {
    const u = await mfaUser();
    const tab = await run.open();
    await enterPassword(tab, u, '/account/settings');
    await tab.page.waitForURL('**/sign-in?next=%2Faccount%2Fsettings');
    // Nothing of the account yet: no navigation, no sign-out.
    expect(await tab.page.getByRole('navigation', { name: 'Main' }).count()).toBe(0);
    const field = tab.page.getByLabel('Code from your app');
    expect(await field.getAttribute('autocomplete')).toBe('one-time-code');
    expect(await field.getAttribute('inputmode')).toBe('numeric');
    await run.check(tab, 'sign-in-mfa');

    await field.fill('12 34');
    await tab.page.getByRole('button', { name: 'Verify' }).click();
    await tab.page.locator('#field-code-error').filter({ hasText: 'Enter the 6 digits your app shows.' }).waitFor();
    await field.fill(u.app.wrong());
    await tab.page.getByRole('button', { name: 'Verify' }).click();
    await tab.page.locator('#field-code-error').filter({ hasText: 'That code is wrong or was used already.' }).waitFor();
    expect(await field.getAttribute('aria-invalid')).toBe('true');
    await run.check(tab, 'sign-in-mfa-wrong');

    // The page's session is the first step's: the API refuses it anything but the second step.
    const pending = await requireSessionCookie(tab);
    expect((await run.call('GET', '/user/me', { cookie: pending })).body).toMatchObject({ code: 'mfa_required' });

    await field.fill(await u.app.code());
    await tab.page.getByRole('button', { name: 'Verify' }).click();
    await tab.page.waitForURL('**/account/settings');
    await tab.page.getByRole('heading', { name: 'Settings' }).waitFor();
    // A new session cookie, at aal2; the first step's is over.
    const full = await requireSessionCookie(tab);
    expect(full).not.toBe(pending);
    expect((await run.call('GET', '/user/me', { cookie: full })).status).toBe(200);
    expect((await run.call('GET', '/user/me', { cookie: pending })).status).toBe(401);
    expect((await run.call('GET', '/user/me/session', { cookie: full })).body).toEqual(expect.arrayContaining([expect.objectContaining({ current: true, aal: 'aal2' })]));

    // The factor was used.
    await tab.page.goto('/account/security');
    await tab.page.getByRole('rowheader', { name: 'Phone' }).waitFor();
    expect(await tab.page.locator('tbody tr td').nth(2).textContent()).not.toBe('never');
    expectNoTrouble(tab.trouble, ['POST /login/mfa 401']);
  });

  it('a reload during the second step still asks for the code; "Cancel" starts again', async () => {
    const u = await mfaUser();
    const tab = await run.open();
    await enterPassword(tab, u);
    await tab.page.goto('/account');
    await tab.page.getByRole('heading', { name: 'Two-factor sign-in' }).waitFor();
    await tab.page.getByRole('button', { name: 'Cancel and sign in again' }).click();
    await tab.page.getByRole('heading', { name: 'Sign in' }).waitFor();
    expect((await tab.context.cookies()).filter((c) => c.name === 'account_session')).toEqual([]);
    await signInWithCode(tab, u);
    await tab.page.getByRole('heading', { name: 'Profile' }).waitFor();
    expectNoTrouble(tab.trouble, ['GET /user/me 403']);
  });

  it('a user with two-factor whose password must change: the code first, then the password page', async () => {
    const u = await mfaUser();
    await run.t.knex('users').where({ id: u.user.id }).update({ force_password_change: true });
    const tab = await run.open();
    await signInWithCode(tab, u);
    await tab.page.waitForURL((url) => url.pathname === '/account/password');
    await tab.page.getByText('Your administrator requires a new password before you continue').waitFor();
    expectNoTrouble(tab.trouble);
  });

  it('signs in with a recovery code (any case, with or without hyphens), which then works no more', async () => {
    const u = await mfaUser();
    const tab = await run.open();
    await enterPassword(tab, u);
    await tab.page.getByRole('button', { name: 'Use a recovery code' }).click();
    const field = tab.page.getByLabel('Recovery code');
    await field.waitFor();
    await run.check(tab, 'sign-in-mfa-recovery');
    // A used or unknown one is refused.
    await field.fill('zzzz-zzzz-zzzz');
    await tab.page.getByRole('button', { name: 'Verify' }).click();
    await tab.page.locator('#field-code-error').filter({ hasText: 'That recovery code is wrong or was used already.' }).waitFor();

    await field.fill(u.recovery[0].replace(/-/g, ' ').toUpperCase());
    await tab.page.getByRole('button', { name: 'Verify' }).click();
    await tab.page.waitForURL((url) => url.pathname === '/account');
    await tab.page.getByRole('heading', { name: 'Profile' }).waitFor();

    expect(await tryRecovery(u, u.recovery[0])).toBe(401);
    await tab.page.goto('/account/security');
    await tab.page.getByText('9 of 10 left.').waitFor();
    // The user was told, with how many are left.
    const mail = await run.t.mail.waitFor((m) => m.to.includes(u.email) && /recovery code/i.test(m.subject));
    expect(mail[0].text).toMatch(/9/);
    expect(mail[0].text).not.toContain(u.recovery[0]);
    expectNoTrouble(tab.trouble, ['POST /login/mfa 401']);
  });

  it('after too many wrong codes, says how long to wait', async () => {
    const u = await mfaUser();
    const tab = await run.open();
    await enterPassword(tab, u);
    const field = tab.page.getByLabel('Code from your app');
    const refused: string[] = [];
    // One instant for the service, so the block cannot lapse between the tries on a slow machine.
    run.t.clock.stop();
    try {
      for (let i = 0; i < 5; i++) {
        await field.fill(u.app.wrong());
        await tab.page.getByRole('button', { name: 'Verify' }).click();
        await tab.page.locator('#field-code-error').filter({ hasText: 'That code is wrong' }).waitFor();
        refused.push('POST /login/mfa 401');
      }
      await field.fill(u.app.wrong());
      await tab.page.getByRole('button', { name: 'Verify' }).click();
      await tab.page.locator('#field-code-error').filter({ hasText: /Try again in \d+ s\./ }).waitFor();
      refused.push('POST /login/mfa 429');
    } finally {
      run.t.clock.resume();
    }
    expectNoTrouble(tab.trouble, refused);
  });

  it('an app not confirmed: "Cancel" removes it; one left by a reload keeps its name until removed from the list', async () => {
    const u = await run.t.factory.user({ password: 'pending password 1' });
    const tab = await run.open();
    await run.signIn(tab, u);
    const { page } = tab;
    const listed = async () => (await run.call('GET', '/user/me/factor', { cookie: await requireSessionCookie(tab) })).body.map((f: { name: string }) => f.name);
    const add = async () => {
      await page.getByLabel('Name', { exact: true }).fill('Tablet');
      await page.getByRole('form', { name: 'Add an authenticator app' }).getByLabel('Current password').fill(u.password);
      await page.getByRole('button', { name: 'Continue' }).click();
    };
    await page.goto('/account/security');
    await page.getByText('You have not set up two-factor sign-in.').waitFor();

    await add();
    const enrol = page.getByRole('region', { name: 'Set up “Tablet”' });
    await enrol.getByRole('button', { name: 'Cancel' }).click();
    await enrol.waitFor({ state: 'detached' });
    await page.getByText('You have not set up two-factor sign-in.').waitFor();
    expect(await listed()).toEqual([]);

    await add();
    await enrol.waitFor();
    await page.reload();
    await page.getByRole('rowheader', { name: 'Tablet' }).waitFor();
    await page.getByText('Not confirmed').waitFor();
    await add();
    await page.locator('#field-name-error').filter({ hasText: 'You began adding “Tablet” without confirming it' }).waitFor();
    await page.getByRole('button', { name: 'Remove Tablet' }).click();
    await confirm(tab, 'Remove');
    await page.getByText('You have not set up two-factor sign-in.').waitFor();
    expect(await listed()).toEqual([]);
    expect(await asksForCode(u)).toBe(false);
    expectNoTrouble(tab.trouble, ['POST /user/me/factor 409']);
  });

  it('removes the app: two-factor sign-in turns off', async () => {
    const u = await mfaUser();
    const tab = await run.open();
    await signInWithCode(tab, u);
    await tab.page.goto('/account/security');
    await tab.page.getByText('Two-factor sign-in is on.', { exact: true }).waitFor();
    await tab.page.getByRole('button', { name: 'Remove Phone' }).click();
    await tab.page.getByRole('dialog').getByText('It is your only two-factor method').waitFor();
    await confirm(tab, 'Remove');
    await tab.page.getByText('You have not set up two-factor sign-in.').waitFor();
    await tab.page.getByText('Two-factor sign-in is off.', { exact: true }).waitFor();
    expect(await tab.page.getByRole('heading', { name: 'Recovery codes' }).count()).toBe(0);
    expect(await asksForCode(u)).toBe(false);
    expect(Number((await run.t.knex('mfa_recovery_codes').where({ user_id: u.user.id }).count('* as n').first())!.n)).toBe(0);
    await run.t.mail.waitFor((m) => m.to.includes(u.email) && /removed/i.test(m.subject));
    expectNoTrouble(tab.trouble);
  });

  it('makes new recovery codes with the current password; the old ones stop working, the new ones work', async () => {
    const u = await mfaUser();
    const tab = await run.open();
    await signInWithCode(tab, u);
    await tab.page.goto('/account/security');
    await tab.page.getByText('10 of 10 left.').waitFor();
    await tab.page.getByText('Make new recovery codes').click();
    // The page has two forms that ask for the password (adding an app, new codes): this one's.
    const form = tab.page.getByRole('form', { name: 'Make new recovery codes' });
    const password = form.getByLabel('Current password');
    await password.fill('not my password');
    await form.getByRole('button', { name: 'Make new codes' }).click();
    await form.locator('#regenerate-current_password-error').filter({ hasText: /password/i }).waitFor();
    expect(await password.getAttribute('aria-invalid')).toBe('true');
    await password.fill(u.password);
    await form.getByRole('button', { name: 'Make new codes' }).click();
    const box = tab.page.getByRole('region', { name: 'Your new recovery codes' });
    await box.waitFor();
    await box.getByText('The old codes no longer work.').waitFor();
    const codes = await shownCodes(tab);
    expect(codes.some((c) => u.recovery.includes(c))).toBe(false);
    await run.check(tab, 'account-security-regenerated');
    await box.getByRole('button', { name: 'I have saved them' }).click();
    await box.waitFor({ state: 'detached' });

    expect(await tryRecovery(u, u.recovery[1])).toBe(401);
    expect(await tryRecovery(u, codes[0])).toBe(200);
    expectNoTrouble(tab.trouble, ['POST /user/me/recovery_codes 403']);
  });

  it("an administrator sees a user's factors and resets two-factor sign-in", async () => {
    const admin = await run.t.factory.user({ admin: true, password: 'admin password 1' });
    const u = await mfaUser();
    const tab = await run.open();
    await run.signIn(tab, admin);
    await tab.page.goto(`/admin/users/${u.user.id}`);
    await tab.page.getByRole('heading', { name: u.user.name, level: 1 }).waitFor();
    const factors = tab.page.getByRole('region', { name: 'Two-factor sign-in' });
    await factors.getByRole('rowheader', { name: 'Phone', exact: true }).waitFor();
    await factors.getByRole('cell', { name: 'Active' }).waitFor();
    await run.check(tab, 'admin-user-factors');

    await tab.page.getByRole('button', { name: 'Reset two-factor' }).click();
    await confirm(tab, 'Reset two-factor');
    await tab.page.getByText(`Two-factor sign-in of ${u.user.name} was reset.`).waitFor();
    await tab.page.getByText(`No two-factor methods: ${u.user.name} signs in with the password alone.`).waitFor();
    expect(await asksForCode(u)).toBe(false);
    expect(await tryRecovery(u, u.recovery[2])).toBe(403);
    await run.t.mail.waitFor((m) => m.to.includes(u.email) && /reset/i.test(m.subject));
    expectNoTrouble(tab.trouble);
  });
});

describe('the console: administrators must use two-factor sign-in (REQUIRE_MFA_FOR_ADMINS=1)', () => {
  let run: ConsoleRun;
  beforeAll(async () => {
    run = await startConsole({ env: { REQUIRE_MFA_FOR_ADMINS: '1' } });
  });
  afterAll(async () => {
    await run?.close();
  });

  it('holds an administrator on the security page until an app is confirmed, then opens the console', async () => {
    const admin = await run.t.factory.user({ admin: true, password: 'forced admin password 1' });
    const tab = await run.open();
    const { page } = tab;
    await page.goto('/sign-in?next=%2Fadmin%2Fusers');
    await page.getByLabel('Email').fill(admin.email);
    await page.getByLabel('Password', { exact: true }).fill(admin.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL('**/account/security');
    await page.getByText('Administrators of this service must use two-factor sign-in.').waitFor();
    expect(await page.getByRole('navigation', { name: 'Main' }).count()).toBe(0);
    await run.check(tab, 'account-security-forced');

    // Nowhere else, also after a reload (each time the page has settled before the next).
    const settled = page.getByText('You have not set up two-factor sign-in.');
    await settled.waitFor();
    for (const elsewhere of ['/admin/users', '/account/tokens']) {
      await page.goto(elsewhere);
      await page.waitForURL('**/account/security');
      await page.getByText('Administrators of this service must use two-factor sign-in.').waitFor();
      await settled.waitFor();
    }

    await page.getByLabel('Name', { exact: true }).fill('Admin phone');
    await page.getByRole('form', { name: 'Add an authenticator app' }).getByLabel('Current password').fill(admin.password);
    await page.getByRole('button', { name: 'Continue' }).click();
    const secret = (await page.locator('code.mfa-secret').textContent())!.replace(/ /g, '');
    const app = new App(secret, () => run.t.clock.now().getTime());
    await page.getByLabel('Code from the app').fill(await app.code());
    await page.getByRole('button', { name: 'Confirm' }).click();
    const box = page.getByRole('region', { name: /Save your recovery codes/ });
    await box.waitFor();
    // Still held here until the codes are put away.
    expect(await page.getByRole('navigation', { name: 'Main' }).count()).toBe(0);
    await box.getByRole('button', { name: 'I have saved them' }).click();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).click();
    await page.waitForURL('**/admin/users');
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();

    // The next sign-in asks for the code, and the console opens with it.
    const fresh = await run.t.http().post('/login').send({ email: admin.email, password: admin.password });
    expect(fresh.body).toMatchObject({ mfa_required: true });
    expectNoTrouble(tab.trouble);
  });
});
