'use strict';
/**
 * `npm run bench`: GET /user/me with many different tokens, against the real service
 * (dist/src/server.js) and against a minimal baseline (bench/baseline.js), both on a fresh
 * Postgres database. Prints throughput and latency for both and their ratios, checks them
 * against the targets (>= 0.9x the baseline's throughput, <= 1.2x its p99) and writes
 * bench/results/latest.json. A missed target is reported, not an error; anything that fails
 * to run (including a single non-2xx response) exits non-zero.
 *
 * Env: BENCH_DATABASE_URL (admin connection, default postgres://postgres@127.0.0.1:5432/postgres),
 * BENCH_SECONDS (measured seconds per run, 10), BENCH_WARMUP_SECONDS (3), BENCH_CONNECTIONS (50),
 * BENCH_USERS (distinct users and tokens, 200), BENCH_ROUNDS (runs per server, alternating, 2),
 * BENCH_SERVICE_NODE_ARGS (extra node flags for the service, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`),
 * BENCH_BASELINE_NODE_ARGS (the same for the baseline, to compare profiles).
 */
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const autocannon = require('autocannon');
const { Client } = require('pg');

const ROOT = path.resolve(__dirname, '..');
const HOST = '127.0.0.1';
const num = (name, fallback) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const CFG = {
  adminUrl: process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres',
  seconds: num('BENCH_SECONDS', 10),
  warmupSeconds: num('BENCH_WARMUP_SECONDS', 3),
  connections: num('BENCH_CONNECTIONS', 50),
  users: num('BENCH_USERS', 200),
  rounds: num('BENCH_ROUNDS', 2),
  poolSize: 10, // the service's DATABASE_POOL_SIZE default
};
const TARGETS = { throughputRatioMin: 0.9, p99RatioMax: 1.2 };
const PASSWORD = 'bench password 1';

// ---- resources, released by cleanup() whatever happens ----
const children = [];
let dbName;
let tmpDir;
let currentRun;
let cleaning;

function cleanup() {
  cleaning ??= (async () => {
    currentRun?.stop();
    await Promise.all(children.map(stopChild));
    if (dbName) {
      const admin = adminClient();
      try {
        await admin.connect();
        await admin.query(`drop database if exists "${dbName}" with (force)`);
      } catch (err) {
        console.error(`could not drop database ${dbName}: ${err.message}`);
      } finally {
        await admin.end().catch(() => {});
      }
    }
    if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  })();
  return cleaning;
}

// ---- helpers ----
const adminClient = () => new Client({ connectionString: CFG.adminUrl, connectionTimeoutMillis: 10_000, query_timeout: 30_000 });

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
  const child = { name, proc, output: () => output, exitCode: undefined };
  child.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve((child.exitCode = code ?? signal))));
  children.push(child);
  return child;
}

async function stopChild(child) {
  if (child.exitCode !== undefined) return;
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), 5000);
  await child.exited;
  clearTimeout(timer);
}

function assertAlive() {
  for (const c of children) {
    if (c.exitCode !== undefined) throw new Error(`${c.name} exited (${c.exitCode}):\n${c.output()}`);
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
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function expectStatus(status, promise, what) {
  const res = await promise;
  if (res.status !== status) throw new Error(`${what}: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
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
    await new Promise((r) => setTimeout(r, 100));
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

/** CPU seconds a process has used so far (Linux /proc; undefined elsewhere). */
function cpuSeconds(pid) {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in USER_HZ (100 on Linux)
  } catch {
    return undefined;
  }
}

/** Nearest-rank percentile of sorted values. */
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

/** One autocannon run over all tokens; latencies are kept at full precision (autocannon's own histogram is in whole ms). */
async function load(target, tokens, seconds) {
  const { base, pid } = target;
  const latencies = [];
  const requests = tokens.map((t) => ({ method: 'GET', path: '/user/me', headers: { authorization: `Bearer ${t}` } }));
  currentRun = autocannon({ url: base, connections: CFG.connections, duration: seconds, requests, timeout: 10 });
  currentRun.on('response', (_client, status, _bytes, ms) => {
    if (status >= 200 && status < 300) latencies.push(ms);
  });
  const cpuBefore = cpuSeconds(pid);
  const result = await currentRun;
  const cpu = cpuSeconds(pid) - cpuBefore;
  currentRun = undefined;
  assertAlive();
  const bad = result.non2xx + result.errors + result.timeouts + result.resets;
  if (bad > 0 || result.requests.total === 0) {
    throw new Error(
      `${base}: ${result.non2xx} non-2xx (status ${JSON.stringify(result.statusCodeStats)}), ${result.errors} errors, ` +
        `${result.timeouts} timeouts, ${result.resets} resets out of ${result.requests.total} responses`,
    );
  }
  return { requests: result.requests.total, seconds: result.duration, cpu, latencies };
}

function summarize(runs) {
  const requests = runs.reduce((n, r) => n + r.requests, 0);
  const seconds = runs.reduce((n, r) => n + r.seconds, 0);
  const cpu = runs.reduce((n, r) => n + r.cpu, 0);
  const sorted = Float64Array.from(runs.flatMap((r) => r.latencies)).sort();
  const round2 = (v) => Math.round(v * 100) / 100;
  return {
    requests,
    seconds: round2(seconds),
    rps: Math.round(requests / seconds),
    rpsPerRun: runs.map((r) => Math.round(r.requests / r.seconds)),
    cpuUsPerRequest: Math.round((cpu / requests) * 1e6), // the server process's own CPU
    cpuCores: round2(cpu / seconds),
    p50Ms: round2(percentile(sorted, 50)),
    p99Ms: round2(percentile(sorted, 99)),
    p99MsPerRun: runs.map((r) => round2(percentile(Float64Array.from(r.latencies).sort(), 99))),
  };
}

// ---- the benchmark ----
async function main() {
  assertLoopback(CFG.adminUrl);
  const server = path.join(ROOT, 'dist/src/server.js');
  if (!fs.existsSync(server)) throw new Error('dist/src/server.js is missing: run `npm run build` first');

  const admin = adminClient();
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(
      `cannot reach Postgres at ${CFG.adminUrl} (${err.message}); start it with ` +
        '`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`',
    );
  }
  try {
    await admin.query(`create database "acct_bench_${process.pid}"`);
    dbName = `acct_bench_${process.pid}`; // ours to drop from here on
  } finally {
    await admin.end();
  }
  const dbUrl = new URL(CFG.adminUrl);
  dbUrl.pathname = `/${dbName}`;
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'acct-bench-'));
  const secret = crypto.randomBytes(36).toString('base64'); // 48 characters

  const [servicePort, baselinePort] = [await freePort(), await freePort()];
  const adminEmail = 'bench-admin@example.com';
  const serviceNodeArgs = (process.env.BENCH_SERVICE_NODE_ARGS || '').split(' ').filter(Boolean);
  const service = startChild('service', server, {
    DATABASE_URL: dbUrl.href,
    PORT: String(servicePort),
    HOST,
    LOG_LEVEL: 'warn',
    BCRYPT_COST: '4',
    JWT_SECRET: secret,
    ADMIN_EMAIL: adminEmail,
    ADMIN_PASSWORD: PASSWORD,
    DATA_DIR: path.join(tmpDir, 'data'),
    MAIL_OUTBOX_DIR: path.join(tmpDir, 'outbox'),
    DATABASE_POOL_SIZE: '', // blank: the default, whatever this shell has
    SMTP_URL: '',
    VALIDATE_RESPONSES: '0',
  }, serviceNodeArgs);
  const serviceBase = `http://${HOST}:${servicePort}`;
  await waitReady(service, serviceBase); // the service migrates the database before it listens

  const baselineNodeArgs = (process.env.BENCH_BASELINE_NODE_ARGS || '').split(' ').filter(Boolean);
  const baseline = startChild('baseline', path.join(__dirname, 'baseline.js'), {
    DATABASE_URL: dbUrl.href,
    PORT: String(baselinePort),
    HOST,
    JWT_SECRET: secret,
    POOL_SIZE: String(CFG.poolSize),
  }, baselineNodeArgs);
  const baselineBase = `http://${HOST}:${baselinePort}`;
  await waitReady(baseline, baselineBase);

  // ~200 users, one login token each
  const adminJwt = (await expectStatus(200, http(serviceBase, 'POST', '/login', { body: { email: adminEmail, password: PASSWORD } }), 'admin login')).jwt_token;
  const indexes = Array.from({ length: CFG.users }, (_, i) => i);
  const users = await mapLimit(indexes, 8, async (i) => {
    const email = `bench${i}@example.com`;
    const created = await expectStatus(
      201,
      http(serviceBase, 'POST', '/user?send_mail=0', { token: adminJwt, body: { name: `bench${i}`, email, password: PASSWORD } }),
      'create user',
    );
    const login = await expectStatus(200, http(serviceBase, 'POST', '/login', { body: { email, password: PASSWORD } }), 'user login');
    return { id: created.id, jwt: login.jwt_token };
  });
  const tokens = users.map((u) => u.jwt);

  // Both servers answer every token with its own user (and the service's first-use writes are done).
  for (const base of [serviceBase, baselineBase]) {
    await mapLimit(users, 8, async (u) => {
      const me = await expectStatus(200, http(base, 'GET', '/user/me', { token: u.jwt }), `GET ${base}/user/me`);
      if (me.id !== u.id) throw new Error(`GET ${base}/user/me answered user ${me.id}, expected ${u.id}`);
    });
  }
  console.log(
    `${tokens.length} tokens; ${CFG.connections} connections; ${CFG.rounds} round(s) of ` +
      `${CFG.warmupSeconds} s warm-up + ${CFG.seconds} s measured per server, alternating`,
  );

  const targets = { service: { base: serviceBase, pid: service.proc.pid }, baseline: { base: baselineBase, pid: baseline.proc.pid } };
  const runs = { service: [], baseline: [] };
  for (let round = 0; round < CFG.rounds; round++) {
    const order = round % 2 === 0 ? ['service', 'baseline'] : ['baseline', 'service'];
    for (const name of order) {
      await load(targets[name], tokens, CFG.warmupSeconds);
      const run = await load(targets[name], tokens, CFG.seconds);
      runs[name].push(run);
      const p99 = percentile(Float64Array.from(run.latencies).sort(), 99);
      console.log(`  round ${round + 1} ${name.padEnd(8)} ${Math.round(run.requests / run.seconds)} req/s, p99 ${p99.toFixed(2)} ms`);
    }
  }

  const s = summarize(runs.service);
  const b = summarize(runs.baseline);
  const ratios = { throughput: Math.round((s.rps / b.rps) * 1000) / 1000, p99: Math.round((s.p99Ms / b.p99Ms) * 1000) / 1000 };
  const pass = { throughput: ratios.throughput >= TARGETS.throughputRatioMin, p99: ratios.p99 <= TARGETS.p99RatioMax };

  const row = (cells) => cells.map((c, i) => String(c)[i === 0 ? 'padEnd' : 'padStart'](i === 0 ? 10 : 12)).join('');
  console.log();
  console.log(row(['', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'CPU cores']));
  console.log(row(['service', s.rps, s.p50Ms, s.p99Ms, s.cpuUsPerRequest, s.cpuCores]));
  console.log(row(['baseline', b.rps, b.p50Ms, b.p99Ms, b.cpuUsPerRequest, b.cpuCores]));
  console.log();
  console.log(`throughput  service/baseline ${ratios.throughput.toFixed(3)}x  (target >= ${TARGETS.throughputRatioMin}x)  ${pass.throughput ? 'PASS' : 'FAIL'}`);
  console.log(`p99         service/baseline ${ratios.p99.toFixed(3)}x  (target <= ${TARGETS.p99RatioMax}x)  ${pass.p99 ? 'PASS' : 'FAIL'}`);

  const report = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    loadAverage1m: Math.round(os.loadavg()[0] * 100) / 100, // other work on the machine skews the figures
    config: { ...CFG, adminUrl: undefined, tokens: tokens.length },
    service: s,
    baseline: b,
    ratios,
    targets: TARGETS,
    pass,
  };
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results/latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log('\nwritten: bench/results/latest.json');
}

// A hard bound on the whole run, whatever hangs.
const budgetMs = (180 + CFG.rounds * 2 * (CFG.warmupSeconds + CFG.seconds + 15)) * 1000;
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
