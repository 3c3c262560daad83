'use strict';
/**
 * list_at_scale: what a page of GET /user, GET /user_group, GET /user_group/:g/member and GET
 * /audit costs with 1 000 users (and groups, and audit entries) and with 1 000 000, through the
 * service's HTTP API, on Postgres
 * and on the embedded PGlite. API.md: "the cost of a page does not grow with the number of users".
 *
 * Per database kind, two databases are made alike but for their size, each served by its own
 * service process (pinned to the server core): the small one with BENCH_SCALE_SMALL filler users
 * and groups, the large one with BENCH_SCALE_USERS and BENCH_SCALE_GROUPS. Both hold the same few
 * special users and groups (the ones that q=zq, is_admin=1, a member of three groups... find), so
 * a selective filter answers the same rows at both sizes. Each service first migrates its
 * database and gets its callers through the API; then it is stopped and the data is seeded with
 * INSERT ... SELECT generate_series (on Postgres through a connection of the bench; on PGlite by
 * opening the service's data directory in this process, the service being stopped), followed by
 * VACUUM ANALYZE; then both services are started again and measured, requests one at a time,
 * alternating between the two sizes round after round (the machine's speed drifts). A page's
 * figure is the p50 of its samples; the target is p50 at the large size <= 1.2x p50 at the small.
 */
const fs = require('node:fs');
const path = require('node:path');
const lib = require('./lib');

const { HOST, PASSWORD, round2, round3, median, table, verdict, heading } = lib;

const TARGETS = { p50RatioMax: 1.2 };
const KINDS = ['postgres', 'pglite'];

function config() {
  const users = lib.int('BENCH_SCALE_USERS', 1_000_000);
  const databases = (process.env.BENCH_SCALE_DATABASES || KINDS.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = databases.filter((d) => !KINDS.includes(d));
  if (unknown.length) throw new Error(`BENCH_SCALE_DATABASES: unknown ${unknown.join(', ')} (known: ${KINDS.join(', ')})`);
  return {
    databases,
    small: lib.int('BENCH_SCALE_SMALL', 1000),
    users,
    groups: lib.int('BENCH_SCALE_GROUPS', users),
    rounds: lib.int('BENCH_SCALE_ROUNDS', 5),
    samples: lib.int('BENCH_SCALE_SAMPLES', 40), // per page, size and round
    batch: lib.int('BENCH_SCALE_BATCH', 5), // requests in a row to one size
    capMs: lib.int('BENCH_SCALE_CAP_MS', 2000), // per page, size and round: at least one sample, then about this long at most
    warmup: lib.int('BENCH_SCALE_WARMUP', 5), // requests per page and size before measuring
  };
}

function budgetSeconds(cfg) {
  const pages = PAGES.length;
  const millions = Math.max(cfg.users, cfg.groups) / 1e6;
  return cfg.databases.length * (600 + 1500 * millions + (cfg.rounds * pages * 2 * (cfg.capMs + 1000)) / 1000);
}

/**
 * The same special rows at both sizes. Names that q=zq finds (by name or by email, mixed case,
 * LIKE wildcards, non-ASCII), one deactivated, three with late names in a small group; the
 * callers gowner (owns every generated group), gmember (member of three late groups) and gall
 * (member of every generated group) are made through the API before seeding.
 */
const SPECIAL_USERS = [
  ['zq first', 'first@example.com'],
  ['ZQ second', 'second@example.com'],
  ['Zq third', 'third@example.com'],
  ['zQ', 'fourth@example.com'],
  ['alice', 'zqalice@example.com'],
  ['Bob', 'ZQbob@example.com'],
  ['zq%lit', 'percent@example.com'],
  ['zq_lit', 'underscore@example.com'],
  ['zqé', 'zqe@example.com'],
  ['Ébène', 'ebene@example.com'],
  ['zz late a', 'late.a@example.com'],
  ['zz late b', 'late.b@example.com'],
  ['ZZ late c', 'late.c@example.com'],
];
const CALLERS = ['gowner', 'gmember', 'gall'];
const ADMIN_EMAIL = 'bench-admin@example.com';

const literal = (s) => `'${s.replace(/'/g, "''")}'`;

/** The seed, statement by statement (VACUUM cannot run in a transaction block). */
function seedStatements(users, groups) {
  const specials = SPECIAL_USERS.map(([n, e]) => `(${literal(n)}, ${literal(e)})`).join(', ');
  return [
    `insert into users (name, email) values ${specials}`,
    `insert into users (name, email, deactivated) values ('zq gone', 'zqgone@example.com', now())`,
    // The filler: names in three cases of "user", emails u<i>@, one in 50 deactivated. One statement.
    `insert into users (name, email, created, deactivated)
     select case i % 3 when 0 then 'user ' when 1 then 'User ' else 'USER ' end || substr(md5(i::text), 1, 8) || ' ' || i,
            'u' || i || '@scale.test', now() - make_interval(secs => i),
            case when i % 50 = 0 then now() - make_interval(secs => i) end
       from generate_series(1, ${users}) i`,
    `insert into user_groups (name, owner_id)
     select 'group ' || substr(md5(i::text), 1, 8) || ' ' || i, (select id from users where name = 'gowner')
       from generate_series(1, ${groups}) i`,
    `insert into user_groups (name, owner_id)
     select n, (select id from users where email = ${literal(ADMIN_EMAIL)}) from unnest(array['zz team a', 'zz team b', 'zz team c', 'zz small', 'everyone']) n`,
    `insert into user_group_members (group_id, user_id)
     select g.id, u.id from user_groups g, users u where g.name like 'zz team _' and u.name = 'gmember'`,
    `insert into user_group_members (group_id, user_id)
     select g.id, u.id from user_groups g, users u where g.name = 'zz small' and lower(u.name) like 'zz late %'`,
    `insert into user_group_members (group_id, user_id)
     select (select id from user_groups where name = 'everyone'), id from users where deactivated is null`,
    `insert into user_group_members (group_id, user_id)
     select id, (select id from users where name = 'gall') from user_groups where name like 'group %'`,
    // The audit log: as many entries as filler users, by gall, of four common actions, newest
    // first in i; then the same few special entries at both sizes, in June 2025 (older than
    // every filler entry at the small size, and in the middle of them at the large one).
    `insert into audit_log (id, time, action, actor_id, actor_name, target_type, target_id, target_name, ip, user_agent, request_id, summary)
     select gen_random_uuid(), now() - make_interval(secs => i),
            (array['settings.changed', 'login.succeeded', 'user.updated', 'token.created'])[1 + i % 4],
            (select id from users where name = 'gall'), 'gall', 'user', gen_random_uuid(), 'user ' || i,
            '127.0.0.1', 'bench', 'req-' || i, '{"op": "set", "keys": ["k"]}'
       from generate_series(1, ${users}) i`,
    `insert into audit_log (id, time, action, actor_id, actor_name, target_type, target_id, target_name, ip, user_agent, request_id, summary)
     select gen_random_uuid(), timestamptz '2025-06-01 12:00:00+00' + make_interval(mins => k), s.action, u.id, u.name, 'group',
            coalesce(g.id, gen_random_uuid()), coalesce(g.name, 'gone ' || k), '127.0.0.1', 'bench', 'special', '{}'
       from (values ('group.deleted', 'gmember', null, 5), ('group.member_added', 'admin', 'zz small', 3)) s(action, actor, grp, n)
       join users u on u.name = s.actor or (s.actor = 'admin' and u.email = ${literal(ADMIN_EMAIL)})
       left join user_groups g on g.name = s.grp,
       generate_series(1, s.n) k`,
    // Chained as the service would have (the hashes do not matter here), so its chainer has
    // nothing to catch up on while the pages are measured.
    `insert into audit_chain (pos, seq, id, xid, prev_hash, hash)
     select (select coalesce(max(pos), 0) from audit_chain) + row_number() over (order by xid, seq), seq, id, xid, '', md5(seq::text)
       from audit_log a where not exists (select 1 from audit_chain c where c.seq = a.seq)`,
    'vacuum analyze',
  ];
}

/**
 * The pages measured. `info`: outside the target (reported). `same`: answers the same rows at
 * both sizes (checked). `next`: the page its Link points to, after the page named.
 */
const PAGES = [
  { name: 'users: first page', as: 'admin', path: '/user' },
  { name: 'users: second page', as: 'admin', next: 'users: first page' },
  { name: 'users: q most (q=u)', as: 'admin', path: '/user?q=u' },
  { name: 'users: q most, second page', as: 'admin', next: 'users: q most (q=u)' },
  { name: 'users: q few (q=zq)', as: 'admin', path: '/user?q=zq', same: true },
  { name: 'users: q few, first page (limit=2)', as: 'admin', path: '/user?q=zq&limit=2', same: true },
  { name: 'users: q few, second page (limit=2)', as: 'admin', next: 'users: q few, first page (limit=2)', same: true },
  { name: 'users: q none (q=zzzz)', as: 'admin', path: '/user?q=zzzz', same: true },
  { name: 'users: q few by email only (q=zqal)', as: 'admin', path: '/user?q=zqal', same: true },
  { name: 'users: q few, include_deactivated=1', as: 'admin', path: '/user?q=zq&include_deactivated=1', same: true },
  { name: 'users: q few, is_admin=0', as: 'admin', path: '/user?q=zq&is_admin=0', same: true },
  { name: 'users: is_admin=1', as: 'admin', path: '/user?is_admin=1', same: true },
  { name: 'users: is_admin=1, q=a', as: 'admin', path: '/user?is_admin=1&q=a', same: true },
  { name: 'users: is_admin=0', as: 'admin', path: '/user?is_admin=0' },
  { name: 'users: is_admin=0, second page', as: 'admin', next: 'users: is_admin=0' },
  { name: 'users: include_deactivated=1', as: 'admin', path: '/user?include_deactivated=1' },
  { name: 'users: include_deactivated=1, second page', as: 'admin', next: 'users: include_deactivated=1' },
  { name: 'users: q some, late in name order (q=user 8)', as: 'admin', path: '/user?q=user%208', info: true },
  { name: 'groups: all, as an admin', as: 'admin', path: '/user_group' },
  { name: 'groups: all, second page', as: 'admin', next: 'groups: all, as an admin' },
  { name: 'groups: as their owner', as: 'gowner', path: '/user_group' },
  { name: 'groups: as a member of all', as: 'gall', path: '/user_group' },
  { name: 'groups: as a member of all, second page', as: 'gall', next: 'groups: as a member of all' },
  { name: 'groups: as a member of three', as: 'gmember', path: '/user_group', same: true },
  { name: 'members: of everyone', as: 'admin', path: '/user_group/:everyone/member' },
  { name: 'members: of everyone, second page', as: 'admin', next: 'members: of everyone' },
  { name: 'members: of a small group', as: 'admin', path: '/user_group/:small/member', same: true },
  { name: 'audit: first page', as: 'admin', path: '/audit' },
  { name: 'audit: second page', as: 'admin', next: 'audit: first page' },
  { name: 'audit: by a rare actor', as: 'admin', path: '/audit?actor=:gmember', same: true },
  { name: 'audit: by the common actor', as: 'admin', path: '/audit?actor=:gall' },
  { name: 'audit: on a rare target', as: 'admin', path: '/audit?target=:small', same: true },
  { name: 'audit: a rare action', as: 'admin', path: '/audit?action=group.deleted', same: true },
  { name: 'audit: a common action', as: 'admin', path: '/audit?action=settings.changed' },
  { name: 'audit: a common action, second page', as: 'admin', next: 'audit: a common action' },
  { name: 'audit: a day in the past', as: 'admin', path: '/audit?since=2025-06-01T00:00:00Z&until=2025-06-02T00:00:00Z', same: true },
  { name: 'audit: two rare actions', as: 'admin', path: '/audit?action=group.deleted&action=group.member_added', same: true },
  { name: 'audit: two common actions', as: 'admin', path: '/audit?action=settings.changed&action=user.updated', info: true },
];

/** One database at one size, served by a service of its own. */
class Instance {
  constructor(kind, size, filler, groups) {
    this.kind = kind;
    this.size = size;
    this.filler = filler;
    this.groups = groups;
    this.appName = `bench-scale-${size}`;
    this.dir = lib.tmpDir(`acct-bench-scale-${kind}-${size}-`);
    if (kind === 'postgres') this.dbName = `acct_bench_scale_${size}_${process.pid}`;
  }

  async start(opts) {
    const port = await lib.freePort();
    const env = {
      PORT: String(port),
      HOST,
      LOG_LEVEL: 'warn',
      BCRYPT_COST: '4',
      THROTTLE_IP_PER_MINUTE: '0',
      JWT_SECRET: opts.secret,
      MFA_KEY: opts.mfaKey,
      AUDIT_KEY: opts.auditKey,
      ADMIN_EMAIL,
      ADMIN_PASSWORD: PASSWORD,
      DATA_DIR: path.join(this.dir, 'data'),
      MAIL_OUTBOX_DIR: path.join(this.dir, 'outbox'),
      DATABASE_URL: this.dbName ? lib.databaseUrl(this.dbName, this.appName) : '',
      DATABASE_POOL_SIZE: '',
      SMTP_URL: '',
      VALIDATE_RESPONSES: '0',
    };
    this.child = lib.startChild(`service (${this.kind}, ${this.size})`, path.join(lib.ROOT, 'dist/src/server.js'), env, { nodeArgs: opts.serviceNodeArgs, cpu: opts.serverCpu });
    this.base = `http://${HOST}:${port}`;
    await lib.waitReady(this.child, this.base, { timeoutMs: 600_000 }); // migrations first; PGlite opens its files
    this.target = { base: this.base, pid: this.child.proc.pid, appName: this.appName, dbName: this.dbName, pgCpu: opts.pgCpu };
    if (opts.pgCpu !== undefined) await lib.pinBackends(this.target);
    this.pgPids = this.dbName ? await lib.backendPids(this.target) : []; // PGlite runs inside the service
    this.tokens = { admin: await lib.login(this.base, ADMIN_EMAIL) };
  }

  async stop() {
    await lib.stopChild(this.child);
  }

  /** CPU nanoseconds so far of the service (every thread) and of its Postgres backends. */
  cpuNs() {
    lib.assertAlive();
    let ns = 0;
    const pid = this.child.proc.pid;
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) ns += schedNs(`/proc/${pid}/task/${tid}/schedstat`);
    for (const backend of this.pgPids) ns += schedNs(`/proc/${backend}/schedstat`);
    return ns;
  }

  /** Runs statements on the database while the service is stopped; returns rows of the last. */
  async sql(statements) {
    if (this.kind === 'postgres') {
      const client = lib.adminClient(this.dbName);
      await client.connect();
      try {
        let last;
        for (const s of statements) last = await client.query(s);
        return last.rows;
      } finally {
        await client.end();
      }
    }
    const { PGlite } = require('@electric-sql/pglite');
    const pg = await PGlite.create(path.join(this.dir, 'data', 'pgdata'));
    try {
      let last;
      for (const s of statements) last = await pg.query(s);
      return last.rows;
    } finally {
      await pg.close();
    }
  }
}

/** The first field of a schedstat file: nanoseconds on a CPU (0 for a thread gone meanwhile). */
function schedNs(file) {
  try {
    return Number(fs.readFileSync(file, 'utf8').split(' ')[0]);
  } catch {
    return 0;
  }
}

/** One request, timed from the bench (keep-alive connection), which must answer 200. */
async function timed(base, urlPath, token) {
  const t0 = process.hrtime.bigint();
  let res;
  try {
    res = await fetch(base + urlPath, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(600_000) });
  } catch (err) {
    lib.assertAlive();
    throw new Error(`GET ${base}${urlPath}: ${err.message} (${err.cause?.message ?? 'no cause'})`);
  }
  const text = await res.text();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (res.status !== 200) throw new Error(`GET ${base}${urlPath}: ${res.status} ${text.slice(0, 300)}`);
  return { ms, body: JSON.parse(text), link: res.headers.get('link') };
}

const itemsOf = (body) => (Array.isArray(body) ? body : body.items ?? body.members ?? []);

async function measureKind(kind, opts) {
  const { cfg } = opts;
  heading('list_at_scale', `${kind}: pages at ${cfg.small} and at ${cfg.users} users (${cfg.small} and ${cfg.groups} groups), through HTTP`);
  const small = new Instance(kind, 'small', cfg.small, cfg.small);
  const large = new Instance(kind, 'large', cfg.users, cfg.groups);
  const both = [small, large];
  const t0 = Date.now();
  for (const inst of both) {
    if (inst.dbName) await lib.createDatabase(inst.dbName);
    await inst.start(opts);
    for (const name of CALLERS) await lib.createActiveUser(inst.base, inst.tokens.admin, { name });
    await inst.stop();
    const s0 = Date.now();
    await inst.sql(seedStatements(inst.filler, inst.groups));
    inst.seedSeconds = round2((Date.now() - s0) / 1000);
    const [counts] = await inst.sql([
      `select (select count(*) from users)::int as users, (select count(*) from user_groups)::int as groups,
              (select count(*) from user_group_members)::int as members,
              (select count(*) from audit_log)::int as audit,
              (select id from user_groups where name = 'everyone') as everyone, (select id from user_groups where name = 'zz small') as small,
              (select id from users where name = 'gmember') as gmember, (select id from users where name = 'gall') as gall`,
    ]);
    inst.counts = counts;
    console.log(`${kind} ${inst.size}: ${counts.users} users, ${counts.groups} groups, ${counts.members} memberships, ${counts.audit} audit entries; seeded in ${inst.seedSeconds} s`);
  }
  for (const inst of both) {
    const s0 = Date.now();
    await inst.start(opts);
    inst.startSeconds = round2((Date.now() - s0) / 1000);
    for (const name of CALLERS) inst.tokens[name] = await lib.login(inst.base, `${name}@example.com`);
  }
  const setupSeconds = round2((Date.now() - t0) / 1000);

  // Each page's path at each size (ids, and the cursors of the Link headers), and its rows.
  const pages = PAGES.map((p) => ({ ...p, path: {}, items: {}, names: {}, samples: { small: [], large: [] }, cpuNs: { small: 0, large: 0 } }));
  const byName = Object.fromEntries(pages.map((p) => [p.name, p]));
  const resolve = async (p, inst) => {
    if (p.path[inst.size]) return;
    if (p.next) {
      const prev = byName[p.next];
      await resolve(prev, inst);
      const first = await timed(inst.base, prev.path[inst.size], inst.tokens[prev.as]);
      const m = /<([^>]+)>;\s*rel="next"/.exec(first.link ?? '');
      if (!m) throw new Error(`${kind} ${inst.size}: ${p.next} has no next page`);
      p.path[inst.size] = m[1];
    } else {
      p.path[inst.size] = p.path[inst.size] ?? PAGES.find((q) => q.name === p.name)
          .path.replace(':everyone', inst.counts.everyone)
          .replace(':small', inst.counts.small)
          .replace(':gmember', inst.counts.gmember)
          .replace(':gall', inst.counts.gall);
    }
    const r = await timed(inst.base, p.path[inst.size], inst.tokens[p.as]);
    p.items[inst.size] = itemsOf(r.body).length;
    p.names[inst.size] = itemsOf(r.body).map((x) => x.name ?? `${x.action} ${x.target?.name}`); // audit entries: no name, and times of their own
  };
  for (const p of pages) for (const inst of both) await resolve(p, inst);
  for (const p of pages.filter((x) => x.same)) {
    if (JSON.stringify(p.names.small) !== JSON.stringify(p.names.large)) {
      throw new Error(`${kind}: "${p.name}" answers different rows at the two sizes: ${JSON.stringify(p.names.small)} vs ${JSON.stringify(p.names.large)}`);
    }
  }

  // Warm-up (JIT, caches, PGlite's first reads), then rounds alternating the sizes.
  for (const inst of both) {
    for (let i = 0; i < 100; i++) await timed(inst.base, '/user', inst.tokens.admin);
    for (const p of pages) for (let i = 0; i < cfg.warmup; i++) await timed(inst.base, p.path[inst.size], inst.tokens[p.as]);
  }
  // Within a round, each page is read in small batches alternating between the sizes. Each
  // request's time is a sample; the CPU the service (all its threads) and its Postgres backends
  // spent over a batch (to the nanosecond, from /proc/<pid>/schedstat) is added to the page's
  // CPU at that size: CPU per request hardly moves with the other work on the machine, which
  // moves latencies a lot.
  for (let round = 0; round < cfg.rounds; round++) {
    for (const [i, p] of pages.entries()) {
      const started = Date.now();
      for (let n = 0; n < cfg.samples && (n === 0 || Date.now() - started < 2 * cfg.capMs); n += cfg.batch) {
        const order = (round + i + n / cfg.batch) % 2 === 0 ? both : [large, small];
        for (const inst of order) {
          const before = inst.cpuNs();
          for (let k = 0; k < cfg.batch; k++) p.samples[inst.size].push((await timed(inst.base, p.path[inst.size], inst.tokens[p.as])).ms);
          await lib.sleep(2); // what the service does after answering (logging, releasing) belongs to the batch
          p.cpuNs[inst.size] += inst.cpuNs() - before;
        }
      }
    }
    process.stdout.write(`  round ${round + 1}/${cfg.rounds} done\n`);
  }
  for (const inst of both) await inst.stop();
  for (const inst of both) if (inst.dbName) await lib.dropDatabase(inst.dbName);

  const rows = pages.map((p) => {
    const p50 = { small: round2(median(p.samples.small)), large: round2(median(p.samples.large)) };
    const cpuUs = { small: Math.round(p.cpuNs.small / p.samples.small.length / 1000), large: Math.round(p.cpuNs.large / p.samples.large.length / 1000) };
    const ratio = round3(p50.large / p50.small);
    return {
      name: p.name,
      path: p.path.large,
      info: Boolean(p.info),
      items: p.items,
      samples: { small: p.samples.small.length, large: p.samples.large.length },
      p50Ms: p50,
      ratio,
      cpuUsPerRequest: cpuUs,
      cpuRatio: round3(cpuUs.large / cpuUs.small),
      pass: p.info ? null : ratio <= TARGETS.p50RatioMax,
    };
  });
  console.log();
  const cpuWhat = kind === 'postgres' ? 'service + PG' : 'service';
  table([
    ['page', 'rows', `p50 ms ${small.counts.users}`, `p50 ms ${large.counts.users}`, 'p50 ratio', 'target', '', `CPU µs/req (${cpuWhat}) ${small.counts.users}`, `${large.counts.users}`, 'CPU ratio'],
    ...rows.map((r) => [
      r.name,
      r.items.small === r.items.large ? r.items.small : `${r.items.small}/${r.items.large}`,
      r.p50Ms.small,
      r.p50Ms.large,
      `${r.ratio.toFixed(3)}x`,
      r.info ? '(none)' : `<= ${TARGETS.p50RatioMax}x`,
      r.info ? 'info' : verdict(r.pass),
      r.cpuUsPerRequest.small,
      r.cpuUsPerRequest.large,
      `${r.cpuRatio.toFixed(3)}x`,
    ]),
  ]);
  const targeted = rows.filter((r) => !r.info);
  const failed = targeted.filter((r) => !r.pass);
  console.log(`\n${kind}: ${targeted.length - failed.length}/${targeted.length} pages within ${TARGETS.p50RatioMax}x; set-up ${setupSeconds} s`);
  return {
    kind,
    sizes: Object.fromEntries(
      both.map((i) => [i.size, { ...i.counts, everyone: undefined, small: undefined, gmember: undefined, gall: undefined, seedSeconds: i.seedSeconds, startSeconds: i.startSeconds }]),
    ),
    setupSeconds,
    pages: rows,
    passed: targeted.length - failed.length,
    targeted: targeted.length,
    worst: targeted.reduce((w, r) => (w && w.ratio >= r.ratio ? w : r), undefined),
  };
}

async function scenario(opts) {
  const out = { config: opts.cfg, targets: TARGETS, databases: {} };
  for (const kind of opts.cfg.databases) out.databases[kind] = await measureKind(kind, opts);
  return out;
}

function summaryRows(result) {
  return Object.values(result.databases).map((d) => [
    `list_at_scale (${d.kind})`,
    `${d.passed}/${d.targeted} pages p50 at ${d.sizes.large.users} users within ${TARGETS.p50RatioMax}x of ${d.sizes.small.users}; worst ${d.worst.ratio}x (${d.worst.name})`,
    `<= ${TARGETS.p50RatioMax}x each`,
    verdict(d.passed === d.targeted),
  ]);
}

module.exports = { config, budgetSeconds, scenario, summaryRows, TARGETS, PAGES, seedStatements };

