import type { User } from '../../src/domain/types';
import { onPostgres, openTestDatabase } from '../helpers/test-database';
import { KnexUserStore, PREFIX_PLAN_LIMIT, type UserListQuery } from '../../src/stores/user-store';
import { byNameC, explainEach, indexesUsed, isAfter, mostRowsRead } from './plans';

/**
 * KnexUserStore.list on this run's database (PGlite, or Postgres with DATABASE_URL): the order,
 * the filters, the cursors, and that a page is read through the indexes meant for it.
 */

type Db = Awaited<ReturnType<typeof openTestDatabase>>;

/** Names that sort differently in "C" than in a linguistic collation, or that LIKE could misread. */
const TRICKY = [
  'alice', 'Alice', 'ALICE', 'alice_b', 'aliceXb', 'alice%c', 'alice\\d', 'alice b', 'Zed', 'zed', 'zq first', 'ZQ second',
  'Zq third', 'zQ', 'Ébène', 'ébène', 'Émile', 'ézq', 'Ωmega', 'ωmega', '中文', '_under', '%percent', '~tilde', '0zero', 'a-b',
];

interface Row {
  id: string;
  name: string;
  email: string;
  is_admin: boolean;
  deactivated: Date | null;
  lower_name: string;
  lower_email: string;
}

describe('KnexUserStore.list', () => {
  let db: Db;
  let store: KnexUserStore;
  let rows: Row[];

  beforeAll(async () => {
    db = await openTestDatabase();
    store = new KnexUserStore(db.knex);
    const insert = (name: string, email: string, isAdmin = false) =>
      store.insert({ name, email, firstName: null, lastName: null, passwordHash: null, isAdmin, forcePasswordChange: false });
    const made: User[] = [];
    for (const [i, name] of TRICKY.entries()) made.push(await insert(name, `user${i}@example.test`, i % 5 === 0));
    // Matches by email only: q=zq finds them though their names do not start with it.
    made.push(await insert('bob', 'ZQbob@example.test'));
    made.push(await insert('carol', 'zq.carol@example.test', true));
    // Deactivated users, one of them under a name an active user holds now (names are unique among active users only).
    for (const name of ['zq gone', 'alice', 'Zed gone']) {
      const u = await insert(name === 'alice' ? 'alice-old' : name, `gone-${name.replace(/\W/g, '')}@example.test`);
      await store.deactivate(u.id, new Date());
      if (name === 'alice') await db.knex('users').where('id', u.id).update({ name: 'alice' });
    }
    rows = (
      await db.knex.raw<{ rows: Row[] }>('select id, name, email, is_admin, deactivated, lower(name) as lower_name, lower(email) as lower_email from users')
    ).rows;
    expect(rows.filter((r) => r.name === 'alice')).toHaveLength(2);
  });
  afterAll(async () => {
    await db.close();
  });

  /** What a page must hold, computed here from every row: the database's lower(), JavaScript's startsWith. */
  function expected(q: UserListQuery): string[] {
    const p = q.prefix?.toLowerCase();
    return rows
      .filter((r) => q.includeDeactivated || r.deactivated === null)
      .filter((r) => q.isAdmin === undefined || r.is_admin === q.isAdmin)
      .filter((r) => !p || r.lower_name.startsWith(p) || r.lower_email.startsWith(p))
      .filter((r) => isAfter(r, q.after))
      .sort(byNameC)
      .slice(0, q.limit)
      .map((r) => r.id);
  }

  /** Every page of a listing, following the last row of each as the cursor. */
  async function pages(q: Omit<UserListQuery, 'after'>): Promise<User[][]> {
    const out: User[][] = [];
    let after: UserListQuery['after'];
    for (;;) {
      const page = await store.list({ ...q, after });
      expect(page.map((u) => u.id)).toEqual(expected({ ...q, after }));
      if (page.length === 0) return out;
      out.push(page);
      if (page.length < q.limit) return out;
      after = { name: page[page.length - 1].name, id: page[page.length - 1].id };
      if (out.length > rows.length) throw new Error('the pages do not end');
    }
  }

  it('orders by name in byte order ("C"), then id, and pages with cursors', async () => {
    const all = (await pages({ limit: 1000, includeDeactivated: true })).flat();
    const names = all.map((u) => u.name);
    // Upper case before lower case, ASCII before the rest, the two users named alice by id.
    expect(names.indexOf('ALICE')).toBeLessThan(names.indexOf('Alice'));
    expect(names.indexOf('Zed')).toBeLessThan(names.indexOf('alice'));
    expect(names.indexOf('zed')).toBeLessThan(names.indexOf('Ébène'));
    expect(names.indexOf('Ébène')).toBeLessThan(names.indexOf('ébène'));
    expect(names.indexOf('ωmega')).toBeLessThan(names.indexOf('中文'));
    const alices = all.filter((u) => u.name === 'alice');
    expect(alices.map((u) => u.id)).toEqual(alices.map((u) => u.id).sort());
    for (const limit of [1, 2, 3, 7]) {
      expect((await pages({ limit, includeDeactivated: true })).flat().map((u) => u.id)).toEqual(all.map((u) => u.id));
    }
  });

  it('filters by a case-insensitive prefix of name or email, LIKE wildcards taken literally', async () => {
    const names = async (prefix: string) => (await store.list({ limit: 100, prefix, includeDeactivated: false })).map((u) => u.name);
    expect(await names('ALI')).toEqual(['ALICE', 'Alice', 'alice', 'alice b', 'alice%c', 'aliceXb', 'alice\\d', 'alice_b']);
    expect(await names('alice_')).toEqual(['alice_b']);
    expect(await names('alice%')).toEqual(['alice%c']);
    expect(await names('alice\\')).toEqual(['alice\\d']);
    expect(await names('%')).toEqual(['%percent']);
    expect(await names('_')).toEqual(['_under']);
    expect(await names('zq')).toEqual(['ZQ second', 'Zq third', 'bob', 'carol', 'zQ', 'zq first']);
    expect(await names('ÉB')).toEqual(['Ébène', 'ébène']);
    expect(await names('ΩM')).toEqual(['Ωmega', 'ωmega']);
    expect(await names('zzzz')).toEqual([]);
  });

  it('combines q, is_admin, include_deactivated and the cursor, page after page', async () => {
    const prefixes = [undefined, 'a', 'ALI', 'alice_', 'zq', 'Z', 'é', 'É', 'user1', 'gone', '%', '_', '\\', 'nobody'];
    for (const prefix of prefixes) {
      for (const isAdmin of [undefined, true, false]) {
        for (const includeDeactivated of [false, true]) {
          for (const limit of [2, 100]) await pages({ limit, prefix, isAdmin, includeDeactivated });
        }
      }
    }
  });

  it('hides deactivated users unless asked, and then shows them with their date', async () => {
    const active = (await pages({ limit: 100, prefix: 'zq', includeDeactivated: false })).flat();
    const all = (await pages({ limit: 100, prefix: 'zq', includeDeactivated: true })).flat();
    expect(active.map((u) => u.name)).not.toContain('zq gone');
    const gone = all.find((u) => u.name === 'zq gone');
    expect(gone?.deactivated).toBeInstanceOf(Date);
  });
});

describe('KnexUserStore.list at a size where the planner cares', () => {
  let db: Db;
  let store: KnexUserStore;
  const FILLER = 20_000;

  beforeAll(async () => {
    db = await openTestDatabase();
    store = new KnexUserStore(db.knex);
    // Many users whose names sort before the few that q=zq or is_admin=1 find; some deactivated.
    await db.knex.raw(
      `insert into users (name, email, deactivated)
       select 'filler ' || substr(md5(i::text), 1, 8) || ' ' || i, 'f' || i || '@filler.test', case when i % 10 = 0 then now() end
         from generate_series(1, ?::int) i`,
      [FILLER],
    );
    for (const [name, email, isAdmin] of [
      ['zq one', 'one@example.test', false],
      ['ZQ two', 'two@example.test', true],
      ['yves', 'zq.yves@example.test', false],
    ] as const) {
      await store.insert({ name, email, firstName: null, lastName: null, passwordHash: null, isAdmin, forcePasswordChange: false });
    }
    await db.knex.raw('analyze users');
  }, 60_000);
  afterAll(async () => {
    await db.close();
  });

  it('has the list indexes', async () => {
    const { rows } = await db.knex.raw<{ rows: { indexname: string }[] }>(`select indexname from pg_indexes where tablename in ('users', 'user_groups')`);
    expect(rows.map((r) => r.indexname)).toEqual(
      expect.arrayContaining([
        'users_name_id_idx',
        'users_active_name_id_idx',
        'users_admin_name_id_idx',
        'users_active_admin_name_id_idx',
        'users_lower_name_pattern_idx',
        'users_lower_email_pattern_idx',
        'user_groups_owner_name_id_idx',
      ]),
    );
  });

  const PATTERN = ['users_lower_email_pattern_idx', 'users_lower_name_pattern_idx'];
  const cases: [string, UserListQuery, string[]][] = [
    ['a selective prefix: the matches through the pattern indexes', { limit: 101, prefix: 'zq', includeDeactivated: false }, PATTERN],
    ['a selective prefix, limit 2 (where a planner trusting the statistics may walk the name order)', { limit: 2, prefix: 'zq', includeDeactivated: false }, PATTERN],
    ['a selective prefix, deactivated users too', { limit: 101, prefix: 'zq', includeDeactivated: true }, PATTERN],
    ['a prefix nobody has', { limit: 101, prefix: 'zzzz', includeDeactivated: false }, PATTERN],
    ['a prefix most users have: a walk in list order', { limit: 101, prefix: 'fi', includeDeactivated: false }, ['users_active_name_id_idx']],
    ['a prefix most users have, limit 2: a walk in list order', { limit: 2, prefix: 'fi', includeDeactivated: false }, ['users_active_name_id_idx']],
    ['no filter', { limit: 101, includeDeactivated: false }, ['users_active_name_id_idx']],
    ['no filter, deactivated users too', { limit: 101, includeDeactivated: true }, ['users_name_id_idx']],
    ['is_admin=1', { limit: 101, isAdmin: true, includeDeactivated: false }, ['users_active_admin_name_id_idx']],
    ['is_admin=0 after a cursor', { limit: 101, isAdmin: false, includeDeactivated: false, after: { name: 'filler 8', id: '00000000-0000-0000-0000-000000000000' } }, ['users_active_admin_name_id_idx']],
    ['is_admin=1, deactivated users too', { limit: 101, isAdmin: true, includeDeactivated: true }, ['users_admin_name_id_idx']],
  ];

  it.each(cases)('reads %s, never the whole table', async (_what, query, indexes) => {
    const plans = await explainEach(db.knex, () => store.list(query));
    const used = [...new Set(plans.flatMap(indexesUsed))].sort();
    // PGlite's database collation is "C", so there its plain unique index on lower(email) serves a
    // LIKE prefix (the walk's filter) as well as the pattern index does, and the planner may take either.
    if (onPostgres || !query.prefix) expect(used).toEqual([...indexes].sort());
    else expect(used).toEqual(expect.arrayContaining(indexes.filter((i) => !PATTERN.includes(i))));
    // On both databases: no step of any plan reads more than a page's worth of rows.
    expect(Math.max(...plans.map(mostRowsRead))).toBeLessThan(500);
  });

  it(`pages with a limit below the ${PREFIX_PLAN_LIMIT} a prefix search is planned with: every match once, in order`, async () => {
    const all = async (prefix: string) => {
      const out: string[] = [];
      for (let after: UserListQuery['after']; ; ) {
        const page = await store.list({ limit: 37, prefix, includeDeactivated: true, after });
        out.push(...page.map((u) => u.name));
        if (page.length < 37) return out;
        after = { name: page[page.length - 1].name, id: page[page.length - 1].id };
      }
    };
    expect(await all('zq')).toEqual(['ZQ two', 'yves', 'zq one']);
    // 'filler 1' starts 1 111 names (1, 10-19, 100-199, 1000-1999, 10000-19999 among 20 000).
    const ones = await all('filler 1');
    expect(ones.length).toBeGreaterThan(PREFIX_PLAN_LIMIT);
    expect(ones).toEqual([...ones].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    const { rows } = await db.knex.raw<{ rows: { n: string }[] }>(`select count(*) as n from users where name like 'filler 1%'`);
    expect(ones).toHaveLength(Number(rows[0].n));
  });
});
