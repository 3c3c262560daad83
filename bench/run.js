'use strict';
/**
 * `npm run bench`: load scenarios against the real service (dist/src/server.js) on fresh Postgres
 * databases, on loopback only. See bench/README.md for what each one measures.
 *
 *   user_me              GET /user/me with 1000 users' tokens, service vs the floor (bench/floor-server.mjs)
 *   user_list            GET /user?limit=100 by an admin, service vs the floor
 *   refresh              POST /refresh_token, each connection chaining the token it gets back
 *   login                POST /login at the configured bcrypt cost, against the bcrypt bound
 *   user_me_under_login  GET /user/me p99 at a light fixed rate while logins saturate the hash pool
 *   groups               GET /user_group/:g (1000 members, 50 granting groups) as a non-admin caller
 *   metrics_cost         CPU per request of GET /user/me with the metrics counting it and without (METRICS=0)
 *   audit_cost           CPU per request of POST /user/me and POST /login with the audit log written
 *                        (as shipped: the entry, and its chaining after the commit) and
 *                        without (AUDIT_LOG=0), alternating
 *   list_at_scale        p50 of filtered user, group, member and audit pages at 1 000 and at
 *                        1 000 000 rows, on Postgres and on PGlite (bench/list-at-scale.js)
 *   console_load         the web console's first page, cold cache, in Chromium: time until its form
 *                        can be used, and the script's compressed size (bench/console-load.js)
 *   hostile_input        GET /user/me latency alone and beside hostile senders: unauthenticated 5 MB
 *                        bodies, gzip bombs, slow senders (bench/hostile-input.js)
 *   mfa_login            POST /login/mfa (the second step of a login, an authenticator app's code):
 *                        req/s, p50/p99, CPU per request, beside POST /refresh_token (bench/mfa-login.js)
 *   mail_throughput      mails/s from the first of 2000 welcome mails queued (an admin creating
 *                        users) to the last received by an SMTP server on loopback (bench/mail-throughput.js)
 *   db_cost              statements and database time per request of each hot operation, from
 *                        pg_stat_statements on a throwaway cluster of its own; bytes per row of
 *                        each table (bench/db-cost.js)
 *   embedded_memory      the service's RSS on the embedded default: idle after the first start and after a
 *                        restart, after two minutes of mixed load; Postgres mode's beside (bench/embedded-memory.js)
 *   webhook_throughput   events/s from the first of 1000 changes to the last event received by a local
 *                        receiver (bench/webhooks.js)
 *   webhook_overhead     POST /user/me with 0 and with 5 webhook endpoints subscribed to * (bench/webhooks.js)
 *
 * `node bench/run.js` runs it (`npm run bench` builds first); requiring this file runs nothing.
 *
 * Each scenario prints a table and PASS/FAIL against its target; everything goes to
 * bench/results/latest.json. A missed target is reported, not an error; anything that fails to
 * run (including a single response other than 200) exits non-zero.
 *
 * Pinning (where taskset exists and there are 2+ cores): this process (the load generator) runs
 * on BENCH_LOAD_CPU (1); the server under test, the service or the floor, on BENCH_SERVER_CPU (0);
 * the Postgres backends serving them on BENCH_LOAD_CPU. The service runs twice on the same
 * database: first pinned, at BCRYPT_COST=4 (set-up, user_me, user_list, refresh, groups), then
 * restarted unpinned at BENCH_BCRYPT_COST for login and user_me_under_login (their bound is the
 * machine's cores). Both runs have THROTTLE_IP_PER_MINUTE=0.
 *
 * Env: BENCH_DATABASE_URL (admin connection, default postgres://postgres@127.0.0.1:5432/postgres),
 * BENCH_SCENARIOS (comma-separated, all by default), BENCH_SECONDS (measured seconds per run, 10),
 * BENCH_WARMUP_SECONDS (3), BENCH_CONNECTIONS (50), BENCH_USERS (users and tokens on each server,
 * 1000), BENCH_ROUNDS (user_me and user_list runs per server, alternating, 5), BENCH_LIST_LIMIT
 * (100), BENCH_PIN (1; 0 turns pinning off), BENCH_SERVER_CPU (0), BENCH_LOAD_CPU (1),
 * BENCH_FLOOR (another floor to run instead of bench/floor-server.mjs; its imports must resolve),
 * BENCH_BCRYPT_COST (12), BENCH_REFRESH_CONNECTIONS (= BENCH_CONNECTIONS),
 * BENCH_LOGIN_CONNECTIONS (8), BENCH_LOGIN_USERS (20), BENCH_LIGHT_CONNECTIONS (4),
 * BENCH_LIGHT_RATE (requests/s, 100), BENCH_HASH_SAMPLES (8), BENCH_GROUP_MEMBERS (1000),
 * BENCH_GRANTING_GROUPS (50), BENCH_GROUP_CALLERS (10), BENCH_SCALE_* (see list-at-scale.js),
 * BENCH_SERVICE_NODE_ARGS (extra node flags for the service, e.g. `--cpu-prof
 * --cpu-prof-dir=/tmp/prof`), BENCH_FLOOR_NODE_ARGS (the same for the floor), BENCH_VARIANTS (other builds
 * of the service beside it in user_me and user_list, `label=dir,...`: see bench/README.md).
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const bcrypt = require('bcrypt');
const lib = require('./lib');
const { startFloor, subjectOf } = require('./floor');
const listAtScale = require('./list-at-scale');
const consoleLoad = require('./console-load');
const hostileInput = require('./hostile-input');
const mfaLogin = require('./mfa-login');
const mailThroughput = require('./mail-throughput');
const dbCost = require('./db-cost');
const embeddedMemory = require('./embedded-memory');
const webhooks = require('./webhooks');

const {
  ROOT,
  HOST,
  PASSWORD,
  round2,
  round3,
  sleep,
  http,
  expectStatus,
  mapLimit,
  range,
  percentile,
  p99Of,
  perConnectionSlot,
  load,
  summarize,
  table,
  verdict,
  heading,
  login,
} = lib;

const SCENARIOS = ['user_me', 'user_list', 'refresh', 'login', 'user_me_under_login', 'groups', 'metrics_cost', 'audit_cost', 'list_at_scale', 'console_load', 'hostile_input', 'mfa_login', 'mail_throughput', 'db_cost', 'embedded_memory', 'webhook_throughput', 'webhook_overhead'];
const { num, int } = lib;
function selectedScenarios() {
  const raw = (process.env.BENCH_SCENARIOS || '').trim();
  if (!raw || raw === 'all') return new Set(SCENARIOS);
  const picked = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = picked.filter((s) => !SCENARIOS.includes(s));
  if (unknown.length) throw new Error(`BENCH_SCENARIOS: unknown ${unknown.join(', ')} (known: ${SCENARIOS.join(', ')})`);
  return new Set(picked);
}
const CFG = {
  adminUrl: process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres',
  scenarios: selectedScenarios(),
  seconds: num('BENCH_SECONDS', 10),
  warmupSeconds: num('BENCH_WARMUP_SECONDS', 3),
  connections: int('BENCH_CONNECTIONS', 50),
  users: int('BENCH_USERS', 1000),
  rounds: int('BENCH_ROUNDS', 5),
  listLimit: int('BENCH_LIST_LIMIT', 100, 1, 1000),
  pin: process.env.BENCH_PIN !== '0',
  serverCpu: int('BENCH_SERVER_CPU', 0, 0),
  loadCpu: int('BENCH_LOAD_CPU', 1, 0),
  poolSize: 10, // the service's DATABASE_POOL_SIZE default, and the floor's
  setupBcryptCost: 4, // the service's first run: set-up and the scenarios that hash nothing
  bcryptCost: int('BENCH_BCRYPT_COST', 12, 4, 15), // the service's second run: login scenarios
  refreshConnections: int('BENCH_REFRESH_CONNECTIONS', process.env.BENCH_CONNECTIONS || 50),
  loginConnections: int('BENCH_LOGIN_CONNECTIONS', 8),
  loginUsers: int('BENCH_LOGIN_USERS', 20),
  lightConnections: int('BENCH_LIGHT_CONNECTIONS', 4),
  lightRate: int('BENCH_LIGHT_RATE', 100),
  hashSamples: int('BENCH_HASH_SAMPLES', 8),
  groupMembers: int('BENCH_GROUP_MEMBERS', 1000),
  grantingGroups: int('BENCH_GRANTING_GROUPS', 50),
  groupCallers: int('BENCH_GROUP_CALLERS', 10),
  auditRounds: int('BENCH_AUDIT_ROUNDS', 3),
  auditConnections: int('BENCH_AUDIT_CONNECTIONS', 16),
  threadPoolSize: int('UV_THREADPOOL_SIZE', 4), // libuv's default; the service inherits this environment
  scale: listAtScale.config(),
  variants: (process.env.BENCH_VARIANTS || '')
    .split(',')
    .filter(Boolean)
    .map((v) => {
      const [label, dir] = v.split('=');
      if (!/^[a-z0-9_-]+$/i.test(label ?? '') || !dir || ['service', 'floor'].includes(label)) throw new Error(`BENCH_VARIANTS: ${v} is not label=dir`);
      return [label, path.resolve(dir)];
    }),
};
const TARGETS = {
  user_me: { throughputRatioMin: 0.9, p99RatioMax: 1.2 },
  user_list: { throughputRatioMin: 0.8 },
  refresh: { rpsPerCoreMin: 1200 }, // ten times Keycloak's published 120 refreshes/s per vCPU
  login: { boundRatioMin: 0.9 },
  user_me_under_login: { p99RatioMax: 2 },
  groups: {}, // no target: reported beside GET /user/me's
  metrics_cost: { cpuRatioMax: 1.03 }, // counting a request in the metrics adds at most 3% to its CPU (the service's)
  audit_cost: { cpuRatioMax: 1.1 }, // the audit entry adds at most 10% to a request's CPU (service + its Postgres backends)
  list_at_scale: listAtScale.TARGETS,
  embedded_memory: embeddedMemory.TARGETS,
};
const SETUP_CONCURRENCY = 16;
const ratio = (a, b) => (a === null || b === null || b === 0 ? null : round3(a / b));

/** The floor's seeded users, made the same on the service: `User <md5(i) 10 hex> <i>`, `user<i>@floor.test`. */
const floorName = (i) => `User ${crypto.createHash('md5').update(String(i)).digest('hex').slice(0, 10)} ${i}`;

/** A table of figures per server, the same columns everywhere. */
function serverTable(rows) {
  table([
    ['', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'main µs/req', 'CPU cores', 'PG µs/req', 'PG cores'],
    ...rows.map(([label, s]) => [label, s.rps, s.p50Ms, s.p99Ms, s.cpuUsPerRequest, s.mainThreadCpuUsPerRequest, s.cpuCores, s.pgCpuUsPerRequest, s.pgCpuCores]),
  ]);
}

/**
 * Rounds of the same load on the service and the floor (and any BENCH_VARIANTS), rotating which
 * goes first (the machine's speed drifts; rotation cancels more of it; for two it alternates);
 * each run after a warm-up run of its own.
 */
async function alternatingRounds(targets, requestsOf, label) {
  const runs = Object.fromEntries(targets.map((t) => [t.name, []]));
  // A variant starts cold, where the service has served the set-up: with variants, each build is
  // first loaded for BENCH_SECONDS, so that none is measured before its code is optimized.
  if (targets.length > 2) for (const target of targets) await load(target, { requests: requestsOf[target.name], seconds: CFG.seconds, connections: CFG.connections });
  for (let round = 0; round < CFG.rounds; round++) {
    const k = round % targets.length;
    const order = [...targets.slice(k), ...targets.slice(0, k)];
    for (const target of order) {
      const requests = requestsOf[target.name];
      await load(target, { requests, seconds: CFG.warmupSeconds, connections: CFG.connections });
      const run = await load(target, { requests, seconds: CFG.seconds, connections: CFG.connections });
      runs[target.name].push(run);
      console.log(`  ${label} round ${round + 1} ${target.name.padEnd(12)} ${Math.round(run.requests / run.seconds)} req/s, p99 ${p99Of(run.latencies).toFixed(2)} ms`);
    }
  }
  return runs;
}

/** CPU per request of the service beside the floor's, and their ratios. */
function cpuComparison(s, f) {
  return {
    serviceCpu: ratio(s.cpuUsPerRequest, f.cpuUsPerRequest),
    mainThread: ratio(s.mainThreadCpuUsPerRequest, f.mainThreadCpuUsPerRequest),
    postgres: ratio(s.pgCpuUsPerRequest, f.pgCpuUsPerRequest),
    serviceAndPostgres: ratio(s.cpuUsPerRequest + (s.pgCpuUsPerRequest ?? 0), f.cpuUsPerRequest + (f.pgCpuUsPerRequest ?? 0)),
  };
}

function printCpuComparison(c) {
  console.log(
    `CPU per request, service / floor: service ${c.serviceCpu}x, main thread ${c.mainThread}x, Postgres backends ${c.postgres}x, ` +
      `service + Postgres ${c.serviceAndPostgres}x`,
  );
}

// ---- scenario: GET /user/me, service vs floor ----
async function scenarioUserMe(ctx) {
  heading('user_me', 'GET /user/me, service vs floor');
  const { service, floor } = ctx;
  // Both servers answer every token with its own user (and the service's first-use writes are done).
  await mapLimit(ctx.users, 8, async (u) => {
    const me = await expectStatus(200, http(service.base, 'GET', '/user/me', { token: u.jwt }), 'GET /user/me (service)');
    if (me.id !== u.id) throw new Error(`the service answered GET /user/me with user ${me.id}, expected ${u.id}`);
  });
  await mapLimit(ctx.floorTokens, 8, async (token) => {
    const me = await expectStatus(200, http(floor.base, 'GET', '/user/me', { token }), 'GET /user/me (floor)');
    if (me.id !== subjectOf(token)) throw new Error(`the floor answered GET /user/me with user ${me.id}, expected ${subjectOf(token)}`);
  });
  console.log(
    `${ctx.users.length} service users and ${ctx.floorTokens.length} floor users, one token each; ${CFG.connections} connections; ` +
      `${CFG.rounds} round(s) of ${CFG.warmupSeconds} s warm-up + ${CFG.seconds} s measured per server, alternating; ${ctx.pinningNote}`,
  );
  const requests = { service: userMeRequests(ctx.tokens), floor: userMeRequests(ctx.floorTokens) };
  const variants = ctx.variants.map((v) => v.target);
  for (const v of variants) requests[v.name] = requests.service;
  const runs = await alternatingRounds([service, floor, ...variants], requests, 'user_me');
  const s = summarize(runs.service);
  const f = summarize(runs.floor);
  const t = TARGETS.user_me;
  const perRound = runs.service.map((r, i) => round3(r.requests / r.seconds / (runs.floor[i].requests / runs.floor[i].seconds)));
  const ratios = { throughput: ratio(s.rps, f.rps), p99: ratio(s.p99Ms, f.p99Ms), throughputPerRound: perRound, cpu: cpuComparison(s, f) };
  const pass = { throughput: ratios.throughput >= t.throughputRatioMin, p99: ratios.p99 <= t.p99RatioMax };
  console.log();
  serverTable([['service', s], ['floor', f]]);
  console.log();
  console.log(`throughput  service/floor ${ratios.throughput.toFixed(3)}x  (target >= ${t.throughputRatioMin}x)  ${verdict(pass.throughput)}   per round: ${perRound.join(', ')}`);
  console.log(`p99         service/floor ${ratios.p99.toFixed(3)}x  (target <= ${t.p99RatioMax}x)  ${verdict(pass.p99)}`);
  printCpuComparison(ratios.cpu);
  const builds = variants.length ? compareBuilds(runs, ['service', ...variants.map((v) => v.name)]) : undefined;
  return { service: s, floor: f, ratios, targets: t, pass, builds };
}

/**
 * BENCH_VARIANTS: other builds of the service (`label=dir,...`, each dir holding a `src/server.js`
 * compiled from another version of src/, e.g. `npx tsc -p tsconfig.build.json --outDir dir`, with
 * `node_modules` and `openapi.yaml` reachable from it), to see what a change buys: each runs on the
 * service's database beside it, pinned like it, and takes its turn in user_me's rounds.
 */
async function startVariants(ctx) {
  const variants = [];
  for (const [label, build] of CFG.variants) {
    if (!fs.existsSync(path.join(build, 'src/server.js'))) throw new Error(`BENCH_VARIANTS: ${build}/src/server.js is missing`);
    const v = await launchService(ctx, CFG.setupBcryptCost, { pinned: ctx.service.pgCpu !== undefined, appName: `bench-variant-${label}`, build, name: label });
    variants.push(v);
    const me = await expectStatus(200, http(v.target.base, 'GET', '/user/me', { token: ctx.users[1].jwt }), `GET /user/me (${label})`);
    if (me.id !== ctx.users[1].id) throw new Error(`${label} answered GET /user/me with user ${me.id}, expected ${ctx.users[1].id}`);
    console.log(`variant ${label}: ${build}, beside the service in user_me and user_list`);
  }
  return variants;
}

/** Each build's requests/s and CPU per request against the floor's, in total and per round. */
function compareBuilds(runs, names) {
  const f = summarize(runs.floor);
  const rate = (r) => r.requests / r.seconds;
  const out = {};
  for (const name of names) {
    const b = summarize(runs[name]);
    out[name] = {
      rps: b.rps,
      cpuUsPerRequest: b.cpuUsPerRequest,
      throughput: ratio(b.rps, f.rps),
      throughputPerRound: runs[name].map((r, i) => round3(rate(r) / rate(runs.floor[i]))),
      cpu: ratio(b.cpuUsPerRequest, f.cpuUsPerRequest),
      cpuPerRound: runs[name].map((r, i) => round3(r.cpu / r.requests / (runs.floor[i].cpu / runs.floor[i].requests))),
    };
  }
  console.log();
  table([
    ['build', 'req/s', 'x floor', 'per round', 'CPU µs/req', 'x floor', 'per round'],
    ...names.map((n) => [n, out[n].rps, out[n].throughput, out[n].throughputPerRound.join(' '), out[n].cpuUsPerRequest, out[n].cpu, out[n].cpuPerRound.join(' ')]),
  ]);
  return out;
}

const userMeRequests = (tokens) => tokens.map((t) => ({ method: 'GET', path: '/user/me', headers: { authorization: `Bearer ${t}` } }));

// ---- scenario: GET /user?limit=100 by an admin, service vs floor ----
async function scenarioUserList(ctx) {
  const { service, floor } = ctx;
  const listPath = `/user?limit=${CFG.listLimit}`;
  heading('user_list', `GET ${listPath} by an admin, service vs floor`);
  const serviceToken = ctx.listAdmin.jwt;
  const floorToken = floor.tokens.admin_tokens[0];
  // Both answer the same first users in the same shape, with a Link to the next page.
  const [a, b] = await Promise.all([http(service.base, 'GET', listPath, { token: serviceToken }), http(floor.base, 'GET', listPath, { token: floorToken })]);
  for (const [who, res] of [['service', a], ['floor', b]]) {
    if (res.status !== 200 || !Array.isArray(res.body) || res.body.length !== CFG.listLimit) throw new Error(`${who}: GET ${listPath} answered ${res.status} with ${JSON.stringify(res.body).slice(0, 200)}`);
    if (!/rel="next"/.test(res.headers.get('link') ?? '')) throw new Error(`${who}: GET ${listPath} has no Link to a next page`);
  }
  const same = (u) => JSON.stringify([u.name, u.email, u.is_admin, u.first_name, u.last_name]);
  const firstDifference = a.body.findIndex((u, i) => same(u) !== same(b.body[i]));
  if (firstDifference >= 0) throw new Error(`the first pages differ at row ${firstDifference}: service ${same(a.body[firstDifference])}, floor ${same(b.body[firstDifference])}`);
  const fields = Object.keys(a.body[0]).sort();
  if (JSON.stringify(fields) !== JSON.stringify(Object.keys(b.body[0]).sort())) throw new Error(`the pages have different fields: ${fields} vs ${Object.keys(b.body[0]).sort()}`);
  const differing = fields.filter((k) => a.body.some((u, i) => JSON.stringify(u[k]) !== JSON.stringify(b.body[i][k])));
  const bytes = { service: Buffer.byteLength(JSON.stringify(a.body)), floor: Buffer.byteLength(JSON.stringify(b.body)) };
  console.log(
    `both answer the same ${CFG.listLimit} users (name, email, is_admin, names) in the same order with the same fields; ` +
      `values that differ: ${differing.join(', ')}; ${bytes.service} vs ${bytes.floor} bytes`,
  );
  console.log(`${CFG.connections} connections; ${CFG.rounds} round(s) of ${CFG.warmupSeconds} s warm-up + ${CFG.seconds} s measured per server, alternating`);
  const req = (token) => [{ method: 'GET', path: listPath, headers: { authorization: `Bearer ${token}` } }];
  const variants = ctx.variants.map((v) => v.target);
  const runs = await alternatingRounds([service, floor, ...variants], { service: req(serviceToken), floor: req(floorToken), ...Object.fromEntries(variants.map((v) => [v.name, req(serviceToken)])) }, 'user_list');
  const s = summarize(runs.service);
  const f = summarize(runs.floor);
  const t = TARGETS.user_list;
  const perRound = runs.service.map((r, i) => round3(r.requests / r.seconds / (runs.floor[i].requests / runs.floor[i].seconds)));
  const ratios = { throughput: ratio(s.rps, f.rps), p99: ratio(s.p99Ms, f.p99Ms), throughputPerRound: perRound, cpu: cpuComparison(s, f) };
  const pass = { throughput: ratios.throughput >= t.throughputRatioMin };
  console.log();
  serverTable([['service', s], ['floor', f]]);
  console.log();
  console.log(`throughput  service/floor ${ratios.throughput.toFixed(3)}x  (target >= ${t.throughputRatioMin}x)  ${verdict(pass.throughput)}   per round: ${perRound.join(', ')}`);
  console.log(`p99         service/floor ${ratios.p99.toFixed(3)}x  (no target: reported)`);
  printCpuComparison(ratios.cpu);
  const builds = variants.length ? compareBuilds(runs, ['service', ...variants.map((v) => v.name)]) : undefined;
  return { path: listPath, responseBytes: bytes, differingFields: differing, service: s, floor: f, ratios, targets: t, pass, builds };
}

// ---- scenario: POST /refresh_token, a chain of tokens per connection ----
async function scenarioRefresh(ctx) {
  heading('refresh', 'POST /refresh_token, each connection presenting the token its last refresh returned');
  const n = CFG.refreshConnections;
  const users = await mapLimit(range(n), SETUP_CONCURRENCY, (i) => lib.createActiveUser(ctx.base, ctx.adminJwt, { name: `refresh${i}` }));

  // One chain per connection: the token in slot i is the one connection i presents next.
  let slots = [];
  let chained = 0;
  let chainError; // thrown inside autocannon's parser it would be lost; checked after the run
  const requests = [
    {
      method: 'POST',
      path: '/refresh_token',
      setupRequest: (req, c) => ({ ...req, headers: { ...req.headers, authorization: `Bearer ${slots[c.slot ?? 0]}` } }),
      onResponse: (status, body, c) => {
        if (status !== 200) return; // load() fails the run
        const next = JSON.parse(body).jwt_token;
        if (typeof next !== 'string' || next === slots[c.slot]) chainError ??= new Error(`refresh answered no new token: ${body}`);
        slots[c.slot] = next;
        chained++;
      },
    },
  ];

  // The chain really expires: a used token gets 401, the one it was swapped for works.
  const first = await login(ctx.base, users[0].email);
  const second = (await expectStatus(200, http(ctx.base, 'POST', '/refresh_token', { token: first }), 'refresh')).jwt_token;
  await expectStatus(401, http(ctx.base, 'POST', '/refresh_token', { token: first }), 'refresh with a used token');
  await expectStatus(200, http(ctx.base, 'GET', '/user/me', { token: second }), 'GET /user/me with a refreshed token');

  console.log(`${n} connections, one chain of tokens each; ${CFG.warmupSeconds} s warm-up + ${CFG.seconds} s measured; ${ctx.pinningNote}`);
  slots = await mapLimit(users, SETUP_CONCURRENCY, (u) => login(ctx.base, u.email));
  const r = await load(ctx.service, { requests, warmupSeconds: CFG.warmupSeconds, seconds: CFG.seconds, connections: n, setupClient: perConnectionSlot() });
  if (chainError) throw chainError;
  const s = summarize([r]);
  if (chained < s.requests) throw new Error(`only ${chained} refreshes handed on a new token, ${s.requests} measured`);
  const cores = os.cpus().length;
  const perServiceCore = Math.round(1e6 / s.cpuUsPerRequest);
  const perServiceAndPgCore = s.pgCpuUsPerRequest === null ? null : Math.round(1e6 / (s.cpuUsPerRequest + s.pgCpuUsPerRequest));
  const perMachineCore = Math.round(s.rps / cores);
  const t = TARGETS.refresh;
  const pass = { perServiceCore: perServiceCore >= t.rpsPerCoreMin, perMachineCore: perMachineCore >= t.rpsPerCoreMin };
  console.log();
  serverTable([['refresh', s]]);
  console.log();
  table([
    ['refreshes/s per core', 'value', 'target', ''],
    ['per service CPU core (1e6 / service CPU µs per request)', perServiceCore, `>= ${t.rpsPerCoreMin}`, verdict(pass.perServiceCore)],
    [`per machine core (req/s / ${cores} cores, shared with Postgres and the load generator)`, perMachineCore, `>= ${t.rpsPerCoreMin}`, verdict(pass.perMachineCore)],
    ['per core of service + its Postgres backends (info)', perServiceAndPgCore, '', ''],
  ]);
  return { connections: n, ...s, cores, refreshesPerServiceCore: perServiceCore, refreshesPerMachineCore: perMachineCore, refreshesPerServiceAndPgCore: perServiceAndPgCore, targets: t, pass };
}

// ---- the audit log's cost ----

/**
 * What writing the audit entry costs a request that changes something: POST /user/me (each
 * connection's user alternates its first_name, so every request is a change and an entry) and
 * POST /login (at the set-up bcrypt cost, 4, where the entry's share is largest), on the service
 * as shipped and on a second one with AUDIT_LOG=0 beside it, in rounds alternating which goes
 * first. The figure is CPU per request of the service (all threads) and of its Postgres backends.
 */
async function scenarioAuditCost(ctx, pinning) {
  heading('audit_cost', 'POST /user/me and POST /login, with the audit log written and without (AUDIT_LOG=0)');
  const n = CFG.auditConnections;
  const users = await mapLimit(range(n), SETUP_CONCURRENCY, (i) => lib.createActiveUser(ctx.base, ctx.adminJwt, { name: `audited${i}` }));
  const flips = users.map(() => 0);
  const routes = {
    'POST /user/me': [
      {
        method: 'POST',
        path: '/user/me?send_mail=0', // no mail: the request's own work only, so the entry's share is the larger
        setupRequest: (req, c) => {
          const i = c.slot ?? 0;
          flips[i] ^= 1;
          return { ...req, headers: { ...req.headers, authorization: `Bearer ${users[i].jwt}`, 'content-type': 'application/json' }, body: JSON.stringify({ first_name: flips[i] ? 'Ada' : 'Grace' }) };
        },
      },
    ],
    'POST /login': [
      {
        method: 'POST',
        path: '/login',
        setupRequest: (req, c) => ({ ...req, headers: { ...req.headers, 'content-type': 'application/json' }, body: JSON.stringify({ email: users[c.slot ?? 0].email, password: PASSWORD }) }),
      },
    ],
  };
  // Both services run side by side on the same database, pinned to the same core, each with its
  // own connections (told apart by application_name): no restarts between rounds, so neither
  // pays cold caches in its measured runs. Only one is under load at a time.
  await lib.stopChild(ctx.serviceChild);
  const services = {};
  for (const mode of ['on', 'off']) {
    await startService(ctx, CFG.setupBcryptCost, { pinned: pinning, env: { AUDIT_LOG: mode === 'on' ? '1' : '0' }, appName: `bench-audit-${mode}` });
    services[mode] = { target: ctx.service, child: ctx.serviceChild };
  }
  console.log(`${n} connections, each with its own user; a warm-up run per route and service, then ${CFG.auditRounds} rounds, each ${CFG.warmupSeconds} s warm-up + ${CFG.seconds} s measured per route and service; ${ctx.pinningNote}`);
  const runs = { on: {}, off: {} };
  for (const route of Object.keys(routes)) for (const mode of ['on', 'off']) runs[mode][route] = [];
  for (const mode of ['on', 'off']) {
    for (const requests of Object.values(routes)) await load(services[mode].target, { requests, seconds: CFG.seconds, connections: n, setupClient: perConnectionSlot() });
  }
  // Every POST /user/me rewrites one of 16 rows: without a vacuum before each run, the dead row
  // versions of the runs before (and the longer transactions of the run with the log) would be
  // charged to whichever run comes later.
  const vacuum = async () => {
    const client = lib.adminClient(ctx.dbName);
    await client.connect();
    try {
      await client.query('vacuum analyze users, user_tokens, audit_log');
    } finally {
      await client.end();
    }
  };
  for (let round = 0; round < CFG.auditRounds; round++) {
    for (const mode of round % 2 === 0 ? ['on', 'off'] : ['off', 'on']) {
      for (const [route, requests] of Object.entries(routes)) {
        await vacuum();
        const r = await load(services[mode].target, { requests, warmupSeconds: CFG.warmupSeconds, seconds: CFG.seconds, connections: n, setupClient: perConnectionSlot() });
        runs[mode][route].push(r);
        const s = summarize([r]);
        console.log(`  round ${round + 1} audit ${mode.padEnd(3)} ${route.padEnd(14)} ${s.rps} req/s, ${s.cpuUsPerRequest} + ${s.pgCpuUsPerRequest} µs CPU/req (service + PG)`);
      }
    }
  }
  // Back to the service as shipped for whatever runs next.
  for (const mode of ['on', 'off']) await lib.stopChild(services[mode].child);
  await startService(ctx, CFG.setupBcryptCost, { pinned: pinning });
  const entries = lib.adminClient(ctx.dbName);
  await entries.connect();
  const written = Number((await entries.query("select count(*) from audit_log where action in ('user.updated', 'login.succeeded')")).rows[0].count);
  await entries.end();

  const out = { connections: n, rounds: CFG.auditRounds, entriesWritten: written, routes: {} };
  const rows = [['route', 'audit', 'req/s', 'CPU µs/req', 'PG µs/req', 'total µs/req', 'ratio on/off', 'target', '']];
  for (const route of Object.keys(routes)) {
    const on = summarize(runs.on[route]);
    const off = summarize(runs.off[route]);
    const total = (s) => s.cpuUsPerRequest + (s.pgCpuUsPerRequest ?? 0);
    const cpuRatio = round3(total(on) / total(off));
    const pass = cpuRatio <= TARGETS.audit_cost.cpuRatioMax;
    // Each round's own ratio too: the machine drifts over a run, and a round's two runs are neighbours.
    const roundRatios = runs.on[route].map((r, i) => {
      const [a, b] = [summarize([r]), summarize([runs.off[route][i]])];
      return round3(total(a) / total(b));
    });
    console.log(`${route}: ratio per round ${roundRatios.map((x) => `${x}x`).join(', ')}`);
    out.routes[route] = { on: { ...on, totalCpuUs: total(on) }, off: { ...off, totalCpuUs: total(off) }, cpuRatio, roundRatios, serviceCpuRatio: round3(on.cpuUsPerRequest / off.cpuUsPerRequest), pass };
    rows.push([route, 'on', on.rps, on.cpuUsPerRequest, on.pgCpuUsPerRequest, total(on), `${cpuRatio}x`, `<= ${TARGETS.audit_cost.cpuRatioMax}x`, verdict(pass)]);
    rows.push([route, 'off', off.rps, off.cpuUsPerRequest, off.pgCpuUsPerRequest, total(off), '', '', '']);
  }
  console.log();
  table(rows);
  console.log(`(${written} entries of these two kinds written by the runs with the log on)`);
  return out;
}

// ---- scenario: what the metrics cost GET /user/me ----

/**
 * The service as shipped and a second one with METRICS=0 (no request or token check counted),
 * side by side on the same database, pinned to the same core, loaded in turn with the user_me
 * load; rounds alternate which goes first. The figure: the service's CPU per request (the
 * metrics run in the service only).
 */
async function scenarioMetricsCost(ctx, pinning) {
  heading('metrics_cost', 'GET /user/me, with the metrics counting and without (METRICS=0)');
  await lib.stopChild(ctx.serviceChild);
  const services = {};
  for (const mode of ['on', 'off']) {
    await startService(ctx, CFG.setupBcryptCost, { pinned: pinning, env: { METRICS: mode === 'on' ? '1' : '0' }, appName: `bench-metrics-${mode}` });
    services[mode] = { target: ctx.service, child: ctx.serviceChild };
  }
  const requests = userMeRequests(ctx.tokens);
  console.log(`${ctx.tokens.length} tokens, ${CFG.connections} connections; a warm-up run per service, then ${CFG.rounds} rounds of ${CFG.warmupSeconds} s warm-up + ${CFG.seconds} s measured per service, alternating; ${ctx.pinningNote}`);
  for (const mode of ['on', 'off']) await load(services[mode].target, { requests, seconds: CFG.warmupSeconds, connections: CFG.connections });
  const runs = { on: [], off: [] };
  for (let round = 0; round < CFG.rounds; round++) {
    for (const mode of round % 2 === 0 ? ['on', 'off'] : ['off', 'on']) {
      const r = await load(services[mode].target, { requests, warmupSeconds: CFG.warmupSeconds, seconds: CFG.seconds, connections: CFG.connections });
      runs[mode].push(r);
      const s = summarize([r]);
      console.log(`  round ${round + 1} metrics ${mode.padEnd(3)} ${s.rps} req/s, ${s.cpuUsPerRequest} µs CPU/req`);
    }
  }
  for (const mode of ['on', 'off']) await lib.stopChild(services[mode].child);
  await startService(ctx, CFG.setupBcryptCost, { pinned: pinning });
  const on = summarize(runs.on);
  const off = summarize(runs.off);
  const cpuRatio = round3(on.cpuUsPerRequest / off.cpuUsPerRequest);
  const roundRatios = runs.on.map((r, i) => round3(summarize([r]).cpuUsPerRequest / summarize([runs.off[i]]).cpuUsPerRequest));
  const pass = cpuRatio <= TARGETS.metrics_cost.cpuRatioMax;
  console.log();
  table([
    ['metrics', 'req/s', 'CPU µs/req', 'ratio on/off', 'per round', 'target', ''],
    ['on', on.rps, on.cpuUsPerRequest, `${cpuRatio}x`, roundRatios.map((x) => `${x}x`).join(' '), `<= ${TARGETS.metrics_cost.cpuRatioMax}x`, verdict(pass)],
    ['off', off.rps, off.cpuUsPerRequest, '', '', '', ''],
  ]);
  return { on, off, cpuRatio, roundRatios, pass };
}

// ---- the bcrypt bound ----

/**
 * One bcrypt comparison's time at the cost, with the project's bcrypt, in this process while the
 * service is idle (median of a few, one at a time), and how many comparisons a second libuv's
 * thread pool (UV_THREADPOOL_SIZE, as the service has it) gets through on this machine.
 */
async function measureBcrypt(cost) {
  const hash = await bcrypt.hash(PASSWORD, cost);
  const times = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < CFG.hashSamples; i++) {
    const t0 = process.hrtime.bigint();
    if (!(await bcrypt.compare(PASSWORD, hash))) throw new Error('bcrypt.compare failed');
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const cpu = process.cpuUsage(cpu0);
  times.sort((a, b) => a - b);
  const parallel = Math.max(CFG.threadPoolSize, os.cpus().length) * 2;
  const t0 = process.hrtime.bigint();
  await Promise.all(range(parallel).map(() => bcrypt.compare(PASSWORD, hash)));
  const poolSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    cost,
    hashMs: round2(percentile(times, 50)),
    hashMsMin: round2(times[0]),
    hashMsMax: round2(times[times.length - 1]),
    hashCpuMs: round2((cpu.user + cpu.system) / 1000 / CFG.hashSamples), // CPU, not wall: steadier when others share the cores
    poolComparesPerSecond: round2(parallel / poolSeconds),
  };
}

// ---- scenario: POST /login ----
function loginRequests(users) {
  // Each connection walks the users from its own offset, so no two log in the same user at once.
  const turns = [];
  return [
    {
      method: 'POST',
      path: '/login',
      headers: { 'content-type': 'application/json' },
      setupRequest: (req, c) => {
        const slot = c.slot ?? 0;
        turns[slot] = (turns[slot] ?? 0) + 1;
        const u = users[(slot * 7 + turns[slot]) % users.length];
        return { ...req, body: JSON.stringify({ email: u.email, password: PASSWORD }) };
      },
    },
  ];
}

async function scenarioLogin(ctx) {
  heading('login', `POST /login at bcrypt cost ${CFG.bcryptCost}, against the bcrypt bound`);
  const { loginUsers } = ctx;
  const requests = loginRequests(loginUsers);
  const cores = os.cpus().length;
  const b = await measureBcrypt(CFG.bcryptCost);
  const parallelism = Math.min(cores, CFG.threadPoolSize);
  const bound = round2((parallelism * 1000) / b.hashMs);
  console.log(
    `one bcrypt compare at cost ${b.cost}: ${b.hashMs} ms (median of ${CFG.hashSamples}; ${b.hashMsMin}–${b.hashMsMax}; ` +
      `${b.hashCpuMs} ms of CPU); thread pool of ${CFG.threadPoolSize} on ${cores} cores: ${b.poolComparesPerSecond} compares/s measured`,
  );
  console.log(`${CFG.loginConnections} connections over ${loginUsers.length} users; ${CFG.warmupSeconds} s warm-up + ${CFG.seconds} s measured; service not pinned`);
  const s = summarize([
    await load(ctx.service, { requests, warmupSeconds: CFG.warmupSeconds, seconds: CFG.seconds, connections: CFG.loginConnections, setupClient: perConnectionSlot() }),
  ]);
  const t = TARGETS.login;
  const r = round3(s.rps / bound);
  const ratioToPool = round3(s.rps / b.poolComparesPerSecond);
  // The same bound in CPU: the share of a login's CPU that is its hash. Other work on the
  // machine slows wall-clock figures; it hardly changes CPU per login.
  const cpuRatio = round3((b.hashCpuMs * 1000) / s.cpuUsPerRequest);
  const pass = { bound: r >= t.boundRatioMin, cpu: cpuRatio >= t.boundRatioMin };
  console.log();
  table([
    ['', 'logins/s', 'p50 ms', 'p99 ms', 'CPU µs/login', 'main µs/login', 'CPU cores', 'PG µs/login'],
    ['login', s.rps, s.p50Ms, s.p99Ms, s.cpuUsPerRequest, s.mainThreadCpuUsPerRequest, s.cpuCores, s.pgCpuUsPerRequest],
  ]);
  console.log();
  table([
    ['', 'value', 'target', ''],
    [`logins/s / bcrypt bound (${parallelism} cores / ${b.hashMs} ms = ${bound}/s)`, `${r.toFixed(3)}x`, `>= ${t.boundRatioMin}x`, verdict(pass.bound)],
    [`CPU of one hash / service CPU per login (${b.hashCpuMs} ms / ${round2(s.cpuUsPerRequest / 1000)} ms)`, `${cpuRatio.toFixed(3)}x`, `>= ${t.boundRatioMin}x`, verdict(pass.cpu)],
    [`logins/s / thread pool's measured compares/s (${b.poolComparesPerSecond}/s) (info)`, `${ratioToPool.toFixed(3)}x`, '', ''],
  ]);
  return {
    connections: CFG.loginConnections,
    users: loginUsers.length,
    bcrypt: b,
    parallelism,
    boundLoginsPerSecond: bound,
    ...s,
    ratioToBound: r,
    hashCpuShareOfLogin: cpuRatio,
    ratioToPoolThroughput: ratioToPool,
    targets: t,
    pass,
  };
}

// ---- scenario: GET /user/me at a light rate while logins saturate the hash pool ----
async function scenarioUserMeUnderLogin(ctx, results) {
  heading('user_me_under_login', `GET /user/me at ${CFG.lightRate} req/s while logins saturate the hash pool`);
  const light = { requests: userMeRequests(ctx.tokens), connections: CFG.lightConnections, overallRate: CFG.lightRate };
  console.log(
    `light load: ${CFG.lightConnections} connections, ${CFG.lightRate} req/s; logins: ${CFG.loginConnections} connections; ` +
      `${CFG.warmupSeconds} s warm-up + ${CFG.seconds} s measured, idle then under logins; service not pinned`,
  );
  // The same light load on the idle service first: the like-for-like reference.
  const idle = summarize([await load(ctx.service, { ...light, warmupSeconds: CFG.warmupSeconds, seconds: CFG.seconds })]);
  const loginRun = load(ctx.service, {
    requests: loginRequests(ctx.loginUsers),
    warmupSeconds: CFG.warmupSeconds,
    seconds: CFG.seconds + 0.5,
    connections: CFG.loginConnections,
    setupClient: perConnectionSlot(),
  });
  loginRun.catch(() => {}); // awaited below; a failure there must not count as unhandled meanwhile
  await sleep(CFG.warmupSeconds * 1000);
  const under = summarize([await load(ctx.service, { ...light, seconds: CFG.seconds })]);
  const logins = summarize([await loginRun]);
  const t = TARGETS.user_me_under_login;
  const scenario0 = results.user_me?.service;
  const ratioToScenario0 = scenario0 ? round3(under.p99Ms / scenario0.p99Ms) : null;
  const ratioToIdleLight = round3(under.p99Ms / idle.p99Ms);
  const pass = {
    p99VsUserMe: ratioToScenario0 === null ? null : ratioToScenario0 <= t.p99RatioMax,
    p99VsIdleLight: ratioToIdleLight <= t.p99RatioMax,
  };
  console.log();
  table([
    ['GET /user/me', 'req/s', 'p50 ms', 'p99 ms', 'CPU cores'],
    ['user_me scenario (50 conn., saturating, pinned)', scenario0?.rps ?? 'not run', scenario0?.p50Ms, scenario0?.p99Ms, scenario0?.cpuCores],
    ['light load, idle service', idle.rps, idle.p50Ms, idle.p99Ms, idle.cpuCores],
    ['light load, under logins', under.rps, under.p50Ms, under.p99Ms, under.cpuCores],
  ]);
  console.log(`logins meanwhile: ${logins.rps}/s, p99 ${logins.p99Ms} ms`);
  console.log();
  if (ratioToScenario0 !== null) {
    console.log(`p99 under logins / user_me p99        ${ratioToScenario0.toFixed(3)}x  (target <= ${t.p99RatioMax}x)  ${verdict(pass.p99VsUserMe)}`);
  } else {
    console.log('p99 under logins / user_me p99        n/a (user_me not run)');
  }
  console.log(`p99 under logins / same load idle      ${ratioToIdleLight.toFixed(3)}x  (target <= ${t.p99RatioMax}x)  ${verdict(pass.p99VsIdleLight)}`);
  return {
    lightConnections: CFG.lightConnections,
    lightRate: CFG.lightRate,
    idle,
    underLogins: under,
    logins: { connections: CFG.loginConnections, rps: logins.rps, p99Ms: logins.p99Ms, cpuCores: logins.cpuCores },
    userMeP99Ms: scenario0?.p99Ms ?? null,
    ratioToUserMeP99: ratioToScenario0,
    ratioToIdleLightP99: ratioToIdleLight,
    targets: t,
    pass,
  };
}

// ---- scenario: a permission-checked group read ----
async function scenarioGroups(ctx, results) {
  heading('groups', `GET /user_group/:group (${CFG.groupMembers} members, ${CFG.grantingGroups} granting groups) as a non-admin`);
  const t0 = Date.now();
  const call = (method, p, body, status, what) => expectStatus(status, http(ctx.base, method, p, { token: ctx.adminJwt, body }), what);
  const [members, callers, target, outsider] = await Promise.all([
    mapLimit(range(CFG.groupMembers), SETUP_CONCURRENCY, (i) => lib.createUser(ctx.base, ctx.adminJwt, { name: `member${String(i).padStart(5, '0')}`, password: null })),
    mapLimit(range(CFG.groupCallers), 4, (i) => lib.createActiveUser(ctx.base, ctx.adminJwt, { name: `caller${i}` })),
    call('POST', '/user_group', { name: 'bench-target', description: 'read through granting groups' }, 201, 'create the target group'),
    lib.createActiveUser(ctx.base, ctx.adminJwt, { name: 'outsider' }),
  ]);
  await mapLimit(members, SETUP_CONCURRENCY, (m) => call('PUT', `/user_group/${target.id}/member/${m.id}`, undefined, 201, 'add a member'));
  await mapLimit(range(CFG.grantingGroups), SETUP_CONCURRENCY, async (i) => {
    const g = await call('POST', '/user_group', { name: `bench-granting-${i}` }, 201, 'create a granting group');
    await call('PUT', `/user_group/${target.id}/grant/user_group/${g.id}`, { permission: 'usergroup.read' }, 200, 'grant read');
    for (const c of callers) await call('PUT', `/user_group/${g.id}/member/${c.id}`, undefined, 201, 'add a caller');
  });
  const setupSeconds = round2((Date.now() - t0) / 1000);

  // The callers read the group only through the granting groups; a user outside them cannot.
  const path_ = `/user_group/${target.id}`;
  const seen = await expectStatus(200, http(ctx.base, 'GET', path_, { token: callers[0].jwt }), 'GET the group as a caller');
  const outsiderStatus = (await http(ctx.base, 'GET', path_, { token: outsider.jwt })).status;
  if (outsiderStatus !== 404) throw new Error(`a user outside the granting groups got ${outsiderStatus} for the group, expected 404`);
  const effective = await call('GET', `${path_}/effective/${callers[0].id}`, undefined, 200, 'effective permission');
  const bodyBytes = Buffer.byteLength(JSON.stringify(seen));
  console.log(
    `set up in ${setupSeconds} s; a caller's effective permission: ${JSON.stringify(effective)}; ` +
      `response ${bodyBytes} bytes; a user outside the groups gets ${outsiderStatus}`,
  );

  const requests = callers.map((c) => ({ method: 'GET', path: path_, headers: { authorization: `Bearer ${c.jwt}` } }));
  console.log(`${callers.length} callers; ${CFG.connections} connections; ${CFG.warmupSeconds} s warm-up + ${CFG.seconds} s measured; ${ctx.pinningNote}`);
  const s = summarize([await load(ctx.service, { requests, warmupSeconds: CFG.warmupSeconds, seconds: CFG.seconds, connections: CFG.connections })]);

  // GET /user/me in the same run: the user_me scenario's service figures, or a run of its own.
  let me = results.user_me?.service;
  let meSource = 'user_me scenario';
  if (!me) {
    meSource = 'own reference run';
    me = summarize([await load(ctx.service, { requests: userMeRequests(ctx.tokens), warmupSeconds: CFG.warmupSeconds, seconds: CFG.seconds, connections: CFG.connections })]);
  }
  const r = round3(s.rps / me.rps);
  const cpuRatio = round3(s.cpuUsPerRequest / me.cpuUsPerRequest);
  console.log();
  serverTable([['GET /user_group/:g', s], [`GET /user/me (${meSource})`, me]]);
  console.log();
  console.log(`group read / user/me: ${r.toFixed(3)}x the requests/s, ${cpuRatio.toFixed(3)}x the service CPU per request (no target: reported)`);
  return {
    members: CFG.groupMembers,
    grantingGroups: CFG.grantingGroups,
    callers: callers.length,
    setupSeconds,
    responseBytes: bodyBytes,
    membersInResponse: Array.isArray(seen.members) ? seen.members.length : null,
    effective,
    outsiderStatus,
    ...s,
    userMe: { source: meSource, rps: me.rps, p99Ms: me.p99Ms, cpuUsPerRequest: me.cpuUsPerRequest },
    ratioToUserMe: r,
    cpuRatioToUserMe: cpuRatio,
    targets: TARGETS.groups,
    pass: {},
  };
}

// ---- the benchmark ----

async function startService(ctx, bcryptCost, options) {
  const { target, child } = await launchService(ctx, bcryptCost, options);
  ctx.serviceChild = child;
  ctx.service = target;
  ctx.base = target.base;
}

/** The service built in `build` (a directory holding `src/server.js`; default dist/) on ctx's database. */
async function launchService(ctx, bcryptCost, { pinned, env = {}, appName = 'bench-service', build = path.join(ROOT, 'dist'), name = 'service' }) {
  const port = await lib.freePort();
  const service = lib.startChild(
    `${name} (bcrypt cost ${bcryptCost})`,
    path.join(build, 'src/server.js'),
    {
      DATABASE_URL: lib.databaseUrl(ctx.dbName, appName),
      PORT: String(port),
      HOST,
      LOG_LEVEL: 'warn',
      BCRYPT_COST: String(bcryptCost),
      THROTTLE_IP_PER_MINUTE: '0',
      JWT_SECRET: ctx.secret,
      MFA_KEY: ctx.mfaKey,
      AUDIT_KEY: ctx.auditKey,
      ADMIN_EMAIL: ctx.adminEmail,
      ADMIN_PASSWORD: PASSWORD,
      DATA_DIR: path.join(ctx.tmpDir, 'data'),
      MAIL_OUTBOX_DIR: path.join(ctx.tmpDir, 'outbox'),
      DATABASE_POOL_SIZE: '', // blank: the default, whatever this shell has
      SMTP_URL: '',
      VALIDATE_RESPONSES: '0',
      ...env,
    },
    { nodeArgs: ctx.serviceNodeArgs, cpu: pinned ? CFG.serverCpu : undefined },
  );
  const base = `http://${HOST}:${port}`;
  await lib.waitReady(service, base); // the service migrates the database before it listens
  return { child: service, target: { name, base, pid: service.proc.pid, appName, dbName: ctx.dbName, pgCpu: pinned ? CFG.loadCpu : undefined } };
}

async function main() {
  lib.init(CFG.adminUrl);
  const want = (s) => CFG.scenarios.has(s);
  const server = path.join(ROOT, 'dist/src/server.js');
  if (!fs.existsSync(server)) throw new Error('dist/src/server.js is missing: run `npm run build` first');
  const started = Date.now();
  const cores = os.cpus().length;
  const pinning = CFG.pin && lib.canPin() && Math.max(CFG.serverCpu, CFG.loadCpu) < cores && CFG.serverCpu !== CFG.loadCpu;
  const pinningNote = pinning
    ? `server pinned to CPU ${CFG.serverCpu}; load generator and the server's Postgres backends on CPU ${CFG.loadCpu}`
    : 'nothing pinned';
  if (CFG.pin && !pinning) console.log(`not pinning: needs taskset, 2+ cores and two different CPUs (BENCH_SERVER_CPU, BENCH_LOAD_CPU); ${cores} cores`);
  if (pinning) lib.pin(process.pid, CFG.loadCpu, { allThreads: true });

  await lib.connectAdmin();
  const ctx = {
    dbName: `acct_bench_${process.pid}`,
    tmpDir: lib.tmpDir('acct-bench-'),
    secret: crypto.randomBytes(36).toString('base64'), // 48 characters
    mfaKey: crypto.randomBytes(36).toString('base64'), // MFA_KEY, required with Postgres
    auditKey: crypto.randomBytes(36).toString('base64'), // AUDIT_KEY, required with Postgres
    adminEmail: 'bench-admin@example.com',
    serviceNodeArgs: (process.env.BENCH_SERVICE_NODE_ARGS || '').split(' ').filter(Boolean),
    pinningNote,
  };
  console.log(`scenarios: ${SCENARIOS.filter(want).join(', ')}; ${cores} cores, load average ${os.loadavg()[0].toFixed(2)}; ${pinningNote}`);

  const results = {};
  const main = ['user_me', 'user_list', 'refresh', 'login', 'user_me_under_login', 'groups', 'hostile_input', 'mfa_login', 'metrics_cost', 'audit_cost'].some(want);
  if (main) {
    await lib.createDatabase(ctx.dbName);
    if (want('user_me') || want('user_list')) {
      ctx.floor = await startFloor({
        users: CFG.users,
        cpu: pinning ? CFG.serverCpu : undefined,
        pgCpu: pinning ? CFG.loadCpu : undefined,
        nodeArgs: (process.env.BENCH_FLOOR_NODE_ARGS || '').split(' ').filter(Boolean),
      });
      ctx.floorTokens = [...ctx.floor.tokens.admin_tokens, ...ctx.floor.tokens.tokens];
      console.log(`floor: ${ctx.floor.source} (sha256 ${ctx.floor.sha256.slice(0, 16)}…) run as it is, ${CFG.users} users seeded in its own database`);
    }

    // First run of the service: cheap hashes, so that set-up is quick; pinned like the floor.
    await startService(ctx, CFG.setupBcryptCost, { pinned: pinning });
    ctx.adminJwt = await login(ctx.base, ctx.adminEmail);

    // The floor's users on the service too: the same names and emails; user 1 an admin who has set
    // a password (it lists users), the others with a login token each (confined to the forced
    // password change, which allows GET /user/me).
    if (want('user_me') || want('user_list') || want('user_me_under_login') || want('groups')) {
      const t0 = Date.now();
      ctx.users = await mapLimit(range(CFG.users), SETUP_CONCURRENCY, async (i) => {
        const options = { name: floorName(i + 1), email: `user${i + 1}@floor.test` };
        if (i === 0) return lib.createActiveUser(ctx.base, ctx.adminJwt, { ...options, isAdmin: true });
        const u = await lib.createUser(ctx.base, ctx.adminJwt, options);
        u.jwt = await login(ctx.base, u.email);
        return u;
      });
      ctx.listAdmin = ctx.users[0];
      ctx.tokens = ctx.users.map((u) => u.jwt);
      console.log(`service: ${ctx.users.length} users made through the API in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    // Users for the login scenarios, made now while hashing is cheap; their passwords are re-set
    // at the real cost once the service runs at it.
    if (want('login') || want('user_me_under_login')) {
      ctx.loginUsers = await mapLimit(range(CFG.loginUsers), 8, (i) => lib.createActiveUser(ctx.base, ctx.adminJwt, { name: `login${i}` }));
    }

    // The floor vacuums its seed at start; the same for the service's tables, so that neither
    // reads row versions that the set-up's updates (every login stamps its user) left behind.
    const vacuum = lib.adminClient(ctx.dbName);
    await vacuum.connect();
    await vacuum.query('vacuum analyze');
    await vacuum.end();

    ctx.variants = want('user_me') || want('user_list') ? await startVariants(ctx) : [];
    if (want('user_me')) results.user_me = await scenarioUserMe(ctx);
    if (want('user_list')) results.user_list = await scenarioUserList(ctx);
    for (const v of ctx.variants) await lib.stopChild(v.child);
    if (ctx.floor) await lib.stopChild(ctx.floor.child); // done with it
    if (want('refresh')) results.refresh = await scenarioRefresh(ctx);
    if (want('groups')) results.groups = await scenarioGroups(ctx, results);
    if (want('hostile_input')) {
      // The user_me users' tokens when they were made; else a few users of its own.
      const tokens = ctx.tokens ?? (await mapLimit(range(20), 8, (i) => lib.createActiveUser(ctx.base, ctx.adminJwt, { name: `hostile${i}` }))).map((u) => u.jwt);
      results.hostile_input = await hostileInput.scenario(ctx, tokens);
    }
    if (want('mfa_login')) results.mfa_login = await mfaLogin.scenario(ctx);
    if (want('metrics_cost')) results.metrics_cost = await scenarioMetricsCost(ctx, pinning);
    if (want('audit_cost')) results.audit_cost = await scenarioAuditCost(ctx, pinning);

    if (want('login') || want('user_me_under_login')) {
      // Second run of the service, at the configured cost and on every core (the bound is the
      // machine's): the login users' passwords get hashes of that cost through the API (the
      // current one checked at the old, cheap cost).
      await lib.stopChild(ctx.serviceChild);
      if (pinning) lib.pin(process.pid, lib.allCpus(), { allThreads: true });
      await startService(ctx, CFG.bcryptCost, { pinned: false });
      const t0 = Date.now();
      await mapLimit(ctx.loginUsers, CFG.threadPoolSize, (u) =>
        expectStatus(204, http(ctx.base, 'POST', '/user/me/password?clear_tokens=none', { token: u.jwt, body: { current_password: PASSWORD, password: PASSWORD } }), `re-hash ${u.email}`),
      );
      console.log(`\nservice restarted at bcrypt cost ${CFG.bcryptCost}, not pinned; ${ctx.loginUsers.length} passwords re-hashed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      if (want('login')) results.login = await scenarioLogin(ctx);
      if (want('user_me_under_login')) results.user_me_under_login = await scenarioUserMeUnderLogin(ctx, results);
      if (pinning) lib.pin(process.pid, CFG.loadCpu, { allThreads: true });
    }
    await lib.stopChild(ctx.serviceChild);
    await lib.dropDatabase(ctx.dbName);
  }

  if (want('list_at_scale')) {
    results.list_at_scale = await listAtScale.scenario({
      cfg: CFG.scale,
      secret: ctx.secret,
      mfaKey: ctx.mfaKey,
      auditKey: ctx.auditKey,
      serverCpu: pinning ? CFG.serverCpu : undefined,
      pgCpu: pinning ? CFG.loadCpu : undefined,
      serviceNodeArgs: ctx.serviceNodeArgs,
    });
  }

  if (want('console_load')) results.console_load = await consoleLoad.scenario();
  if (want('db_cost')) results.db_cost = await dbCost.scenario();

  if (want('mail_throughput')) {
    results.mail_throughput = await mailThroughput.scenario({
      secret: ctx.secret,
      mfaKey: ctx.mfaKey,
      auditKey: ctx.auditKey,
      serverCpu: pinning ? CFG.serverCpu : undefined,
      serviceNodeArgs: ctx.serviceNodeArgs,
    });
  }
  if (want('embedded_memory')) results.embedded_memory = await embeddedMemory.scenario({ dbName: `acct_bench_mem_${process.pid}` });
  if (want('webhook_throughput') || want('webhook_overhead')) {
    const hooks = { secret: ctx.secret, mfaKey: ctx.mfaKey, auditKey: ctx.auditKey, serviceNodeArgs: ctx.serviceNodeArgs, serverCpu: pinning ? CFG.serverCpu : undefined, pgCpu: pinning ? CFG.loadCpu : undefined };
    Object.assign(results, await webhooks.scenario(hooks, { throughput: want('webhook_throughput'), overhead: want('webhook_overhead') }));
  }

  const totalSeconds = round2((Date.now() - started) / 1000);
  console.log(`\n== summary (${totalSeconds} s)`);
  const summary = [['scenario', 'figure', 'target', '']];
  const r = results;
  const cpuFigure = (x) => `CPU/req ${x.service.cpuUsPerRequest} vs ${x.floor.cpuUsPerRequest} µs, PG ${x.service.pgCpuUsPerRequest} vs ${x.floor.pgCpuUsPerRequest} µs`;
  if (r.user_me) {
    summary.push(['user_me', `${r.user_me.ratios.throughput}x floor req/s (${r.user_me.service.rps} vs ${r.user_me.floor.rps})`, `>= ${TARGETS.user_me.throughputRatioMin}x`, verdict(r.user_me.pass.throughput)]);
    summary.push(['user_me', `${r.user_me.ratios.p99}x floor p99 (${r.user_me.service.p99Ms} vs ${r.user_me.floor.p99Ms} ms)`, `<= ${TARGETS.user_me.p99RatioMax}x`, verdict(r.user_me.pass.p99)]);
    summary.push(['user_me', cpuFigure(r.user_me), '', 'info']);
  }
  if (r.user_list) {
    summary.push(['user_list', `${r.user_list.ratios.throughput}x floor req/s (${r.user_list.service.rps} vs ${r.user_list.floor.rps})`, `>= ${TARGETS.user_list.throughputRatioMin}x`, verdict(r.user_list.pass.throughput)]);
    summary.push(['user_list', cpuFigure(r.user_list), '', 'info']);
  }
  if (r.refresh) {
    summary.push(['refresh', `${r.refresh.refreshesPerServiceCore}/s per service core (${r.refresh.rps}/s)`, `>= ${TARGETS.refresh.rpsPerCoreMin}`, verdict(r.refresh.pass.perServiceCore)]);
    summary.push(['refresh', `${r.refresh.refreshesPerMachineCore}/s per machine core`, `>= ${TARGETS.refresh.rpsPerCoreMin}`, verdict(r.refresh.pass.perMachineCore)]);
  }
  if (r.login) {
    summary.push(['login', `${r.login.rps}/s = ${r.login.ratioToBound}x bound ${r.login.boundLoginsPerSecond}/s`, `>= ${TARGETS.login.boundRatioMin}x`, verdict(r.login.pass.bound)]);
    summary.push(['login', `hash = ${r.login.hashCpuShareOfLogin}x of a login's CPU`, `>= ${TARGETS.login.boundRatioMin}x`, verdict(r.login.pass.cpu)]);
  }
  if (r.user_me_under_login) {
    const u = r.user_me_under_login;
    if (u.ratioToUserMeP99 !== null) summary.push(['user_me_under_login', `p99 ${u.underLogins.p99Ms} ms = ${u.ratioToUserMeP99}x user_me p99`, `<= ${TARGETS.user_me_under_login.p99RatioMax}x`, verdict(u.pass.p99VsUserMe)]);
    summary.push(['user_me_under_login', `p99 ${u.underLogins.p99Ms} ms = ${u.ratioToIdleLightP99}x same load idle`, `<= ${TARGETS.user_me_under_login.p99RatioMax}x`, verdict(u.pass.p99VsIdleLight)]);
  }
  if (r.groups) summary.push(['groups', `${r.groups.rps} req/s = ${r.groups.ratioToUserMe}x GET /user/me`, 'none', 'info']);
  if (r.metrics_cost) {
    const m = r.metrics_cost;
    summary.push(['metrics_cost', `GET /user/me: ${m.cpuRatio}x CPU/req with the metrics (${m.on.cpuUsPerRequest} vs ${m.off.cpuUsPerRequest} µs)`, `<= ${TARGETS.metrics_cost.cpuRatioMax}x`, verdict(m.pass)]);
  }
  if (r.audit_cost) {
    for (const [route, x] of Object.entries(r.audit_cost.routes)) {
      summary.push(['audit_cost', `${route}: ${x.cpuRatio}x CPU/req with the audit log (${x.on.totalCpuUs} vs ${x.off.totalCpuUs} µs, service + PG)`, `<= ${TARGETS.audit_cost.cpuRatioMax}x`, verdict(x.pass)]);
    }
  }
  if (r.hostile_input) summary.push(...hostileInput.summaryRows(r.hostile_input));
  if (r.mfa_login) summary.push(...mfaLogin.summaryRows(r.mfa_login));
  if (r.list_at_scale) summary.push(...listAtScale.summaryRows(r.list_at_scale));
  if (r.console_load) summary.push(...consoleLoad.summaryRows(r.console_load));
  if (r.mail_throughput) summary.push(...mailThroughput.summaryRows(r.mail_throughput));
  if (r.db_cost) summary.push(...dbCost.summaryRows(r.db_cost));
  if (r.embedded_memory) summary.push(...embeddedMemory.summaryRows(r.embedded_memory));
  summary.push(...webhooks.summaryRows(r));
  table(summary);

  const report = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cores,
    loadAverage1m: round2(os.loadavg()[0]), // other work on the machine skews the figures
    totalSeconds,
    pinning: pinningNote,
    floor: ctx.floor ? { source: ctx.floor.source, sha256: ctx.floor.sha256 } : undefined,
    config: { ...CFG, adminUrl: undefined, scenarios: SCENARIOS.filter(want), tokens: ctx.tokens?.length ?? 0 },
    targets: TARGETS,
    scenarios: results,
  };
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results/latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log('\nwritten: bench/results/latest.json');
}

if (require.main === module) {
  // A hard bound on the whole run, whatever hangs.
  const runSeconds = CFG.warmupSeconds + CFG.seconds;
  const budgetMs =
    (300 +
      (CFG.scenarios.has('user_me') ? (CFG.rounds + 1) * (2 + CFG.variants.length) * (2 * runSeconds + 15) : 0) +
      (CFG.scenarios.has('user_list') ? (CFG.rounds + 1) * (2 + CFG.variants.length) * (2 * runSeconds + 15) : 0) +
      (CFG.scenarios.has('refresh') ? runSeconds + 60 : 0) +
      (CFG.scenarios.has('login') ? runSeconds + 60 : 0) +
      (CFG.scenarios.has('user_me_under_login') ? 2 * runSeconds + 60 : 0) +
      (CFG.scenarios.has('groups') ? 2 * runSeconds + 180 : 0) +
      (CFG.scenarios.has('metrics_cost') ? (CFG.rounds + 1) * 2 * (runSeconds + 15) + 120 : 0) +
      (CFG.scenarios.has('audit_cost') ? (CFG.auditRounds + 1) * 2 * (2 * runSeconds + 30) + 120 : 0) +
      (CFG.scenarios.has('hostile_input') ? 2 * runSeconds + 120 : 0) +
      (CFG.scenarios.has('mfa_login') ? mfaLogin.budgetSeconds() : 0) +
      (CFG.scenarios.has('mail_throughput') ? mailThroughput.budgetSeconds() : 0) +
      (CFG.scenarios.has('db_cost') ? dbCost.budgetSeconds() : 0) +
      (CFG.scenarios.has('list_at_scale') ? listAtScale.budgetSeconds(CFG.scale) : 0) +
      (CFG.scenarios.has('embedded_memory') ? embeddedMemory.budgetSeconds() : 0) +
      (CFG.scenarios.has('webhook_throughput') || CFG.scenarios.has('webhook_overhead') ? webhooks.budgetSeconds() : 0)) *
    1000;
  const watchdog = setTimeout(() => fail(new Error(`benchmark still running after ${budgetMs / 1000} s`)), budgetMs);

  let interrupted = false;

  async function fail(err) {
    if (interrupted) return; // the signal handler cleans up and exits
    console.error(`bench failed: ${err.stack ?? err}`);
    await lib.cleanup();
    process.exit(1);
  }

  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
    process.on(signal, () => {
      interrupted = true;
      console.error(`${signal}: stopping`);
      lib.cleanup().then(() => process.exit(code));
    });
  }
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);

  main()
    .then(async () => {
      clearTimeout(watchdog);
      await lib.cleanup();
      process.exit(0);
    })
    .catch(fail);
}
