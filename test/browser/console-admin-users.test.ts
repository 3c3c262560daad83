import crypto from 'node:crypto';
import { expectNoTrouble, startConsole, type ConsoleRun, type ConsoleTab } from '../helpers/console';
import type { TestUser } from '../helpers/test-app';

/** A name prefix no other test's user has. */
function prefix(stem: string): string {
  return `${stem}${crypto.randomBytes(3).toString('hex')}`;
}

describe('the console: system administrators manage users', () => {
  let run: ConsoleRun;
  let admin: TestUser;
  let adminJwt: string;
  beforeAll(async () => {
    run = await startConsole();
    admin = await run.t.factory.user({ admin: true, password: 'admin password 1' });
    adminJwt = await run.t.factory.login(admin);
  });
  afterAll(async () => {
    await run?.close();
  });

  /** The API as the admin (a Bearer token of their own), to check what the console did. */
  const asAdmin = {
    get: (path: string) => run.t.http().get(path).set('Authorization', `Bearer ${adminJwt}`),
    post: (path: string) => run.t.http().post(path).set('Authorization', `Bearer ${adminJwt}`),
  };

  async function adminTab(): Promise<ConsoleTab> {
    const tab = await run.open();
    await run.signIn(tab, admin);
    return tab;
  }

  /** The names linked in the users table's body, in order. */
  async function listedNames(tab: ConsoleTab): Promise<string[]> {
    return tab.page.locator('tbody tr td:first-child a').allTextContents();
  }

  /** Waits until the users table lists exactly `names`, in order (a function: the CSP forbids evaluating strings). */
  async function waitForList(tab: ConsoleTab, names: string[]): Promise<void> {
    await tab.page
      .waitForFunction(
        (expected: string) => {
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          const doc = (globalThis as any).document;
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          return JSON.stringify(Array.from(doc.querySelectorAll('tbody tr td:first-child a'), (a: any) => a.textContent)) === expected;
        },
        JSON.stringify(names),
        { timeout: 5000 },
      )
      .catch(async () => {
        expect(await listedNames(tab)).toEqual(names);
      });
  }

  it('an admin finds a user by typing, deactivates and reactivates them', async () => {
    const p = prefix('kite');
    const others = await Promise.all([1, 2, 3, 4, 5].map((i) => run.t.factory.user({ name: `${p}a${i}` })));
    const target = await run.t.factory.loggedIn({ name: `${p}zora`, password: 'target password 1' });
    const tab = await adminTab();
    const { page } = tab;

    await page.goto('/admin/users');
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
    await page.locator('tbody tr').first().waitFor();

    // Typing the shared prefix lists all six; one more letter narrows it to the target, no Enter.
    const search = page.getByRole('searchbox', { name: 'Search users' });
    await search.pressSequentially(p, { delay: 50 });
    await waitForList(tab, [...others.map((o) => o.user.name), target.user.name]);
    await search.pressSequentially('zo', { delay: 50 });
    await waitForList(tab, [target.user.name]);
    await run.check(tab, 'admin-users-search');

    await page.getByRole('link', { name: target.user.name, exact: true }).click();
    await page.waitForURL(`**/admin/users/${target.user.id}`);
    await page.getByRole('heading', { name: target.user.name, level: 1 }).waitFor();
    await page.getByText(target.email).first().waitFor();

    // Deactivate, after saying what happens.
    await page.getByRole('button', { name: 'Deactivate' }).click();
    const dialog = page.getByRole('dialog', { name: 'Deactivate' });
    await dialog.getByText('They can no longer sign in').waitFor();
    await dialog.getByRole('button', { name: 'Deactivate' }).click();
    await page.getByText(/^Deactivated /).waitFor();
    await page.getByRole('button', { name: 'Reactivate' }).waitFor();

    const gone = await asAdmin.get(`/user/${target.user.id}`);
    expect(gone.status).toBe(410);
    expect(gone.body.user.deactivated).toEqual(expect.any(String));
    const refused = await run.t.http().get('/user/me').set('Authorization', `Bearer ${target.jwt}`);
    expect(refused.status).toBe(401);
    await run.check(tab, 'admin-user-deactivated');

    // Reactivate: active again, and a mail with a link to set a password.
    await page.getByRole('button', { name: 'Reactivate' }).click();
    const again = page.getByRole('dialog', { name: 'Reactivate' });
    await again.getByText('gets a mail with a link to set a password').waitFor();
    await again.getByRole('button', { name: 'Reactivate and send the mail' }).click();
    await page.getByRole('button', { name: 'Deactivate' }).waitFor();
    await page.getByRole('form', { name: `Edit ${target.user.name}` }).waitFor();

    const back = await asAdmin.get(`/user/${target.user.id}`);
    expect(back.status).toBe(200);
    expect(back.body.force_password_change).toBe(true);
    const [mail] = await run.t.mail.waitFor((m) => m.to.includes(target.email) && m.text.includes('/reset-password?token='));
    expect(run.linkIn(mail.text, '/reset-password')).toMatch(/^\/reset-password\?token=/);

    await page.getByRole('link', { name: '← All users' }).click();
    await page.waitForURL('**/admin/users');
    expectNoTrouble(tab.trouble, [`GET /user/${target.user.id} 410`]);
  });

  it('pages through a search 50 users at a time', async () => {
    const p = prefix('pg');
    const names = Array.from({ length: 55 }, (_, i) => `${p}${String(i).padStart(2, '0')}`);
    await Promise.all(names.map((name) => run.t.factory.user({ name, password: null })));
    const tab = await adminTab();
    const { page } = tab;
    await page.goto('/admin/users');
    await page.getByRole('searchbox', { name: 'Search users' }).fill(p);
    await waitForList(tab, names.slice(0, 50));
    const pages = page.getByRole('navigation', { name: 'Pages' });
    expect(await pages.getByRole('button', { name: 'Previous' }).isDisabled()).toBe(true);

    await pages.getByRole('button', { name: 'Next' }).click();
    await waitForList(tab, names.slice(50));
    await pages.getByText('Page 2').waitFor();
    expect(await pages.getByRole('button', { name: 'Next' }).isDisabled()).toBe(true);

    await pages.getByRole('button', { name: 'Previous' }).click();
    await waitForList(tab, names.slice(0, 50));

    // Narrowing the search on page 2 starts again from the first page.
    await pages.getByRole('button', { name: 'Next' }).click();
    await waitForList(tab, names.slice(50));
    await page.getByRole('searchbox', { name: 'Search users' }).fill(`${p}1`);
    await waitForList(tab, names.slice(10, 20));
    expect(await pages.count()).toBe(0); // one page: no pager
    expectNoTrouble(tab.trouble);
  });

  it('creates a user with a welcome mail, and shows the API message for a duplicate email', async () => {
    const name = prefix('newbie');
    const email = `${name}@example.test`;
    const tab = await adminTab();
    const { page } = tab;
    await page.goto('/admin/users');
    await page.getByText('Create user', { exact: true }).first().click();
    const form = page.getByRole('form', { name: 'Create user' });
    await form.getByText('no password to choose here').waitFor();
    await page.locator('tbody tr').first().waitFor();
    await run.check(tab, 'admin-users');
    await form.getByLabel('User name').fill(name);
    await form.getByLabel('Email').fill(email);
    expect(await form.getByLabel('Send a welcome mail with a link to set a password').isChecked()).toBe(true);
    await form.getByRole('button', { name: 'Create user' }).click();
    const status = page.getByRole('status').filter({ hasText: `Created ${name}` });
    await status.waitFor();
    const row = await run.t.knex('users').where({ email }).first();
    expect(row).toBeDefined();
    expect(await status.getByRole('link', { name }).getAttribute('href')).toBe(`/admin/users/${row.id}`);
    const [mail] = await run.t.mail.waitFor((m) => m.to.includes(email) && m.text.includes('/reset-password?token='));
    expect(run.linkIn(mail.text, '/reset-password')).toMatch(/^\/reset-password\?token=/);

    await page.getByRole('searchbox', { name: 'Search users' }).fill(name);
    await waitForList(tab, [name]);

    // The same email again: the API's own words, under the email field.
    const expected = await asAdmin.post('/user?send_mail=0').send({ name: `${name}x`, email });
    expect(expected.status).toBe(409);
    await form.getByLabel('User name').fill(`${name}-two`);
    await form.getByLabel('Email').fill(email.toUpperCase());
    await form.getByRole('button', { name: 'Create user' }).click();
    const emailError = form.locator('#field-email-error');
    await emailError.waitFor();
    expect(await emailError.textContent()).toBe(expected.body.error);
    expect(await form.getByLabel('Email').getAttribute('aria-invalid')).toBe('true');
    expect(await run.t.knex('users').where({ name: `${name}-two` }).first()).toBeUndefined();

    // The list's link opens the new user.
    await page.getByRole('table').getByRole('link', { name, exact: true }).click();
    await page.getByRole('heading', { name, level: 1 }).waitFor();
    expectNoTrouble(tab.trouble, ['POST /user 409']);
  });

  it('edits a user, resets their password, deletes one API token and revokes the rest', async () => {
    const p = prefix('ed');
    const u = await run.t.factory.user({ name: `${p}old`, password: 'old password 12' });
    const firstToken = await run.t.factory.apiToken(u.user);
    const listed = await asAdmin.get(`/user/${u.user.id}/token`);
    const firstName = listed.body[0].name as string;
    const secondToken = await run.t.factory.apiToken(u.user);
    const tab = await adminTab();
    const { page } = tab;

    await page.goto(`/admin/users/${u.user.id}`);
    await page.getByRole('heading', { name: u.user.name, level: 1 }).waitFor();
    await page.getByRole('rowheader', { name: firstName, exact: true }).waitFor();
    await run.check(tab, 'admin-user');

    // Edit: only the changed field is sent, and the API has it.
    const form = page.getByRole('form', { name: `Edit ${u.user.name}` });
    await form.getByLabel('User name').fill(`${p}new`);
    await form.getByLabel('Last name').fill('Lovelace');
    await form.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { name: `${p}new`, level: 1 }).waitFor();
    const edited = await asAdmin.get(`/user/${u.user.id}`);
    expect(edited.body).toMatchObject({ name: `${p}new`, last_name: 'Lovelace', email: u.email });
    await run.t.mail.waitFor((m) => m.to.includes(u.email) && m.text.includes(`${p}new`));

    // Reset password: the old one stops working and a link goes out.
    await page.getByRole('button', { name: 'Reset password' }).click();
    const reset = page.getByRole('dialog', { name: 'Reset password' });
    await reset.getByText('Their current password stops working at once').waitFor();
    await reset.getByRole('button', { name: 'Reset and send the link' }).click();
    await page.getByRole('status').filter({ hasText: 'Password reset.' }).waitFor();
    const login = await run.t.http().post('/login').send({ email: u.email, password: 'old password 12' });
    expect(login.status).toBe(401);
    const [mail] = await run.t.mail.waitFor((m) => m.to.includes(u.email) && m.text.includes('/reset-password?token='));
    expect(run.linkIn(mail.text, '/reset-password')).toMatch(/^\/reset-password\?token=/);

    // Delete one API token: it is refused, the other still works.
    await page.getByRole('button', { name: `Delete token ${firstName}` }).click();
    await page.getByRole('dialog', { name: `Delete token ${firstName}` }).getByRole('button', { name: 'Delete token' }).click();
    await page.getByRole('rowheader', { name: firstName, exact: true }).waitFor({ state: 'detached' });
    expect((await run.t.http().get('/user/me').set('Authorization', `Bearer ${firstToken}`)).status).toBe(401);
    expect((await run.t.http().get('/user/me').set('Authorization', `Bearer ${secondToken}`)).status).toBe(200);

    // Sign out everywhere: the remaining token is refused too.
    await page.getByRole('button', { name: 'Sign out everywhere / revoke tokens' }).click();
    await page.getByRole('dialog', { name: 'Sign out everywhere / revoke tokens' }).getByRole('button', { name: 'Sign out and revoke tokens' }).click();
    await page.getByText('No API tokens.').waitFor();
    expect((await run.t.http().get('/user/me').set('Authorization', `Bearer ${secondToken}`)).status).toBe(401);
    expectNoTrouble(tab.trouble);
  });

  it('tells a non-admin the user pages are not theirs, without asking the API', async () => {
    const someone = await run.t.factory.user({ password: 'plain password 1' });
    const tab = await run.open();
    const adminCalls: string[] = [];
    tab.page.on('request', (r) => {
      const path = new URL(r.url()).pathname;
      if (path === '/user' || (path.startsWith('/user/') && !path.startsWith('/user/me'))) adminCalls.push(`${r.method()} ${path}`);
    });
    await run.signIn(tab, someone);
    await tab.page.goto('/admin/users');
    await tab.page.getByRole('heading', { name: 'Not allowed' }).waitFor();
    await tab.page.goto(`/admin/users/${admin.user.id}`);
    await tab.page.getByRole('heading', { name: 'Not allowed' }).waitFor();
    expect(adminCalls).toEqual([]);
    expectNoTrouble(tab.trouble);
  });
});
