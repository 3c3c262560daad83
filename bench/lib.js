'use strict';
/**
 * What the benchmark's scenarios share: child processes (optionally pinned to a core), the
 * databases it creates (all dropped at the end), loads with autocannon, CPU read from /proc,
 * tables. Every resource is registered here as it is made, and cleanup() releases all of them
 * whatever happens.
 */
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const autocannon = require('autocannon');
const { Client } = require('pg');

const ROOT = path.resolve(__dirname, '..');
const HOST = '127.0.0.1';
const PASSWORD = 'bench password 1';

/** A number from the environment (the fallback when unset or blank). */
const num = (name, fallback) => {
  const raw = process.env[name];
  const v = Number(raw === undefined || raw === '' ? fallback : raw);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const int = (name, fallback, min = 1, max = Infinity) => {
  const raw = process.env[name];
  const v = Number(raw === undefined || raw === '' ? fallback : raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer from ${min} to ${max}`);
  return v;
};

// ---- resources, released by cleanup() whatever happens ----
const state = {
  adminUrl: undefined,
  admin: undefined, // kept open: it finds the servers' Postgres backends to read (and pin) them
  children: [],
  loads: new Set(),
  databases: [], // ours to drop
  tmpDirs: [],
  others: new Set(), // anything else to release: functions returning a promise (bench/db-cost.js's cluster)
  cleaning: undefined,
};

function init(adminUrl) {
  assertLoopback(adminUrl);
  state.adminUrl = adminUrl;
}

const adminClient = (database) => {
  const url = new URL(state.adminUrl);
  if (database) url.pathname = `/${database}`;
  return new Client({ connectionString: url.href, connectionTimeoutMillis: 10_000, query_timeout: 30 * 60_000 });
};

async function connectAdmin() {
  const client = adminClient();
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `cannot reach Postgres at ${state.adminUrl} (${err.message}); start it with ` +
        '`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`',
    );
  }
  state.admin = client;
  return client;
}

/** The URL of a database of ours (registered for dropping before it exists), with an application_name. */
function databaseUrl(name, appName) {
  const url = new URL(state.adminUrl);
  url.pathname = `/${name}`;
  if (appName) url.searchParams.set('application_name', appName);
  return url.href;
}

/** Registers a database that someone else (the floor) will create, so that it is dropped at the end. */
function registerDatabase(name) {
  if (!state.databases.includes(name)) state.databases.push(name);
}

async function createDatabase(name) {
  registerDatabase(name);
  await state.admin.query(`create database "${name}"`);
}

async function dropDatabase(name) {
  await state.admin.query(`drop database if exists "${name}" with (force)`);
  state.databases = state.databases.filter((d) => d !== name);
}

function tmpDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  state.tmpDirs.push(dir);
  return dir;
}

function cleanup() {
  state.cleaning ??= (async () => {
    for (const run of state.loads) run.stop();
    await Promise.all(state.children.map(stopChild));
    if (state.admin) await state.admin.end().catch(() => {});
    if (state.databases.length) {
      const client = adminClient();
      try {
        await client.connect();
        for (const name of state.databases) await client.query(`drop database if exists "${name}" with (force)`);
      } catch (err) {
        console.error(`could not drop database(s) ${state.databases.join(', ')}: ${err.message}`);
      } finally {
        await client.end().catch(() => {});
      }
    }
    for (const release of state.others) await release().catch((err) => console.error(`cleanup: ${err.message}`));
    for (const dir of state.tmpDirs) fs.rmSync(dir, { recursive: true, force: true });
  })();
  return state.cleaning;
}

// ---- helpers ----
const round2 = (v) => Math.round(v * 100) / 100;
const round3 = (v) => Math.round(v * 1000) / 1000;
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

// ---- pinning to cores (Linux taskset) ----
const canPin = () => os.cpus().length >= 2 && spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0;

/** Sets the CPU affinity of a running process (all its threads with allThreads). */
function pin(pid, cpus, { allThreads = false } = {}) {
  const r = spawnSync('taskset', [...(allThreads ? ['-a'] : []), '-p', '-c', String(cpus), String(pid)], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`taskset -p -c ${cpus} ${pid} failed`);
}
const allCpus = () => `0-${os.cpus().length - 1}`;

/**
 * A child Node process, started under `taskset -c <cpu>` when `cpu` is given (taskset execs node:
 * same pid, and every thread node starts inherits the affinity). Its output is kept (last
 * 64 KiB) and shown if it fails.
 */
function startChild(name, script, env, { nodeArgs = [], cpu, cwd = ROOT } = {}) {
  const argv = [...nodeArgs, script];
  const proc =
    cpu === undefined
      ? spawn(process.execPath, argv, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('taskset', ['-c', String(cpu), process.execPath, ...argv], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk).slice(-65536);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const child = { name, proc, cpu, output: () => output, exitCode: undefined, stopping: false };
  child.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve((child.exitCode = code ?? signal))));
  state.children.push(child);
  return child;
}

async function stopChild(child) {
  child.stopping = true;
  if (child.exitCode !== undefined) return;
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), 15_000);
  await child.exited;
  clearTimeout(timer);
}

function assertAlive() {
  for (const c of state.children) {
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
    signal: AbortSignal.timeout(120_000),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

async function expectStatus(status, promise, what) {
  const res = await promise;
  const ok = Array.isArray(status) ? status.includes(res.status) : res.status === status;
  if (!ok) throw new Error(`${what}: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Waits until GET base+probe answers `status` (the service's /readyz: 200; the floor has no such route). */
async function waitReady(child, base, { probe = '/readyz', status = 200, timeoutMs = 120_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    assertAlive();
    try {
      if ((await fetch(`${base}${probe}`, { signal: AbortSignal.timeout(1000) })).status === status) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${child.name} not ready after ${timeoutMs / 1000} s:\n${child.output()}`);
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

/** The Postgres backends serving one of our servers (told apart by database and application_name). */
async function backendPids(target) {
  const { rows } = await state.admin.query('select pid from pg_stat_activity where datname = $1 and application_name = $2', [target.dbName, target.appName]);
  return rows.map((r) => r.pid);
}

/** Pins a server's Postgres backends to a core (they are long-lived pool connections). */
async function pinBackends(target) {
  if (target.pgCpu === undefined || !target.dbName) return [];
  const pids = await backendPids(target);
  for (const pid of pids) pin(pid, target.pgCpu);
  return pids;
}

/** CPU seconds so far of a server (all threads, and its main thread alone) and of its Postgres backends. */
function cpuSnapshot(target, pgPids) {
  const pg = pgPids.map(cpuSeconds);
  return {
    cpu: cpuSeconds(target.pid),
    mainCpu: cpuSeconds(`${target.pid}/task/${target.pid}`), // the event loop; the rest is libuv's pool, GC, JIT
    pgCpu: pg.length && pg.every((v) => v !== undefined) ? pg.reduce((a, b) => a + b, 0) : undefined,
  };
}

/** Nearest-rank percentile of sorted values. */
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
const p99Of = (latencies) => percentile(Float64Array.from(latencies).sort(), 99);
const median = (values) => percentile(Float64Array.from(values).sort(), 50);

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
 * are read from /proc around the measured part (the backends pinned first when the target says
 * so). With `warmupSeconds` the warm-up is the first part of the same run and only what follows
 * it is measured: no requests abandoned at the end of a separate warm-up run (slow ones, like
 * logins, still being served) are charged to it.
 */
async function load(target, { requests, seconds, warmupSeconds = 0, amount, connections, overallRate, setupClient }) {
  const latencies = [];
  const pgPids = target.pgCpu === undefined ? await backendPids(target) : await pinBackends(target);
  // `amount`: this many requests, however long they take (a scenario whose requests each use up something prepared).
  const length = amount === undefined ? { duration: warmupSeconds + seconds } : { amount };
  const run = autocannon({ url: target.base, connections, ...length, requests, timeout: 10, overallRate, setupClient });
  state.loads.add(run);
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
    state.loads.delete(run);
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
    seconds: warmupSeconds > 0 || amount !== undefined ? elapsed : result.duration,
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
const verdict = (ok) => (ok === null || ok === undefined ? 'n/a' : ok ? 'PASS' : 'FAIL');
const heading = (name, what) => console.log(`\n== ${name}: ${what}`);

// ---- users, through the service's API ----

/** A user created by an admin (with a forced password change), as its first login gives it. */
async function createUser(base, adminJwt, { name, email = `${name}@example.com`, password = PASSWORD, isAdmin = false }) {
  const created = await expectStatus(
    201,
    http(base, 'POST', '/user?send_mail=0', { token: adminJwt, body: { name, email, ...(password ? { password } : {}), ...(isAdmin ? { is_admin: true } : {}) } }),
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
async function createActiveUser(base, adminJwt, options) {
  const user = await createUser(base, adminJwt, options);
  const confined = await login(base, user.email);
  await expectStatus(204, http(base, 'POST', '/user/me/password?clear_tokens=none', { token: confined, body: { current_password: PASSWORD, password: PASSWORD } }), `password of ${user.name}`);
  user.jwt = await login(base, user.email);
  return user;
}

/**
 * The environment of a service a scenario starts on a database of its own with an admin to log in
 * as: the run's keys, bcrypt at 4, no throttle, no response validation, a fresh DATA_DIR, warn
 * logs. `extra` adds the scenario's own.
 */
function serviceEnv(ctx, { dbName, appName, port, adminEmail, dataPrefix }, extra = {}) {
  return {
    DATABASE_URL: databaseUrl(dbName, appName),
    PORT: String(port),
    HOST,
    LOG_LEVEL: 'warn',
    BCRYPT_COST: '4',
    THROTTLE_IP_PER_MINUTE: '0',
    JWT_SECRET: ctx.secret,
    MFA_KEY: ctx.mfaKey,
    AUDIT_KEY: ctx.auditKey,
    ADMIN_EMAIL: adminEmail,
    ADMIN_PASSWORD: PASSWORD,
    DATA_DIR: path.join(tmpDir(dataPrefix), 'data'),
    DATABASE_POOL_SIZE: '',
    VALIDATE_RESPONSES: '0',
    ...extra,
  };
}

module.exports = {
  num,
  int,
  ROOT,
  HOST,
  PASSWORD,
  state,
  init,
  adminClient,
  connectAdmin,
  databaseUrl,
  serviceEnv,
  registerDatabase,
  createDatabase,
  dropDatabase,
  tmpDir,
  cleanup,
  round2,
  round3,
  sleep,
  freePort,
  canPin,
  pin,
  allCpus,
  startChild,
  stopChild,
  assertAlive,
  http,
  expectStatus,
  waitReady,
  mapLimit,
  range,
  cpuSeconds,
  backendPids,
  pinBackends,
  percentile,
  p99Of,
  median,
  perConnectionSlot,
  load,
  summarize,
  table,
  verdict,
  heading,
  createUser,
  login,
  createActiveUser,
};
