import { expectNoTrouble, startConsole, type ConsoleRun } from '../helpers/console';

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
    await tab.page.getByRole('button', { name: 'Sign in' }).click();
    await tab.page.getByRole('alert').filter({ hasText: /./ }).waitFor();
    await tab.page.getByRole('alert').filter({ hasText: 'The email or the password is wrong.' }).waitFor();
    await run.signIn(tab, u);
    await tab.page.getByRole('heading', { name: 'Profile' }).waitFor();
    await run.check(tab, 'profile');
    await tab.page.getByRole('button', { name: 'Sign out' }).click();
    await tab.page.waitForURL('**/sign-in');
    expectNoTrouble(tab.trouble, ['POST /login 401']);
  });
});
