import supertest from 'supertest';
import { expectNoTrouble, startConsole, type ConsoleRun } from '../helpers/console';
import type { TestUser } from '../helpers/test-app';

describe('the console: the administrators’ groups pages', () => {
  let run: ConsoleRun;
  let admin: TestUser & { jwt: string };
  /** The API as the admin, with their bearer token. */
  const as = () => {
    const agent = supertest(run.t.baseUrl);
    const auth = `Bearer ${admin.jwt}`;
    return {
      get: (path: string) => agent.get(path).set('Authorization', auth),
      post: (path: string, body: object) => agent.post(path).set('Authorization', auth).send(body),
      put: (path: string, body?: object) => (body ? agent.put(path).set('Authorization', auth).send(body) : agent.put(path).set('Authorization', auth)),
    };
  };

  beforeAll(async () => {
    run = await startConsole();
    admin = await run.t.factory.loggedIn({ admin: true, name: 'root', password: 'admin password 1' });
  });
  afterAll(async () => {
    await run?.close();
  });

  it('an admin reads the effective-permission explainer of a user who holds a grant through a group', async () => {
    const alice = await run.t.factory.user({ name: 'alice' });
    expect((await as().post('/user_group', { name: 'deploy', description: 'Who may deploy' })).status).toBe(201);
    expect((await as().post('/user_group', { name: 'ops', description: 'On-call operators' })).status).toBe(201);
    expect((await as().put(`/user_group/ops/member/${alice.user.id}`)).status).toBe(201);
    expect((await as().put('/user_group/deploy/grant/user_group/ops', { permission: 'usergroup.write' })).status).toBe(200);
    expect((await as().put(`/user_group/deploy/grant/user/${alice.user.id}`, { permission: 'usergroup.read' })).status).toBe(200);

    const tab = await run.open();
    const { page } = tab;
    await run.signIn(tab, admin);
    await page.goto('/admin/groups');
    await page.getByRole('heading', { name: 'Groups', level: 1 }).waitFor();
    await page.getByRole('link', { name: 'ops', exact: true }).waitFor();
    await run.check(tab, 'admin-groups');

    await page.getByRole('link', { name: 'deploy', exact: true }).click();
    await page.getByRole('heading', { name: 'deploy', level: 1 }).waitFor();
    const grants = page.getByRole('table', { name: 'Grants on deploy' });
    await grants.getByRole('row', { name: /ops/ }).getByText('usergroup.write', { exact: true }).waitFor();
    await run.check(tab, 'admin-group');

    await page.getByLabel('User (email or id)').fill(alice.email);
    await page.getByRole('button', { name: 'Explain' }).click();
    const path = page.getByRole('list', { name: 'How alice gets usergroup.write on deploy' });
    await path.waitFor();
    // alice → member of ops → ops holds usergroup.write on deploy → usergroup.write
    expect((await path.getByRole('listitem').allTextContents()).map((s) => s.trim())).toEqual([
      'alice',
      'member of ops',
      'ops holds usergroup.write on deploy',
      'usergroup.write',
    ]);
    const routes = page.getByRole('table', { name: 'Every route by which alice gets something on deploy' });
    const viaOps = routes.getByRole('row', { name: /Member of ops, which holds usergroup\.write on deploy/ });
    await expect(viaOps.getByRole('cell').allTextContents()).resolves.toEqual(['Member of ops, which holds usergroup.write on deploy', 'usergroup.write', 'wins']);
    const direct = routes.getByRole('row', { name: /Direct grant on deploy/ });
    await expect(direct.getByRole('cell').allTextContents()).resolves.toEqual(['Direct grant on deploy', 'usergroup.read', 'does not win']);
    await page.getByText('Wins: the highest grant wins.').waitFor();

    // The page says what the API says.
    const effective = await as().get(`/user_group/deploy/effective/${alice.user.id}`);
    expect(effective.status).toBe(200);
    expect(effective.body).toEqual({ permission: 'usergroup.write', via: { type: 'group_grant', group: { id: expect.any(String), name: 'ops' } } });
    await page.getByText(`alice holds ${effective.body.permission} on deploy.`).waitFor();
    await run.check(tab, 'admin-group-explainer');
    expectNoTrouble(tab.trouble);
  }, 120_000);

  it('pages the members of a group beyond the first 100: member 101 and on show after "Next"', async () => {
    expect((await as().post('/user_group', { name: 'crowd', description: 'A large group' })).status).toBe(201);
    // 102 members, named so that their order by name is their number.
    const names = Array.from({ length: 102 }, (_, i) => `crowd-${String(i + 1).padStart(3, '0')}`);
    for (const name of names) {
      const u = await run.t.factory.user({ name, password: null });
      expect((await as().put(`/user_group/crowd/member/${u.user.id}`)).status).toBe(201);
    }
    const id = (await as().get('/user_group/crowd')).body.id as string;
    const tab = await run.open();
    const { page } = tab;
    await run.signIn(tab, admin);
    await page.goto(`/admin/groups/${id}`);
    await page.getByRole('heading', { name: 'Members (102)' }).waitFor();
    const members = page.getByRole('table', { name: 'Members of crowd' });
    await members.getByRole('link', { name: 'crowd-100' }).waitFor();
    expect(await members.getByRole('link', { name: 'crowd-101' }).count()).toBe(0);
    await run.check(tab, 'admin-group-members-paged');

    const pages = page.getByRole('navigation', { name: 'Pages' });
    await pages.getByRole('button', { name: 'Next' }).click();
    await members.getByRole('link', { name: 'crowd-102' }).waitFor();
    await members.getByRole('link', { name: 'crowd-101' }).waitFor();
    expect(await members.getByRole('link', { name: 'crowd-100' }).count()).toBe(0);
    expect(await pages.getByRole('button', { name: 'Next' }).isDisabled()).toBe(true);
    await pages.getByRole('button', { name: 'Previous' }).click();
    await members.getByRole('link', { name: 'crowd-001' }).waitFor();
    expectNoTrouble(tab.trouble);
  }, 120_000);

  it('creates a group, adds and removes a member, grants and revokes, through the pages', async () => {
    const bob = await run.t.factory.user({ name: 'bob' });
    const tab = await run.open();
    const { page } = tab;
    await run.signIn(tab, admin);
    await page.goto('/admin/groups');
    const create = page.getByRole('form', { name: 'Create a group' });
    // A taken name: the API's message under the name.
    await create.getByLabel('Name', { exact: true }).fill('deploy');
    await create.getByRole('button', { name: 'Create group' }).click();
    await create.getByText('a user group named deploy already exists').waitFor();
    expect(await create.getByLabel('Name', { exact: true }).getAttribute('aria-describedby')).toContain('field-name-error');
    expect(await create.getByLabel('Name', { exact: true }).getAttribute('aria-invalid')).toBe('true');

    await create.getByLabel('Name', { exact: true }).fill('release');
    await create.getByLabel('Description').fill('Release managers');
    await create.getByRole('button', { name: 'Create group' }).click();
    await page.waitForURL(/\/admin\/groups\/[0-9a-f-]{36}$/);
    await page.getByRole('heading', { name: 'release', level: 1 }).waitFor();
    const made = await as().get('/user_group/release');
    expect(made.status).toBe(200);
    expect(made.body).toMatchObject({ name: 'release', description: 'Release managers', active: true, owner: { id: admin.user.id } });
    expect(page.url()).toMatch(new RegExp(`/admin/groups/${made.body.id}$`));

    // Add a member, twice (the second time: already a member), then remove them.
    const add = page.getByRole('form', { name: 'Add a member' });
    await add.getByLabel('New member (email or id)').fill(bob.email);
    await add.getByRole('button', { name: 'Add member' }).click();
    await add.getByText(`Added ${bob.email}.`).waitFor();
    const members = page.getByRole('table', { name: 'Members of release' });
    await members.getByRole('link', { name: 'bob' }).waitFor();
    expect((await as().get('/user_group/release/member')).body.map((u: { id: string }) => u.id)).toEqual([bob.user.id]);
    await add.getByLabel('New member (email or id)').fill(bob.email);
    await add.getByRole('button', { name: 'Add member' }).click();
    await add.getByText(`${bob.email} is already a member.`).waitFor();

    await members.getByRole('button', { name: 'Remove bob' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove member' }).click();
    await page.getByText('No members yet.').waitFor();
    expect((await as().get('/user_group/release/member')).body).toEqual([]);

    // Grant to a user and to a group, then revoke both.
    const toUser = page.getByRole('form', { name: 'Grant to a user' });
    await toUser.getByLabel('User to grant (email or id)').fill(bob.email);
    await toUser.getByLabel('Permission for the user').selectOption('usergroup.write');
    await toUser.getByRole('button', { name: 'Grant to user' }).click();
    await toUser.getByText(`${bob.email} now holds usergroup.write.`).waitFor();
    const toGroup = page.getByRole('form', { name: 'Grant to a group' });
    await toGroup.getByLabel('Group to grant (name or id)').fill('ops');
    await toGroup.getByLabel("Permission for the group's members").selectOption('usergroup.admin');
    await toGroup.getByRole('button', { name: 'Grant to group' }).click();
    await toGroup.getByText('The members of ops now hold usergroup.admin.').waitFor();
    const grantsOf = async () =>
      ((await as().get('/user_group/release')).body.grants as Array<{ type: string; name: string; permission: string; origin: string }>)
        .filter((g) => g.origin === 'grant')
        .map((g) => `${g.type} ${g.name} ${g.permission}`)
        .sort();
    expect(await grantsOf()).toEqual(['user bob usergroup.write', 'user_group ops usergroup.admin']);

    const grants = page.getByRole('table', { name: 'Grants on release' });
    await grants.getByRole('button', { name: 'Revoke usergroup.write from bob' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke', exact: true }).click();
    await grants.getByRole('button', { name: 'Revoke usergroup.write from bob' }).waitFor({ state: 'detached' });
    expect(await grantsOf()).toEqual(['user_group ops usergroup.admin']);
    await grants.getByRole('button', { name: 'Revoke usergroup.admin from group ops' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke', exact: true }).click();
    await grants.getByRole('button', { name: 'Revoke usergroup.admin from group ops' }).waitFor({ state: 'detached' });
    expect(await grantsOf()).toEqual([]);

    // Delete it: back to the list, and gone from the API.
    await page.getByRole('button', { name: 'Delete group' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete group' }).click();
    await page.waitForURL(/\/admin\/groups$/);
    expect((await as().get('/user_group/release')).status).toBe(404);
    expectNoTrouble(tab.trouble, ['POST /user_group 409']);
  }, 120_000);
});
