import supertest from 'supertest';
import { expectNoTrouble, startConsole, type ConsoleRun } from '../helpers/console';

describe('the console: the audit log', () => {
  let run: ConsoleRun;
  beforeAll(async () => {
    run = await startConsole();
  });
  afterAll(async () => {
    await run?.close();
  });

  it('reads changes as sentences, filters by action and target, pages, and verifies the chain', async () => {
    const admin = await run.t.factory.loggedIn({ admin: true, name: 'root', password: 'admin password 1' });
    const http = supertest(run.t.baseUrl);
    const auth = `Bearer ${admin.jwt}`;

    // Changes through the API: a user created, renamed, and a failed sign-in as them.
    const made = await http.post('/user?send_mail=0').set('Authorization', auth).send({ name: 'bob', email: 'bob@example.test' });
    expect(made.status).toBe(201);
    const bobId = made.body.id as string;
    expect((await http.post(`/user/${bobId}?send_mail=0`).set('Authorization', auth).send({ name: 'robert' })).status).toBe(200);
    expect((await http.post('/login').send({ email: 'bob@example.test', password: 'not the password' })).status).toBe(401);
    // More than a page (50): failed sign-ins as an address with no account.
    for (let batch = 0; batch < 6; batch++) {
      await Promise.all(Array.from({ length: 10 }, () => http.post('/login').send({ email: 'nobody@example.test', password: 'guess' }).expect(401)));
    }
    const all = await http.get('/audit?limit=1000').set('Authorization', auth);
    expect(all.status).toBe(200);

    const tab = await run.open();
    const { page } = tab;
    /** Waits until the entries shown are of these actions, in this order. */
    const actionsShown = (list: string) =>
      // A function, not a string: the page's CSP refuses to evaluate a string.
      page.waitForFunction((want: string) => {
        const doc = (globalThis as unknown as { document: { querySelectorAll(s: string): ArrayLike<{ textContent: string | null }> } }).document;
        return Array.from(doc.querySelectorAll('ol.audit .action-name'), (e) => e.textContent).join(' ') === want;
      }, list);
    await run.signIn(tab, admin);
    const total = all.body.length + 1; // and the page's own sign-in
    expect(total).toBeGreaterThan(50);

    await page.goto('/admin/audit');
    await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
    const entries = page.getByRole('list', { name: 'Audit entries' });
    await entries.getByRole('listitem').first().waitFor();
    // Newest first: the page's own sign-in, then the failed ones.
    expect(await entries.getByRole('listitem').count()).toBe(50);
    await expect(entries.getByRole('listitem').first().locator('.sentence').textContent()).resolves.toBe('root signed in.');
    await entries.getByText('A sign-in as “nobody@example.test” failed: no such account.').first().waitFor();
    await run.check(tab, 'admin-audit');

    // The older entries are on the next page.
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('Page 2').waitFor();
    await entries.getByText('root changed bob’s name from “bob” to “robert”.').waitFor();
    await entries.getByText('root created user bob (bob@example.test).').waitFor();
    await entries.getByText('A sign-in as “bob@example.test” failed: wrong password.').waitFor();
    expect(await entries.getByRole('listitem').count()).toBe(total - 50);
    await expect(page.getByRole('button', { name: 'Next' }).isDisabled()).resolves.toBe(true);

    // Only the renames.
    await page.getByText('All actions (choose some to narrow)').click();
    await page.getByLabel('user.updated').check();
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByRole('heading', { name: 'Matching entries' }).waitFor();
    await page.getByText('Page 1').waitFor();
    const updates = await http.get('/audit?action=user.updated').set('Authorization', auth);
    expect(updates.body).toHaveLength(1);
    await actionsShown('user.updated');
    await entries.getByText('root changed bob’s name from “bob” to “robert”.').waitFor();

    // What happened to bob (named by email): created, renamed, a failed sign-in.
    await page.getByLabel('user.updated').uncheck();
    await page.getByLabel('Target (email, group or id)').fill('bob@example.test');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    const bobs = await http.get(`/audit?target=${bobId}`).set('Authorization', auth);
    expect(bobs.body.map((e: { action: string }) => e.action)).toEqual(['login.failed', 'user.updated', 'user.created']);
    await actionsShown('login.failed user.updated user.created');

    // The chain is intact, as the API says.
    await page.getByRole('button', { name: "Verify the log's integrity" }).click();
    const intact = page.getByRole('status').filter({ hasText: /^Intact: \d+ rows/ });
    await intact.waitFor();
    const verified = await http.get('/audit/verify').set('Authorization', auth);
    expect(verified.body).toMatchObject({ ok: true, pending: 0 });
    expect(await intact.textContent()).toBe(`Intact: ${verified.body.rows} rows.`);
    expect(verified.body.rows).toBe(total);
    expectNoTrouble(tab.trouble);
  }, 120_000);
});
