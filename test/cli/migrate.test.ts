import { migrations } from '../../migrations';
import { cliFixture } from '../helpers/cli';

/**
 * `accounts admin migrate [status | down --to NAME]` (issue 21: a way back): the list of this
 * build's migrations, applied or pending, and a rollback to a named one before going back to the
 * build it was the newest of. Against a database of the CLI's own.
 */
const fixture = cliFixture('accounts-migrate-');
const cli = fixture.run;
const previous = migrations[migrations.length - 2].name;
const newest = migrations[migrations.length - 1].name;

async function applied(): Promise<string[]> {
  return fixture.withDb(async (k) => (await k('knex_migrations').select('name').orderBy('id')).map((r: { name: string }) => r.name));
}

describe('accounts admin migrate', () => {
  it('status lists every migration, applied after migrate (the embedded database starts empty, a test Postgres migrated)', async () => {
    const first = await cli(['admin', 'migrate']);
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/^(applied 20261122150000_create_users, .*|already up to date)\n$/);
    const status = await cli(['admin', 'migrate', 'status']);
    expect(status).toMatchObject({ code: 0, err: '' });
    expect(status.out).toBe(migrations.map((m) => `applied  ${m.name}\n`).join(''));
  }, 60_000);

  it('down --to NAME rolls back what came after it, and nothing else runs them again until migrate', async () => {
    expect(await cli(['admin', 'migrate', 'down', '--to', previous])).toMatchObject({ code: 0, err: '', out: `rolled back ${newest}\n` });
    expect((await applied()).at(-1)).toBe(previous);
    expect(await cli(['admin', 'migrate', 'down', '--to', previous])).toMatchObject({ code: 0, out: `${previous} is the newest applied already\n` });
    const status = (await cli(['admin', 'migrate', 'status'])).out.trimEnd().split('\n');
    expect(status.at(-1)).toBe(`pending  ${newest}`);
    expect(await cli(['admin', 'migrate'])).toMatchObject({ code: 0, out: `applied ${newest}\n` });
  }, 60_000);

  it('status marks a newer build\'s migration; down refuses to pass it (exit 1, one line)', async () => {
    await fixture.withDb((k) => k('knex_migrations').insert({ name: '20991231000000_add_future_things', batch: 99, migration_time: new Date() }));
    expect((await cli(['admin', 'migrate', 'status'])).out.trimEnd().split('\n').at(-1)).toBe("applied  20991231000000_add_future_things  (a newer build's)");
    expect(await cli(['admin', 'migrate', 'down', '--to', previous])).toEqual({
      code: 1,
      out: '',
      err: 'accounts: the database has migrations this build does not know (20991231000000_add_future_things): roll back with the build that made them\n',
    });
    // Any other command of this build runs on it as it is (the newer schema only added).
    expect((await cli(['admin', 'create-user', '--email', 'ops@example.test', '--name', 'ops'])).code).toBe(0);
    expect((await applied()).at(-1)).toBe('20991231000000_add_future_things');
  }, 60_000);

  it('refuses bad usage before opening anything (exit 2)', async () => {
    for (const [args, message] of [
      [['migrate', 'down'], 'accounts: migrate down needs --to'],
      [['migrate', 'down', '--to', 'yesterday'], 'accounts: migrate down: --to "yesterday" is not a migration name such as 20261207130000_add_mfa'],
      [['migrate', '--to', previous], 'accounts: migrate: --to goes with migrate down'],
      [['migrate', 'sideways'], 'accounts: migrate: unknown task "sideways" (status or down)'],
      [['migrate', 'status', 'now'], 'accounts: migrate status: unexpected argument "now"'],
    ] as const) {
      const res = await cli([...args]);
      expect(res.code).toBe(2);
      expect(res.err.split('\n')[0]).toBe(message);
    }
  }, 60_000);
});
