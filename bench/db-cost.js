'use strict';
/**
 * db_cost: what each hot operation asks of Postgres (docs/scaling.md). A throwaway cluster of its
 * own (test/helpers/pg-cluster.ts, loaded through tsx) with pg_stat_statements, the built service
 * (dist/src/server.js) on it, BENCH_DBCOST_USERS users made through the API (each with a login
 * token, a few settings and an API token); then for each operation: the statistics reset, the
 * operation sent BENCH_DBCOST_REQUESTS times one after the other, a pause for the work its commit
 * started (the audit chain's pass, `AUDIT_CHAIN_DELAY_MS` after a commit that wrote an entry),
 * and the statistics read: statements per request (BEGIN and COMMIT included: each is a round
 * trip) and database time per request (pg_stat_statements' execution time: the server's work,
 * not the network's). The service's pollers (outbox, jobs, gauges, chain) run meanwhile; their
 * share is measured first, while the service is idle, and taken off each figure.
 *
 * Then what the data takes: rows, total size (table, indexes, TOAST) and bytes per row of each
 * table after the run.
 *
 * `node bench/db-cost.js` (after `npm run build`) runs it alone; `BENCH_SCENARIOS=db_cost node
 * bench/run.js` runs it in the bench. Env: BENCH_DBCOST_USERS (1000), BENCH_DBCOST_REQUESTS (200),
 * BENCH_DBCOST_SETTLE_MS (1500).
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Client } = require('pg');
const lib = require('./lib');

const { ROOT, HOST, PASSWORD, http, expectStatus, mapLimit, range, sleep, table, heading } = lib;

function config() {
  return {
    users: lib.int('BENCH_DBCOST_USERS', 1000),
    requests: lib.int('BENCH_DBCOST_REQUESTS', 200),
    settleMs: lib.int('BENCH_DBCOST_SETTLE_MS', 1500),
  };
}

function budgetSeconds() {
  const c = config();
  return 180 + c.users * 0.3 + OPERATIONS.length * (c.requests * 0.05 + c.settleMs / 1000 + 5);
}

/**
 * The operations: each `make(ctx, i)` gives the i-th request (method, path, token, body, status).
 * Every request is different where the service would otherwise answer from nothing (a new user,
 * a new token name), and spread over the users where it reads.
 */
const OPERATIONS = [
  { name: 'GET /user/me', make: (c, i) => ({ method: 'GET', path: '/user/me', token: c.users[i % c.users.length].jwt, status: 200 }) },
  {
    name: 'POST /login',
    make: (c, i) => ({ method: 'POST', path: '/login', body: { email: c.users[i % c.users.length].email, password: PASSWORD }, status: 200 }),
  },
  {
    name: 'POST /refresh_token',
    // Each user's login token swapped for a new one, which the user keeps for the next time.
    make: (c, i) => {
      const u = c.users[i % c.users.length];
      return { method: 'POST', path: '/refresh_token', token: u.jwt, status: 200, then: (res) => (u.jwt = res.jwt_token) };
    },
  },
  { name: 'GET /user?limit=100', make: (c, i) => ({ method: 'GET', path: `/user?limit=100${i % 2 ? '&q=user' : ''}`, token: c.adminJwt, status: 200 }) },
  { name: 'POST /user', make: (c, i) => ({ method: 'POST', path: '/user?send_mail=0', token: c.adminJwt, body: { name: `new${c.run}-${i}`, email: `new${c.run}-${i}@example.com` }, status: 201 }) },
  {
    name: 'POST /user/me/settings/{key}',
    make: (c, i) => ({ method: 'POST', path: `/user/me/settings/theme${i % 4}`, token: c.users[i % c.users.length].jwt, body: { [`theme${i % 4}`]: { v: i } }, status: 204 }),
  },
  { name: 'GET /user/me/settings', make: (c, i) => ({ method: 'GET', path: '/user/me/settings', token: c.users[i % c.users.length].jwt, status: 200 }) },
  {
    name: 'POST /user/me/token',
    make: (c, i) => ({ method: 'POST', path: '/user/me/token', token: c.users[i % c.users.length].jwt, body: { name: `cost-${c.run}-${i}` }, status: 201 }),
  },
  { name: 'GET /user/me (API token)', make: (c, i) => ({ method: 'GET', path: '/user/me', token: c.users[i % c.users.length].apiToken, status: 200 }) },
  {
    name: 'JSON-RPC get_user',
    make: (c, i) => ({
      method: 'POST',
      path: '/_admin/api',
      body: { id: i, auth_token: c.adminApiToken, method: 'get_user', args: { userid: c.users[i % c.users.length].id } },
      status: 200,
      check: (res) => (res.error ? `get_user: ${JSON.stringify(res.error)}` : undefined),
    }),
  },
  { name: 'POST /password/reset', make: (c, i) => ({ method: 'POST', path: '/password/reset', body: { email: c.users[i % c.users.length].email }, status: 202 }) },
];

/** The service's share of pg_stat_statements: statements and execution ms, BEGIN/COMMIT included. */
async function readStats(client, dbName) {
  const { rows } = await client.query(
    `select s.query, s.calls::bigint as calls, s.total_exec_time as ms
       from pg_stat_statements s join pg_database d on d.oid = s.dbid
      where d.datname = $1 and s.query not like '%pg_stat_statements%'`,
    [dbName],
  );
  return rows.map((r) => ({ query: r.query, calls: Number(r.calls), ms: Number(r.ms) }));
}

const sum = (rows, key) => rows.reduce((a, r) => a + r[key], 0);

async function send(base, r) {
  const res = await expectStatus(r.status, http(base, r.method, r.path, { token: r.token, body: r.body }), `${r.method} ${r.path}`);
  const problem = r.check?.(res);
  if (problem) throw new Error(problem);
  r.then?.(res);
}

async function scenario() {
  const cfg = config();
  heading('db_cost', `statements and database time per request, ${cfg.requests} requests of each operation one after the other, pg_stat_statements on a cluster of its own`);
  require('tsx/cjs/api').register();
  const { startCluster } = require(path.join(ROOT, 'test/helpers/pg-cluster.ts'));
  const server = path.join(ROOT, 'dist/src/server.js');
  if (!fs.existsSync(server)) throw new Error('dist/src/server.js is missing: run `npm run build` first');

  // The server's defaults where the fault suite's cluster is small: shared_buffers as shipped.
  // pg_stat_statements.track = top (its default): the statements the service sends, each a round
  // trip; what they set off inside the server (foreign-key checks) is in their time, not counted apart.
  const cluster = await startCluster({ settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'top', shared_buffers: '128MB' } });
  const release = () => cluster.destroy();
  lib.state.others.add(release); // a signal or the bench's watchdog stops it too
  const dbName = 'accounts';
  const tmp = lib.tmpDir('acct-dbcost-');
  let service;
  const admin = new Client({ connectionString: cluster.url });
  try {
    await admin.connect();
    await admin.query(`create database ${dbName}`);
    await admin.query('create extension pg_stat_statements');
    const port = await lib.freePort();
    const base = `http://${HOST}:${port}`;
    const url = new URL(cluster.url);
    url.pathname = `/${dbName}`;
    service = lib.startChild('service (db_cost)', server, {
      DATABASE_URL: url.href,
      PORT: String(port),
      HOST,
      LOG_LEVEL: 'warn',
      BCRYPT_COST: '4',
      THROTTLE_IP_PER_MINUTE: '0',
      JWT_SECRET: crypto.randomBytes(36).toString('base64'),
      MFA_KEY: crypto.randomBytes(36).toString('base64'),
      AUDIT_KEY: crypto.randomBytes(36).toString('base64'),
      ADMIN_EMAIL: 'dbcost-admin@example.com',
      ADMIN_PASSWORD: PASSWORD,
      DATA_DIR: path.join(tmp, 'data'),
      MAIL_OUTBOX_DIR: path.join(tmp, 'outbox'),
      DATABASE_POOL_SIZE: '',
      SMTP_URL: '',
      VALIDATE_RESPONSES: '0',
    });
    await lib.waitReady(service, base);

    // Set-up, through the API: users with a login token, four settings and an API token each.
    const t0 = Date.now();
    const ctx = { run: process.pid, adminJwt: await lib.login(base, 'dbcost-admin@example.com') };
    ctx.adminApiToken = (await expectStatus(201, http(base, 'POST', '/user/me/token', { token: ctx.adminJwt, body: { name: 'rpc' } }), 'admin API token')).token;
    ctx.users = await mapLimit(range(cfg.users), 8, async (i) => {
      const u = await lib.createActiveUser(base, ctx.adminJwt, { name: `user${i}` });
      await expectStatus(204, http(base, 'POST', '/user/me/settings', { token: u.jwt, body: { theme0: 'dark', theme1: { a: 1 }, theme2: [1, 2], theme3: 'x'.repeat(40) } }), 'settings');
      u.apiToken = (await expectStatus(201, http(base, 'POST', '/user/me/token', { token: u.jwt, body: { name: 'ci' } }), 'API token')).token;
      return u;
    });
    console.log(`${cfg.users} users made through the API in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await admin.query(`select 1`); // the admin connection stays on the maintenance database
    const vacuum = new Client({ connectionString: url.href });
    await vacuum.connect();
    await vacuum.query('vacuum analyze');
    await vacuum.end();
    await sleep(cfg.settleMs);

    // What the service asks while idle (its pollers), per second.
    await admin.query('select pg_stat_statements_reset()');
    const idleStart = Date.now();
    await sleep(10_000);
    const idleRows = await readStats(admin, dbName);
    const idleSeconds = (Date.now() - idleStart) / 1000;
    const idle = { callsPerSecond: sum(idleRows, 'calls') / idleSeconds, msPerSecond: sum(idleRows, 'ms') / idleSeconds };

    const operations = [];
    for (const op of OPERATIONS) {
      await admin.query('select pg_stat_statements_reset()');
      const start = Date.now();
      for (const i of range(cfg.requests)) await send(base, op.make(ctx, i));
      const requestsMs = Date.now() - start;
      await sleep(cfg.settleMs); // the work the commits started (the audit chain's pass)
      const seconds = (Date.now() - start) / 1000;
      const rows = await readStats(admin, dbName);
      const calls = sum(rows, 'calls') - idle.callsPerSecond * seconds;
      const ms = sum(rows, 'ms') - idle.msPerSecond * seconds;
      const top = rows
        .sort((a, b) => b.calls - a.calls)
        .slice(0, 12)
        .map((r) => ({ perRequest: +(r.calls / cfg.requests).toFixed(2), msPerRequest: +(r.ms / cfg.requests).toFixed(4), query: r.query.replace(/\s+/g, ' ').slice(0, 160) }));
      operations.push({
        name: op.name,
        statementsPerRequest: +(calls / cfg.requests).toFixed(2),
        dbMsPerRequest: +(ms / cfg.requests).toFixed(3),
        wallMsPerRequest: +(requestsMs / cfg.requests).toFixed(2),
        statements: top,
      });
    }
    table([
      ['operation', 'statements/request', 'DB ms/request', 'wall ms/request (one at a time)'],
      ...operations.map((o) => [o.name, o.statementsPerRequest.toFixed(2), o.dbMsPerRequest.toFixed(3), o.wallMsPerRequest.toFixed(2)]),
    ]);
    console.log(`(idle, taken off each figure: ${idle.callsPerSecond.toFixed(2)} statements/s, ${idle.msPerSecond.toFixed(3)} DB ms/s from the pollers)`);
    if (process.env.BENCH_DBCOST_VERBOSE === '1') {
      for (const o of operations) {
        console.log(`\n${o.name}:`);
        for (const s of o.statements) console.log(`  ${s.perRequest.toFixed(2)}x ${s.msPerRequest.toFixed(4)} ms  ${s.query}`);
      }
    }

    // What the data takes.
    const sizes = await new Promise((resolve, reject) => {
      const c = new Client({ connectionString: url.href });
      c.connect()
        .then(() => c.query('analyze'))
        .then(() =>
          c.query(
            `select c.relname as table, c.reltuples::bigint as estimated_rows, pg_total_relation_size(c.oid) as total_bytes,
                    pg_relation_size(c.oid) as heap_bytes
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.relkind = 'r' and n.nspname = 'public' and c.relname not like 'knex_%'
              order by pg_total_relation_size(c.oid) desc`,
          ),
        )
        .then(async (r) => {
          const out = [];
          for (const row of r.rows) {
            const rows = Number((await c.query(`select count(*)::bigint as n from "${row.table}"`)).rows[0].n);
            const total = Number(row.total_bytes);
            out.push({ table: row.table, rows, totalBytes: total, heapBytes: Number(row.heap_bytes), bytesPerRow: rows ? Math.round(total / rows) : null });
          }
          await c.end();
          resolve(out);
        })
        .catch(reject);
    });
    console.log('\nwhat the data takes (after the run; total = table + indexes + TOAST):');
    table([['table', 'rows', 'total', 'bytes/row (total)'], ...sizes.filter((s) => s.rows > 0).map((s) => [s.table, String(s.rows), `${(s.totalBytes / 1024).toFixed(0)} kB`, String(s.bytesPerRow)])]);
    const databaseBytes = Number((await admin.query('select pg_database_size($1) as b', [dbName])).rows[0].b);
    console.log(`database ${dbName}: ${(databaseBytes / 1048576).toFixed(1)} MB`);
    return { config: cfg, idle, operations, sizes, databaseBytes };
  } finally {
    if (service) await lib.stopChild(service);
    await admin.end().catch(() => undefined);
    await cluster.destroy();
    lib.state.others.delete(release);
  }
}

/** Reported, no target. */
function summaryRows(r) {
  return r.operations.map((o) => ['db_cost', `${o.name}: ${o.statementsPerRequest} statements, ${o.dbMsPerRequest} DB ms per request`, 'reported', 'n/a']);
}

module.exports = { scenario, summaryRows, budgetSeconds, OPERATIONS };

if (require.main === module) {
  lib.init('postgres://postgres@127.0.0.1:5432/postgres'); // lib's admin connection is not used; its cleanup is
  const stop = (code) =>
    lib
      .cleanup()
      .then(() => process.exit(code));
  process.on('SIGINT', () => stop(130));
  process.on('SIGTERM', () => stop(143));
  scenario()
    .then((r) => {
      fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
      fs.writeFileSync(path.join(__dirname, 'results/db-cost.json'), `${JSON.stringify({ date: new Date().toISOString(), ...r }, null, 2)}\n`);
      console.log('\nwritten: bench/results/db-cost.json');
      return stop(0);
    })
    .catch((err) => {
      console.error(`db_cost failed: ${err.stack ?? err}`);
      return stop(1);
    });
}
