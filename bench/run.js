'use strict';
/**
 * `npm run bench`: load scenarios against the real service (dist/src/server.js) on a fresh
 * Postgres database, on loopback only. See bench/README.md for what each one measures.
 *
 *   user_me              GET /user/me with many tokens, service vs a minimal baseline (bench/baseline.js)
 *   refresh              POST /refresh_token, each connection chaining the token it gets back
 *   login                POST /login at the configured bcrypt cost, against the bcrypt bound
 *   user_me_under_login  GET /user/me p99 at a light fixed rate while logins saturate the hash pool
 *   groups               GET /user_group/:g (1000 members, 50 granting groups) as a non-admin caller
 *
 * Each scenario prints a table and PASS/FAIL against its target; everything goes to
 * bench/results/latest.json. A missed target is reported, not an error; anything that fails to
 * run (including a single response other than 200) exits non-zero.
 *
 * The service runs twice on the same database: first at BCRYPT_COST=4 (set-up and the
 * scenarios that hash nothing), then restarted at BENCH_BCRYPT_COST for login and
 * user_me_under_login. Both runs have THROTTLE_IP_PER_MINUTE=0.
 *
 * Env: BENCH_DATABASE_URL (admin connection, default postgres://postgres@127.0.0.1:5432/postgres),
 * BENCH_SCENARIOS (comma-separated, all by default), BENCH_SECONDS (measured seconds per run, 10),
 * BENCH_WARMUP_SECONDS (3), BENCH_CONNECTIONS (50), BENCH_USERS (distinct users and tokens, 200),
 * BENCH_ROUNDS (user_me runs per server, alternating, 4), BENCH_BCRYPT_COST (12),
 * BENCH_REFRESH_CONNECTIONS (= BENCH_CONNECTIONS), BENCH_LOGIN_CONNECTIONS (8),
 * BENCH_LOGIN_USERS (20), BENCH_LIGHT_CONNECTIONS (4), BENCH_LIGHT_RATE (requests/s, 100),
 * BENCH_HASH_SAMPLES (8), BENCH_GROUP_MEMBERS (1000), BENCH_GRANTING_GROUPS (50),
 * BENCH_GROUP_CALLERS (10), BENCH_SERVICE_NODE_ARGS (extra node flags for the service, e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof`), BENCH_BASELINE_NODE_ARGS (the same for the baseline).
 */
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const autocannon = require('autocannon');
const bcrypt = require('bcrypt');
const { Client } = require('pg');

const ROOT = path.resolve(__dirname, '..');
const HOST = '127.0.0.1';
const SCENARIOS = ['user_me', 'refresh', 'login', 'user_me_under_login', 'groups'];
const num = (name, fallback) => {
  const v = Number(process.env[name] || fallback);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const int = (name, fallback, min = 1, max = Infinity) => {
  const v = num(name, fallback);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer from ${min} to ${max}`);
  return v;
};
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
  users: int('BENCH_USERS', 200),
  rounds: int('BENCH_ROUNDS', 4),
  poolSize: 10, // the service's DATABASE_POOL_SIZE default
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
  threadPoolSize: int('UV_THREADPOOL_SIZE', 4), // libuv's default; the service inherits this environment
};
const TARGETS = {
  user_me: { throughputRatioMin: 0.9, p99RatioMax: 1.2 },
  refresh: { rpsPerCoreMin: 1200 }, // ten times Keycloak's published 120 refreshes/s per vCPU
  login: { boundRatioMin: 0.9 },
  user_me_under_login: { p99RatioMax: 2 },
  groups: {}, // no target: reported beside GET /user/me's
};
const PASSWORD = 'bench password 1';
const SETUP_CONCURRENCY = 16;

// ---- resources, released by cleanup() whatever happens ----
const children = [];
const runningLoads = new Set();
let admin; // kept open: it finds the service's Postgres backends to read their CPU
let dbName;
let tmpDir;
let cleaning;

function cleanup() {
  cleaning ??= (async () => {
    for (const run of runningLoads) run.stop();
    await Promise.all(children.map(stopChild));
    if (admin) await admin.end().catch(() => {});
    if (dbName) {
      const client = adminClient();
      try {
        await client.connect();
        await client.query(`drop database if exists "${dbName}" with (force)`);
      } catch (err) {
        console.error(`could not drop database ${dbName}: ${err.message}`);
      } finally {
        await client.end().catch(() => {});
      }
    }
    if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  })();
  return cleaning;
}

// ---- helpers ----
const adminClient = () => new Client({ connectionString: CFG.adminUrl, connectionTimeoutMillis: 10_000, query_timeout: 30_000 });
const round2 = (v) => Math.round(v * 100) / 100;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function assertLoopback(url) {
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(host)) throw new Error(`BENCH_DATABASE_URL must point at 127.0.0.1, not ${host}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** A child Node process; its output is kept (last 64 KiB) and shown if it fails. */
function startChild(name, script, env, nodeArgs = []) {
  const proc = spawn(process.execPath, [...nodeArgs, script], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk).slice(-65536);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const child = { name, proc, output: () => output, exitCode: undefined, stopping: false };
  child.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve((child.exitCode = code ?? signal))));
  children.push(child);
  return child;
}

async function stopChild(child) {
  child.stopping = true;
  if (child.exitCode !== undefined) return;
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), 5000);
  await child.exited;
  clearTimeout(timer);
}

function assertAlive() {
  for (const c of children) {
    if (!c.stopping && c.exitCode !== undefined) throw new Error(`${c.name} exited (${c.exitCode}):\n${c.output()}`);
  }
}

async function http(base, method, urlPath, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body) headers['content-type'] = 'application/json';
  const res = await fetch(base + urlPath, {
    method,
    headers,
    body: body && JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function expectStatus(status, promise, what) {
  const res = await promise;
  const ok = Array.isArray(status) ? status.includes(res.status) : res.status === status;
  if (!ok) throw new Error(`${what}: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

async function waitReady(child, base) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    assertAlive();
    try {
      if ((await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(1000) })).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${child.name} not ready after 60 s:\n${child.output()}`);
    await sleep(100);
  }
}

/** Runs fn over items, at most `limit` at a time. */
async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return out;
}
const range = (n) => Array.from({ length: n }, (_, i) => i);

/** CPU seconds a process has used so far, all its threads (Linux /proc; undefined elsewhere). */
function cpuSeconds(pid) {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in USER_HZ (100 on Linux)
  } catch {
    return undefined;
  }
}

/** The Postgres backends serving one of our servers (told apart by application_name). */
async function backendPids(appName) {
  const { rows } = await admin.query('select pid from pg_stat_activity where datname = $1 and application_name = $2', [dbName, appName]);
  return rows.map((r) => r.pid);
}

/** CPU seconds so far of a server (all threads, and its main thread alone) and of its Postgres backends. */
function cpuSnapshot(target, pgPids) {
  const pg = pgPids.map(cpuSeconds);
  return {
    cpu: cpuSeconds(target.pid),
    mainCpu: cpuSeconds(`${target.pid}/task/${target.pid}`), // the event loop; the rest is libuv's pool, GC, JIT
    pgCpu: pg.every((v) => v !== undefined) ? pg.reduce((a, b) => a + b, 0) : undefined,
  };
}

/** Nearest-rank percentile of sorted values. */
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const p99Of = (latencies) => percentile(Float64Array.from(latencies).sort(), 99);

/**
 * Gives each autocannon connection a slot number (0, 1, ...) that its requests' setupRequest and
 * onResponse read from their context. autocannon 9 resets a connection's context to
 * `initialContext` after every pass over `requests`, so the slot is put there, per connection, in
 * setupClient; per-connection state lives in the caller's arrays, indexed by slot.
 */
function perConnectionSlot() {
  let next = 0;
  return (client) => {
    const it = client.requestIterator;
    if (!it || typeof it.resetContext !== 'function') throw new Error('autocannon internals changed: no client.requestIterator');
    it.initialContext = { slot: next++ };
    it.resetContext();
    it.rebuildRequest(); // the first request was built before this connection had a slot
  };
}

/**
 * One autocannon run; every response must be a 200. Latencies are kept at full precision
 * (autocannon's own histogram is in whole ms). The server's CPU and its Postgres backends' CPU
 * are read from /proc around the measured part. With `warmupSeconds` the warm-up is the first
 * part of the same run and only what follows it is measured: no requests abandoned at the end of
 * a separate warm-up run (slow ones, like logins, still being served) are charged to it.
 */
async function load(target, { requests, seconds, warmupSeconds = 0, connections = CFG.connections, overallRate, setupClient }) {
  const latencies = [];
  const pgPids = await backendPids(target.appName);
  const run = autocannon({ url: target.base, connections, duration: warmupSeconds + seconds, requests, timeout: 10, overallRate, setupClient });
  runningLoads.add(run);
  let measuring = false;
  let measured = 0;
  run.on('response', (_client, status, _bytes, ms) => {
    if (!measuring) return;
    measured++;
    if (status === 200) latencies.push(ms);
  });
  let before;
  let startedAt;
  const mark = () => {
    before = cpuSnapshot(target, pgPids);
    startedAt = process.hrtime.bigint();
    measuring = true;
  };
  const warmup = warmupSeconds > 0 ? setTimeout(mark, warmupSeconds * 1000) : mark();
  let result;
  try {
    result = await run;
  } finally {
    clearTimeout(warmup);
    runningLoads.delete(run);
  }
  const after = cpuSnapshot(target, pgPids);
  const elapsed = Number(process.hrtime.bigint() - startedAt) / 1e9;
  assertAlive();
  const other = Object.entries(result.statusCodeStats).filter(([code]) => code !== '200');
  const bad = other.reduce((n, [, s]) => n + s.count, 0) + result.errors + result.timeouts + result.resets;
  if (bad > 0 || measured === 0) {
    throw new Error(
      `${target.base} ${requests[0].method} ${requests[0].path}: ${bad} bad out of ${result.requests.total} responses ` +
        `(status ${JSON.stringify(result.statusCodeStats)}, ${result.errors} errors, ${result.timeouts} timeouts, ${result.resets} resets)`,
    );
  }
  return {
    requests: measured,
    seconds: warmupSeconds > 0 ? elapsed : result.duration,
    cpu: after.cpu - before.cpu,
    mainCpu: after.mainCpu - before.mainCpu,
    pgCpu: after.pgCpu === undefined || before.pgCpu === undefined ? undefined : after.pgCpu - before.pgCpu,
    latencies,
  };
}

function summarize(runs) {
  const requests = runs.reduce((n, r) => n + r.requests, 0);
  const seconds = runs.reduce((n, r) => n + r.seconds, 0);
  const cpu = runs.reduce((n, r) => n + r.cpu, 0);
  const mainCpu = runs.reduce((n, r) => n + r.mainCpu, 0);
  const pgCpu = runs.some((r) => r.pgCpu === undefined) ? undefined : runs.reduce((n, r) => n + r.pgCpu, 0);
  const sorted = Float64Array.from(runs.flatMap((r) => r.latencies)).sort();
  return {
    requests,
    seconds: round2(seconds),
    rps: Math.round((requests / seconds) * 10) / 10,
    rpsPerRun: runs.map((r) => Math.round((r.requests / r.seconds) * 10) / 10),
    cpuUsPerRequest: Math.round((cpu / requests) * 1e6), // the server process's own CPU, all threads
    cpuCores: round2(cpu / seconds),
    mainThreadCpuUsPerRequest: Math.round((mainCpu / requests) * 1e6), // of which the event loop's thread
    pgCpuUsPerRequest: pgCpu === undefined ? null : Math.round((pgCpu / requests) * 1e6), // its Postgres backends
    pgCpuCores: pgCpu === undefined ? null : round2(pgCpu / seconds),
    p50Ms: round2(percentile(sorted, 50)),
    p99Ms: round2(percentile(sorted, 99)),
    p99MsPerRun: runs.map((r) => round2(p99Of(r.latencies))),
  };
}

/** Prints rows of cells as a table: first column left-aligned, the others right-aligned. */
function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? '').length)) + 2);
  for (const r of rows) console.log(r.map((c, i) => (i === 0 ? String(c ?? '').padEnd(widths[i]) : String(c ?? '').padStart(widths[i]))).join(''));
}
const verdict = (ok) => (ok ? 'PASS' : 'FAIL');
const heading = (name, what) => console.log(`\n== ${name}: ${what}`);

// ---- users ----

/** A user created by the admin (with a forced password change), as its first login gives it. */
async function createUser(ctx, name, { password = PASSWORD } = {}) {
  const email = `${name}@example.com`;
  const created = await expectStatus(
    201,
    http(ctx.base, 'POST', '/user?send_mail=0', { token: ctx.adminJwt, body: { name, email, ...(password ? { password } : {}) } }),
    `create user ${name}`,
  );
  return { id: created.id, email, name };
}

const login = async (base, email, password = PASSWORD) =>
  (await expectStatus(200, http(base, 'POST', '/login', { body: { email, password } }), `login ${email}`)).jwt_token;

/**
 * A user free to use every route: created, logged in (a token confined to the forced password
 * change), password changed (keeping tokens), logged in again.
 */
async function createActiveUser(ctx, name) {
  const user = await createUser(ctx, name);
  const confined = await login(ctx.base, user.email);
  await expectStatus(204, http(ctx.base, 'POST', '/user/me/password?clear_tokens=none', { token: confined, body: { password: PASSWORD } }), `password of ${name}`);
  user.jwt = await login(ctx.base, user.email);
  return user;
}

// ---- scenario: GET /user/me, service vs baseline ----
async function scenarioUserMe(ctx) {
  heading('user_me', 'GET /user/me, service vs baseline');
  const { tokens } = ctx;
  // Both servers answer every token with its own user (and the service's first-use writes are done).
  for (const base of [ctx.service.base, ctx.baseline.base]) {
    await mapLimit(ctx.users, 8, async (u) => {
      const me = await expectStatus(200, http(base, 'GET', '/user/me', { token: u.jwt }), `GET ${base}/user/me`);
      if (me.id !== u.id) throw new Error(`GET ${base}/user/me answered user ${me.id}, expected ${u.id}`);
    });
  }
  console.log(
    `${tokens.length} tokens; ${CFG.connections} connections; ${CFG.rounds} round(s) of ` +
      `${CFG.warmupSeconds} s warm-up + ${CFG.seconds} s measured per server, alternating`,
  );
  const requests = userMeRequests(tokens);
  const runs = { service: [], baseline: [] };
  for (let round = 0; round < CFG.rounds; round++) {
    const order = round % 2 === 0 ? ['service', 'baseline'] : ['baseline', 'service'];
    for (const name of order) {
      await load(ctx[name], { requests, seconds: CFG.warmupSeconds });
      const run = await load(ctx[name], { requests, seconds: CFG.seconds });
      runs[name].push(run);
      console.log(`  round ${round + 1} ${name.padEnd(8)} ${Math.round(run.requests / run.seconds)} req/s, p99 ${p99Of(run.latencies).toFixed(2)} ms`);
    }
  }
  const s = summarize(runs.service);
  const b = summarize(runs.baseline);
  const t = TARGETS.user_me;
  const ratios = { throughput: Math.round((s.rps / b.rps) * 1000) / 1000, p99: Math.round((s.p99Ms / b.p99Ms) * 1000) / 1000 };
  const pass = { throughput: ratios.throughput >= t.throughputRatioMin, p99: ratios.p99 <= t.p99RatioMax };
  console.log();
  table([
    ['', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'main µs/req', 'CPU cores', 'PG µs/req'],
    ['service', s.rps, s.p50Ms, s.p99Ms, s.cpuUsPerRequest, s.mainThreadCpuUsPerRequest, s.cpuCores, s.pgCpuUsPerRequest],
    ['baseline', b.rps, b.p50Ms, b.p99Ms, b.cpuUsPerRequest, b.mainThreadCpuUsPerRequest, b.cpuCores, b.pgCpuUsPerRequest],
  ]);
  console.log();
  console.log(`throughput  service/baseline ${ratios.throughput.toFixed(3)}x  (target >= ${t.throughputRatioMin}x)  ${verdict(pass.throughput)}`);
  console.log(`p99         service/baseline ${ratios.p99.toFixed(3)}x  (target <= ${t.p99RatioMax}x)  ${verdict(pass.p99)}`);
  return { service: s, baseline: b, ratios, targets: t, pass };
}

const userMeRequests = (tokens) => tokens.map((t) => ({ method: 'GET', path: '/user/me', headers: { authorization: `Bearer ${t}` } }));

// ---- scenario: POST /refresh_token, a chain of tokens per connection ----
async function scenarioRefresh(ctx) {
  heading('refresh', 'POST /refresh_token, each connection presenting the token its last refresh returned');
  const n = CFG.refreshConnections;
  const users = await mapLimit(range(n), SETUP_CONCURRENCY, (i) => createActiveUser(ctx, `refresh${i}`));

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

  console.log(`${n} connections, one chain of tokens each; ${CFG.warmupSeconds} s warm-up + ${CFG.seconds} s measured`);
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
  table([
    ['', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'main µs/req', 'CPU cores', 'PG µs/req', 'PG cores'],
    ['refresh', s.rps, s.p50Ms, s.p99Ms, s.cpuUsPerRequest, s.mainThreadCpuUsPerRequest, s.cpuCores, s.pgCpuUsPerRequest, s.pgCpuCores],
  ]);
  console.log();
  table([
    ['refreshes/s per core', 'value', 'target', ''],
    ['per service CPU core (1e6 / service CPU µs per request)', perServiceCore, `>= ${t.rpsPerCoreMin}`, verdict(pass.perServiceCore)],
    [`per machine core (req/s / ${cores} cores, shared with Postgres and the load generator)`, perMachineCore, `>= ${t.rpsPerCoreMin}`, verdict(pass.perMachineCore)],
    ['per core of service + its Postgres backends (info)', perServiceAndPgCore, '', ''],
  ]);
  return { connections: n, ...s, cores, refreshesPerServiceCore: perServiceCore, refreshesPerMachineCore: perMachineCore, refreshesPerServiceAndPgCore: perServiceAndPgCore, targets: t, pass };
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
  console.log(`${CFG.loginConnections} connections over ${loginUsers.length} users; ${CFG.warmupSeconds} s warm-up + ${CFG.seconds} s measured`);
  const s = summarize([
    await load(ctx.service, { requests, warmupSeconds: CFG.warmupSeconds, seconds: CFG.seconds, connections: CFG.loginConnections, setupClient: perConnectionSlot() }),
  ]);
  const t = TARGETS.login;
  const ratio = Math.round((s.rps / bound) * 1000) / 1000;
  const ratioToPool = Math.round((s.rps / b.poolComparesPerSecond) * 1000) / 1000;
  // The same bound in CPU: the share of a login's CPU that is its hash. Other work on the
  // machine slows wall-clock figures; it hardly changes CPU per login.
  const cpuRatio = Math.round(((b.hashCpuMs * 1000) / s.cpuUsPerRequest) * 1000) / 1000;
  const pass = { bound: ratio >= t.boundRatioMin, cpu: cpuRatio >= t.boundRatioMin };
  console.log();
  table([
    ['', 'logins/s', 'p50 ms', 'p99 ms', 'CPU µs/login', 'main µs/login', 'CPU cores', 'PG µs/login'],
    ['login', s.rps, s.p50Ms, s.p99Ms, s.cpuUsPerRequest, s.mainThreadCpuUsPerRequest, s.cpuCores, s.pgCpuUsPerRequest],
  ]);
  console.log();
  table([
    ['', 'value', 'target', ''],
    [`logins/s / bcrypt bound (${parallelism} cores / ${b.hashMs} ms = ${bound}/s)`, `${ratio.toFixed(3)}x`, `>= ${t.boundRatioMin}x`, verdict(pass.bound)],
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
    ratioToBound: ratio,
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
      `${CFG.warmupSeconds} s warm-up + ${CFG.seconds} s measured, idle then under logins`,
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
  const ratioToScenario0 = scenario0 ? Math.round((under.p99Ms / scenario0.p99Ms) * 1000) / 1000 : null;
  const ratioToIdleLight = Math.round((under.p99Ms / idle.p99Ms) * 1000) / 1000;
  const pass = {
    p99VsUserMe: ratioToScenario0 === null ? null : ratioToScenario0 <= t.p99RatioMax,
    p99VsIdleLight: ratioToIdleLight <= t.p99RatioMax,
  };
  console.log();
  table([
    ['GET /user/me', 'req/s', 'p50 ms', 'p99 ms', 'CPU cores'],
    ['user_me scenario (50 conn., saturating)', scenario0?.rps ?? 'not run', scenario0?.p50Ms, scenario0?.p99Ms, scenario0?.cpuCores],
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
    mapLimit(range(CFG.groupMembers), SETUP_CONCURRENCY, (i) => createUser(ctx, `member${String(i).padStart(5, '0')}`, { password: null })),
    mapLimit(range(CFG.groupCallers), 4, (i) => createActiveUser(ctx, `caller${i}`)),
    call('POST', '/user_group', { name: 'bench-target', description: 'read through granting groups' }, 201, 'create the target group'),
    createActiveUser(ctx, 'outsider'),
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
  console.log(`${callers.length} callers; ${CFG.connections} connections; ${CFG.warmupSeconds} s warm-up + ${CFG.seconds} s measured`);
  const s = summarize([await load(ctx.service, { requests, warmupSeconds: CFG.warmupSeconds, seconds: CFG.seconds })]);

  // GET /user/me in the same run: the user_me scenario's service figures, or a run of its own.
  let me = results.user_me?.service;
  let meSource = 'user_me scenario';
  if (!me) {
    meSource = 'own reference run';
    const meRequests = userMeRequests(ctx.tokens);
    me = summarize([await load(ctx.service, { requests: meRequests, warmupSeconds: CFG.warmupSeconds, seconds: CFG.seconds })]);
  }
  const ratio = Math.round((s.rps / me.rps) * 1000) / 1000;
  const cpuRatio = Math.round((s.cpuUsPerRequest / me.cpuUsPerRequest) * 1000) / 1000;
  console.log();
  table([
    ['', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'main µs/req', 'CPU cores', 'PG µs/req'],
    ['GET /user_group/:g', s.rps, s.p50Ms, s.p99Ms, s.cpuUsPerRequest, s.mainThreadCpuUsPerRequest, s.cpuCores, s.pgCpuUsPerRequest],
    [`GET /user/me (${meSource})`, me.rps, me.p50Ms, me.p99Ms, me.cpuUsPerRequest, me.mainThreadCpuUsPerRequest, me.cpuCores, me.pgCpuUsPerRequest],
  ]);
  console.log();
  console.log(`group read / user/me: ${ratio.toFixed(3)}x the requests/s, ${cpuRatio.toFixed(3)}x the service CPU per request (no target: reported)`);
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
    ratioToUserMe: ratio,
    cpuRatioToUserMe: cpuRatio,
    targets: TARGETS.groups,
    pass: {},
  };
}

// ---- the benchmark ----

async function startService(ctx, bcryptCost) {
  const port = await freePort();
  const dbUrl = new URL(ctx.dbUrl);
  dbUrl.searchParams.set('application_name', 'bench-service');
  const service = startChild(`service (bcrypt cost ${bcryptCost})`, path.join(ROOT, 'dist/src/server.js'), {
    DATABASE_URL: dbUrl.href,
    PORT: String(port),
    HOST,
    LOG_LEVEL: 'warn',
    BCRYPT_COST: String(bcryptCost),
    THROTTLE_IP_PER_MINUTE: '0',
    JWT_SECRET: ctx.secret,
    ADMIN_EMAIL: ctx.adminEmail,
    ADMIN_PASSWORD: PASSWORD,
    DATA_DIR: path.join(tmpDir, 'data'),
    MAIL_OUTBOX_DIR: path.join(tmpDir, 'outbox'),
    DATABASE_POOL_SIZE: '', // blank: the default, whatever this shell has
    SMTP_URL: '',
    VALIDATE_RESPONSES: '0',
  }, ctx.serviceNodeArgs);
  const base = `http://${HOST}:${port}`;
  await waitReady(service, base); // the service migrates the database before it listens
  ctx.serviceChild = service;
  ctx.service = { base, pid: service.proc.pid, appName: 'bench-service' };
  ctx.base = base;
}

async function main() {
  assertLoopback(CFG.adminUrl);
  const server = path.join(ROOT, 'dist/src/server.js');
  if (!fs.existsSync(server)) throw new Error('dist/src/server.js is missing: run `npm run build` first');
  const want = (s) => CFG.scenarios.has(s);
  const started = Date.now();

  admin = adminClient();
  try {
    await admin.connect();
  } catch (err) {
    admin = undefined;
    throw new Error(
      `cannot reach Postgres at ${CFG.adminUrl} (${err.message}); start it with ` +
        '`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`',
    );
  }
  await admin.query(`create database "acct_bench_${process.pid}"`);
  dbName = `acct_bench_${process.pid}`; // ours to drop from here on
  const dbUrl = new URL(CFG.adminUrl);
  dbUrl.pathname = `/${dbName}`;
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'acct-bench-'));

  const ctx = {
    dbUrl: dbUrl.href,
    secret: crypto.randomBytes(36).toString('base64'), // 48 characters
    adminEmail: 'bench-admin@example.com',
    serviceNodeArgs: (process.env.BENCH_SERVICE_NODE_ARGS || '').split(' ').filter(Boolean),
  };
  console.log(`scenarios: ${SCENARIOS.filter(want).join(', ')}; ${os.cpus().length} cores, load average ${os.loadavg()[0].toFixed(2)}`);

  // First run of the service: cheap hashes, so that set-up is quick.
  await startService(ctx, CFG.setupBcryptCost);
  ctx.adminJwt = await login(ctx.base, ctx.adminEmail);

  if (want('user_me')) {
    const port = await freePort();
    const baseUrl = new URL(ctx.dbUrl);
    baseUrl.searchParams.set('application_name', 'bench-baseline');
    const baseline = startChild('baseline', path.join(__dirname, 'baseline.js'), {
      DATABASE_URL: baseUrl.href,
      PORT: String(port),
      HOST,
      JWT_SECRET: ctx.secret,
      POOL_SIZE: String(CFG.poolSize),
    }, (process.env.BENCH_BASELINE_NODE_ARGS || '').split(' ').filter(Boolean));
    ctx.baseline = { base: `http://${HOST}:${port}`, pid: baseline.proc.pid, appName: 'bench-baseline', child: baseline };
    await waitReady(baseline, ctx.baseline.base);
  }

  // ~200 users, one login token each (confined to the forced password change: GET /user/me is allowed)
  if (want('user_me') || want('user_me_under_login') || want('groups')) {
    ctx.users = await mapLimit(range(CFG.users), 8, async (i) => {
      const u = await createUser(ctx, `bench${i}`);
      u.jwt = await login(ctx.base, u.email);
      return u;
    });
    ctx.tokens = ctx.users.map((u) => u.jwt);
  }
  // Users for the login scenarios, made now while hashing is cheap; their passwords are re-set
  // at the real cost once the service runs at it.
  if (want('login') || want('user_me_under_login')) {
    ctx.loginUsers = await mapLimit(range(CFG.loginUsers), 8, (i) => createActiveUser(ctx, `login${i}`));
  }

  const results = {};
  if (want('user_me')) {
    results.user_me = await scenarioUserMe(ctx);
    await stopChild(ctx.baseline.child); // done with it
  }
  if (want('refresh')) results.refresh = await scenarioRefresh(ctx);
  if (want('groups')) results.groups = await scenarioGroups(ctx, results);

  if (want('login') || want('user_me_under_login')) {
    // Second run of the service, at the configured cost: the login users' passwords get hashes
    // of that cost through the API (the current one checked at the old, cheap cost).
    await stopChild(ctx.serviceChild);
    await startService(ctx, CFG.bcryptCost);
    const t0 = Date.now();
    await mapLimit(ctx.loginUsers, CFG.threadPoolSize, (u) =>
      expectStatus(204, http(ctx.base, 'POST', '/user/me/password?clear_tokens=none', { token: u.jwt, body: { current_password: PASSWORD, password: PASSWORD } }), `re-hash ${u.email}`),
    );
    console.log(`\nservice restarted at bcrypt cost ${CFG.bcryptCost}; ${ctx.loginUsers.length} passwords re-hashed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    if (want('login')) results.login = await scenarioLogin(ctx);
    if (want('user_me_under_login')) results.user_me_under_login = await scenarioUserMeUnderLogin(ctx, results);
  }

  const totalSeconds = round2((Date.now() - started) / 1000);
  console.log(`\n== summary (${totalSeconds} s)`);
  const summary = [['scenario', 'figure', 'target', '']];
  const r = results;
  if (r.user_me) {
    summary.push(['user_me', `${r.user_me.ratios.throughput}x baseline req/s`, `>= ${TARGETS.user_me.throughputRatioMin}x`, verdict(r.user_me.pass.throughput)]);
    summary.push(['user_me', `${r.user_me.ratios.p99}x baseline p99`, `<= ${TARGETS.user_me.p99RatioMax}x`, verdict(r.user_me.pass.p99)]);
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
  table(summary);

  const report = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    loadAverage1m: round2(os.loadavg()[0]), // other work on the machine skews the figures
    totalSeconds,
    config: { ...CFG, adminUrl: undefined, scenarios: SCENARIOS.filter(want), tokens: ctx.tokens?.length ?? 0 },
    targets: TARGETS,
    scenarios: results,
  };
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results/latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log('\nwritten: bench/results/latest.json');
}

// A hard bound on the whole run, whatever hangs.
const runSeconds = CFG.warmupSeconds + CFG.seconds;
const budgetMs =
  (180 +
    (CFG.scenarios.has('user_me') ? CFG.rounds * 2 * (runSeconds + 15) : 0) +
    (CFG.scenarios.has('refresh') ? runSeconds + 60 : 0) +
    (CFG.scenarios.has('login') ? runSeconds + 60 : 0) +
    (CFG.scenarios.has('user_me_under_login') ? 2 * runSeconds + 60 : 0) +
    (CFG.scenarios.has('groups') ? 2 * runSeconds + 180 : 0)) *
  1000;
const watchdog = setTimeout(() => fail(new Error(`benchmark still running after ${budgetMs / 1000} s`)), budgetMs);

let interrupted = false;

async function fail(err) {
  if (interrupted) return; // the signal handler cleans up and exits
  console.error(`bench failed: ${err.stack ?? err}`);
  await cleanup();
  process.exit(1);
}

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.on(signal, () => {
    interrupted = true;
    console.error(`${signal}: stopping`);
    cleanup().then(() => process.exit(code));
  });
}
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

main()
  .then(async () => {
    clearTimeout(watchdog);
    await cleanup();
    process.exit(0);
  })
  .catch(fail);
