import type { CDPSession } from 'playwright-core';
import * as OTPAuth from 'otpauth';
import { confirm, expectNoTrouble, sessionCookie, startConsole, type ConsoleRun, type ConsoleTab } from '../helpers/console';
import type { TestUser } from '../helpers/test-app';

/**
 * Passkeys in the console, in Chromium with the DevTools protocol's virtual authenticator (a
 * platform authenticator with resident keys and user verification, as a phone or a laptop's
 * fingerprint reader is): the browser runs its own WebAuthn checks (origin, RP ID, user
 * verification) between the page and the authenticator, and the service checks what it signed.
 * Playwright's credential override would skip the browser's part, so it is not used.
 *
 * The app is served on http://localhost:<port> (APP_URL too): a secure context, and the RP ID
 * `localhost`, as a browser takes no IP address as a relying party.
 *
 * Chromium's virtual environment answers the autofill's (conditional) request by itself when the
 * authenticator holds a passkey of the site, and refuses it at once when not. The tabs that test
 * the button therefore run as a browser without passkey autofill (`withoutAutofill`); one test
 * signs in through the autofill.
 */

jest.setTimeout(120_000);

/** The virtual authenticator of one tab. */
class Authenticator {
  private constructor(
    private readonly cdp: CDPSession,
    readonly id: string,
  ) {}

  static async attach(tab: ConsoleTab): Promise<Authenticator> {
    const cdp = await tab.context.newCDPSession(tab.page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
    });
    return new Authenticator(cdp, authenticatorId);
  }

  /** The passkeys it holds; `id` base64url, as the API and the page name them. */
  async credentials() {
    const { credentials } = await this.cdp.send('WebAuthn.getCredentials', { authenticatorId: this.id });
    return credentials.map((c) => ({ ...c, id: Buffer.from(c.credentialId, 'base64').toString('base64url') }));
  }

  /** Whether the person's fingerprint (or PIN) is recognised from now on. */
  async userVerified(ok: boolean) {
    await this.cdp.send('WebAuthn.setUserVerified', { authenticatorId: this.id, isUserVerified: ok });
  }

  /** A passkey of another device, copied here (as a passkey provider syncs it). */
  async add(credential: { credentialId: string; rpId?: string; privateKey: string; userHandle?: string; signCount: number }) {
    await this.cdp.send('WebAuthn.addCredential', { authenticatorId: this.id, credential: { ...credential, isResidentCredential: true } });
  }

  /** The device is lost: the passkey is gone from it. */
  async lose(credentialId: string) {
    await this.cdp.send('WebAuthn.removeCredential', { authenticatorId: this.id, credentialId });
  }
}

/** From its first page on, this tab is a browser that offers no passkey autofill (the button is how). */
async function withoutAutofill(tab: ConsoleTab) {
  await tab.context.addInitScript(`Object.defineProperty(PublicKeyCredential, 'isConditionalMediationAvailable', { value: () => Promise.resolve(false) })`);
}

describe('the console: passkeys', () => {
  let run: ConsoleRun;
  beforeAll(async () => {
    run = await startConsole({ localhost: true });
  });
  afterAll(async () => {
    await run?.close();
  });

  /** The level of the tab's session, as the API says it. */
  async function aal(tab: ConsoleTab): Promise<string | undefined> {
    const cookie = await sessionCookie(tab);
    if (!cookie) return undefined;
    const sessions = await run.call('GET', '/user/me/session', { cookie });
    return sessions.status === 200 ? sessions.body.find((s: { current: boolean }) => s.current)?.aal : undefined;
  }

  async function signOut(tab: ConsoleTab) {
    await tab.page.getByRole('button', { name: 'Sign out' }).click();
    await tab.page.getByRole('heading', { name: 'Sign in' }).waitFor();
  }

  /** Adds a passkey on the security page (signed in); resolves once it is listed, the codes put away if shown. */
  async function addPasskey(tab: ConsoleTab, u: TestUser, name: string): Promise<string[] | undefined> {
    const { page } = tab;
    await page.goto('/account/security');
    const form = page.getByRole('form', { name: 'Add a passkey' });
    await form.getByLabel('Passkey name').fill(name);
    await form.getByLabel('Current password').fill(u.password);
    await form.getByRole('button', { name: 'Add passkey' }).click();
    await form.getByText(`“${name}” was added.`).waitFor();
    let codes: string[] | undefined;
    const box = page.getByRole('region', { name: /Save your recovery codes/ });
    if (await box.count()) {
      codes = (await box.locator('.mfa-code-list code').allTextContents()).map((c) => c.trim());
      await box.getByRole('button', { name: 'I have saved them' }).click();
      await box.waitFor({ state: 'detached' });
    }
    await page.getByRole('rowheader', { name, exact: true }).waitFor();
    return codes;
  }

  /** The password step of the sign-in page, to the second step. */
  async function enterPassword(tab: ConsoleTab, u: TestUser) {
    await tab.page.goto('/sign-in');
    await tab.page.getByLabel('Email').fill(u.email);
    await tab.page.getByLabel('Password', { exact: true }).fill(u.password);
    await tab.page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await tab.page.getByRole('heading', { name: 'Two-factor sign-in' }).waitFor();
  }

  it('is served on localhost, its relying party the page origin', () => {
    expect(run.origin).toMatch(/^http:\/\/localhost:\d+$/);
    expect(run.t.config.webauthn).toMatchObject({ rpId: 'localhost', origins: [run.origin] });
  });

  it('adds a passkey named after the browser, with the current password: two-factor sign-in turns on; signed out, the passkey alone signs in again', async () => {
    const u = await run.t.factory.user({ password: 'passkey password 1' });
    const tab = await run.open();
    await withoutAutofill(tab);
    const key = await Authenticator.attach(tab);
    const { page } = tab;
    await run.signIn(tab, u);

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Security' }).click();
    await page.getByText('You have not set up two-factor sign-in.').waitFor();
    const form = page.getByRole('form', { name: 'Add a passkey' });
    // A name to start with: this browser on this system.
    expect(await form.getByLabel('Passkey name').inputValue()).toMatch(/^Chrome on Linux$/);
    await run.check(tab, 'account-security-passkey');

    // The password is checked before the browser is asked for anything.
    await form.getByLabel('Current password').fill('not my password');
    await form.getByRole('button', { name: 'Add passkey' }).click();
    await page.locator('#passkey-current_password-error').filter({ hasText: /password/i }).waitFor();
    expect(await key.credentials()).toEqual([]);

    await form.getByLabel('Passkey name').fill('Work laptop');
    await form.getByLabel('Current password').fill(u.password);
    await form.getByRole('button', { name: 'Add passkey' }).click();
    const box = page.getByRole('region', { name: /Save your recovery codes/ });
    await box.waitFor();
    const codes = (await box.locator('.mfa-code-list code').allTextContents()).map((c) => c.trim());
    expect(codes).toHaveLength(10);
    await page.getByText('Two-factor sign-in is on.', { exact: true }).waitFor();
    await run.check(tab, 'account-security-passkey-added');
    await box.getByRole('button', { name: 'I have saved them' }).click();
    await box.waitFor({ state: 'detached' });
    const row = page.getByRole('row', { name: /Work laptop/ });
    await row.getByRole('cell', { name: 'Passkey', exact: true }).waitFor();
    await row.getByText('Active', { exact: true }).waitFor();

    // A discoverable credential of this site on the device, and the same one at the service.
    const held = await key.credentials();
    expect(held).toHaveLength(1);
    expect(held[0]).toMatchObject({ isResidentCredential: true, rpId: 'localhost' });
    const stored = await run.t.knex('mfa_factors').where({ user_id: u.user.id }).select('type', 'name', 'verified', 'webauthn_credential_id');
    expect(stored).toEqual([{ type: 'webauthn', name: 'Work laptop', verified: true, webauthn_credential_id: held[0].id }]);
    expect(await aal(tab)).toBe('aal2');
    // The password alone no longer signs in.
    expect((await run.call('POST', '/login', {}, { email: u.email, password: u.password })).body).toMatchObject({ mfa_required: true, factors: [{ type: 'webauthn', name: 'Work laptop' }] });

    await signOut(tab);
    expect(await sessionCookie(tab)).toBeUndefined();
    await run.check(tab, 'sign-in-passkey');
    // No email, no password: the passkey (with the person's fingerprint) is enough.
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL((url) => url.pathname === '/account');
    await page.getByRole('heading', { name: 'Profile' }).waitFor();
    expect(await aal(tab)).toBe('aal2');
    // Its use is on the list.
    await page.goto('/account/security');
    await row.waitFor();
    expect(await row.locator('td').nth(2).textContent()).not.toBe('never');
    expectNoTrouble(tab.trouble, ['POST /user/me/factor 403']);
  });

  it("the browser's passkey autofill signs in from the email field", async () => {
    const u = await run.t.factory.user({ password: 'passkey password 2' });
    const tab = await run.open();
    await withoutAutofill(tab);
    const key = await Authenticator.attach(tab);
    await run.signIn(tab, u);
    await addPasskey(tab, u, 'Laptop');

    // Another browser of the person's (the passkey synced to it), with autofill.
    const other = await run.open();
    const otherKey = await Authenticator.attach(other);
    const [credential] = await key.credentials();
    await otherKey.add({ credentialId: credential.credentialId, rpId: credential.rpId, privateKey: credential.privateKey, userHandle: credential.userHandle, signCount: credential.signCount });
    await other.page.goto('/sign-in');
    // The email field offers the passkey; Chromium's virtual environment picks it at once.
    expect(await other.page.getByLabel('Email').getAttribute('autocomplete')).toBe('username webauthn');
    await other.page.waitForURL((url) => url.pathname === '/account');
    await other.page.getByRole('heading', { name: 'Profile' }).waitFor();
    expect(await aal(other)).toBe('aal2');
    expectNoTrouble(tab.trouble);
    expectNoTrouble(other.trouble);
  });

  it('a passkey as the second step, after the password', async () => {
    const u = await run.t.factory.user({ password: 'passkey password 3' });
    const tab = await run.open();
    await withoutAutofill(tab);
    await Authenticator.attach(tab);
    await run.signIn(tab, u);
    await addPasskey(tab, u, 'Phone passkey');
    await signOut(tab);

    await enterPassword(tab, u);
    const { page } = tab;
    // Only the ways this account has: the passkey (named), or a recovery code.
    await page.getByText('Use your passkey (Phone passkey) to finish signing in').waitFor();
    expect(await page.getByRole('button', { name: 'Use the authenticator app' }).count()).toBe(0);
    await page.getByRole('button', { name: 'Use a recovery code' }).waitFor();
    expect(await aal(tab)).toBeUndefined(); // the first step's session may only finish the sign-in
    await run.check(tab, 'sign-in-mfa-passkey');
    // A reload keeps the ways (the API names the factors only at the first step).
    await page.reload();
    await page.getByText('Use your passkey (Phone passkey) to finish signing in').waitFor();
    expect(await page.getByRole('button', { name: 'Use the authenticator app' }).count()).toBe(0);
    await page.getByRole('button', { name: 'Use a passkey' }).click();
    await page.waitForURL((url) => url.pathname === '/account');
    await page.getByRole('heading', { name: 'Profile' }).waitFor();
    expect(await aal(tab)).toBe('aal2');
    // The reload asked who is signed in: the first step's session may not say.
    expectNoTrouble(tab.trouble, ['GET /user/me 403']);
  });

  it('refuses a passkey whose user verification fails, alone and as the second step; a recovery code still signs in; a passkey removed from the account is refused by the service', async () => {
    const u = await run.t.factory.user({ password: 'passkey password 4' });
    const tab = await run.open();
    await withoutAutofill(tab);
    const key = await Authenticator.attach(tab);
    await run.signIn(tab, u);
    const codes = (await addPasskey(tab, u, 'Laptop'))!;
    await signOut(tab);
    const { page } = tab;

    // The fingerprint is not recognised: the browser refuses, nothing reaches the service.
    await key.userVerified(false);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.getByRole('alert').filter({ hasText: 'did not finish: it was cancelled, or the device could not confirm it was you' }).waitFor();
    await page.getByRole('button', { name: 'Sign in with a passkey' }).waitFor();
    expect(page.url()).toMatch(/\/sign-in$/);
    expect(await sessionCookie(tab)).toBeUndefined();
    await run.check(tab, 'sign-in-passkey-refused');

    // Nor as the second step.
    await enterPassword(tab, u);
    await page.getByRole('button', { name: 'Use a passkey' }).click();
    await page.getByRole('alert').filter({ hasText: 'could not confirm it was you' }).waitFor();
    expect(await aal(tab)).toBeUndefined();
    await run.check(tab, 'sign-in-mfa-passkey-refused');
    await page.getByRole('button', { name: 'Use a recovery code' }).click();
    await page.getByLabel('Recovery code').fill(codes[0]);
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.waitForURL((url) => url.pathname === '/account');
    expect(await aal(tab)).toBe('aal2');

    // Removed from the account, the passkey the device still holds is refused by the service.
    await page.goto('/account/security');
    await page.getByRole('button', { name: 'Remove Laptop' }).click();
    await confirm(tab, 'Remove');
    await page.getByText('You have not set up two-factor sign-in.').waitFor();
    await key.userVerified(true);
    expect(await key.credentials()).toHaveLength(1);
    await signOut(tab);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.getByRole('alert').filter({ hasText: 'That passkey did not sign you in.' }).waitFor();
    expect(await sessionCookie(tab)).toBeUndefined();
    expectNoTrouble(tab.trouble, ['POST /login/passkey 401']);
  });

  it('renames a passkey and an app; a second passkey on one device is refused; a lost device: its passkey no longer signs in, the app does, and the passkey is removed', async () => {
    const u = await run.t.factory.user({ password: 'passkey password 5' });
    const tab = await run.open();
    await withoutAutofill(tab);
    const key = await Authenticator.attach(tab);
    const { page } = tab;
    await run.signIn(tab, u);
    await addPasskey(tab, u, 'Laptop');
    // An authenticator app too, through the API with this session (aal2 now).
    const cookie = (await sessionCookie(tab))!;
    const made = await run.call('POST', '/user/me/factor', { cookie }, { type: 'totp', name: 'Phone', current_password: u.password });
    expect(made.status).toBe(201);
    const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(made.body.secret), algorithm: 'SHA1', digits: 6, period: 30 });
    const step = Math.floor(run.t.clock.now().getTime() / 30_000);
    expect((await run.call('POST', `/user/me/factor/${made.body.id}/verify`, { cookie }, { code: totp.generate({ timestamp: step * 30_000 }) })).status).toBe(200);
    await page.reload();
    await page.getByRole('rowheader', { name: 'Phone', exact: true }).waitFor();

    // Rename, in a dialog; a name the account already uses is said by its field.
    await page.getByRole('button', { name: 'Rename Laptop' }).click();
    const dialog = page.getByRole('dialog', { name: 'Rename Laptop' });
    const field = dialog.getByLabel('Name', { exact: true });
    expect(await field.inputValue()).toBe('Laptop');
    await field.fill('Phone');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.getByText('You have another two-factor method of that name.').waitFor();
    await run.check(tab, 'account-security-rename');
    await field.fill('Old laptop');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('rowheader', { name: 'Old laptop', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Rename Phone' }).click();
    await page.getByRole('dialog', { name: 'Rename Phone' }).getByLabel('Name', { exact: true }).fill('Pixel');
    await page.getByRole('dialog', { name: 'Rename Phone' }).getByRole('button', { name: 'Save' }).click();
    await page.getByRole('rowheader', { name: 'Pixel', exact: true }).waitFor();
    const listed = await run.call('GET', '/user/me/factor', { cookie });
    expect(listed.body.map((f: { name: string; type: string }) => [f.type, f.name]).sort()).toEqual([
      ['totp', 'Pixel'],
      ['webauthn', 'Old laptop'],
    ]);

    // A second passkey on the same device is refused by the browser (the account's passkeys are
    // excluded at creation); the factor begun for it is gone again.
    const form = page.getByRole('form', { name: 'Add a passkey' });
    await form.getByLabel('Passkey name').fill('Again');
    await form.getByLabel('Current password').fill(u.password);
    await form.getByRole('button', { name: 'Add passkey' }).click();
    await form.getByRole('alert').filter({ hasText: 'This device already holds a passkey for your account. It is in the list above.' }).waitFor();
    expect((await run.call('GET', '/user/me/factor', { cookie })).body.map((f: { name: string }) => f.name).sort()).toEqual(['Old laptop', 'Pixel']);
    expect(await key.credentials()).toHaveLength(1);

    // The laptop is lost: its passkey is gone from the device.
    const [held] = await key.credentials();
    await key.lose(held.credentialId);
    await signOut(tab);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.getByRole('alert').filter({ hasText: 'did not finish' }).waitFor();
    expect(await sessionCookie(tab)).toBeUndefined();
    // The password and the app's code still sign in (the passkey is offered first).
    await enterPassword(tab, u);
    await page.getByRole('button', { name: 'Use the authenticator app' }).click();
    await page.getByLabel('Code from your app').fill(totp.generate({ timestamp: (step + 1) * 30_000 }));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.waitForURL((url) => url.pathname === '/account');

    // And the lost passkey is removed from the account.
    await page.goto('/account/security');
    await page.getByRole('button', { name: 'Remove Old laptop' }).click();
    await page.getByRole('dialog').getByText('It no longer signs you in').waitFor();
    await confirm(tab, 'Remove');
    await page.getByRole('rowheader', { name: 'Old laptop', exact: true }).waitFor({ state: 'detached' });
    await page.getByText('Two-factor sign-in is on.', { exact: true }).waitFor();
    expect((await run.call('GET', '/user/me/factor', { cookie: (await sessionCookie(tab))! })).body.map((f: { name: string }) => f.name)).toEqual(['Pixel']);
    await run.t.mail.waitFor((m) => m.to.includes(u.email) && /removed/i.test(m.subject));
    expectNoTrouble(tab.trouble);
  });
});

describe('the console: an administrator who must use two-factor sign-in adds a passkey (REQUIRE_MFA_FOR_ADMINS=1)', () => {
  let run: ConsoleRun;
  beforeAll(async () => {
    run = await startConsole({ localhost: true, env: { REQUIRE_MFA_FOR_ADMINS: '1' } });
  });
  afterAll(async () => {
    await run?.close();
  });

  it('is held on the security page until the passkey is added and the codes put away; then signs in with the passkey alone', async () => {
    const admin = await run.t.factory.user({ admin: true, password: 'forced passkey admin 1' });
    const tab = await run.open();
    await withoutAutofill(tab);
    await Authenticator.attach(tab);
    const { page } = tab;
    await page.goto('/sign-in');
    await page.getByLabel('Email').fill(admin.email);
    await page.getByLabel('Password', { exact: true }).fill(admin.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL('**/account/security');
    await page.getByText('Add a passkey or an authenticator app below').waitFor();

    const form = page.getByRole('form', { name: 'Add a passkey' });
    await form.getByLabel('Current password').fill(admin.password);
    await form.getByRole('button', { name: 'Add passkey' }).click();
    const box = page.getByRole('region', { name: /Save your recovery codes/ });
    await box.waitFor();
    expect(await page.getByRole('navigation', { name: 'Main' }).count()).toBe(0);
    await box.getByRole('button', { name: 'I have saved them' }).click();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).click();
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL((url) => url.pathname === '/account');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).waitFor();
    expectNoTrouble(tab.trouble);
  });
});
