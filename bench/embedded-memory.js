'use strict';
/**
 * embedded_memory: the resident memory of the service on its embedded default (PGlite), issue
 * 21 item 8, beside Postgres mode's. RSS is the service process's VmRSS from /proc/<pid>/status
 * (its peak, VmHWM, beside it); the first start's initdb runs in a child process of its own,
 * which is gone by the time the service listens, and whose peak is reported apart (sampled from
 * /proc while it runs).
 *
 *   first start   a fresh DATA_DIR, the service started as `npm start` does (no configuration but
 *                 an admin, the port and a quiet log), idle BENCH_MEM_IDLE_SECONDS (10) after
 *                 /readyz, then its RSS
 *   restart       stopped (SIGTERM) and started again on the same directory, idle as above
 *   after load    BENCH_MEM_LOAD_SECONDS (120) of mixed load on that restarted process, then its
 *                 RSS (and every second's during the load: their maximum): BENCH_MEM_CONNECTIONS
 *                 (8) clients, each in a loop of POST /login at the default bcrypt cost (12) as
 *                 one of BENCH_MEM_USERS (5) users, 10 GET /user/me, a setting written and the
 *                 settings read, and a user created (`POST /user`, by the admin)
 *   Postgres      the same first start (idle) and load on a fresh Postgres database, for comparison
 *
 * Targets: at most 250 MB idle after the first start and after a restart, at most 350 MB after
 * the load (PASS/FAIL); Postgres mode's figures are info.
 */
const fs = require('node:fs');
const path = require('node:path');
const lib = require('./lib');

const { ROOT, HOST, PASSWORD, round2, sleep, http, expectStatus, mapLimit, range, table, verdict, heading } = lib;

const TARGETS = { firstStartIdleMbMax: 250, restartIdleMbMax: 250, afterLoadMbMax: 350 };

function config() {
  return {
    idleSeconds: lib.num('BENCH_MEM_IDLE_SECONDS', 10),
    loadSeconds: lib.num('BENCH_MEM_LOAD_SECONDS', 120),
    connections: lib.int('BENCH_MEM_CONNECTIONS', 8),
    users: lib.int('BENCH_MEM_USERS', 5),
    bcryptCost: lib.int('BENCH_MEM_BCRYPT_COST', 12, 4, 15), // the service's default
  };
}

/** VmRSS and VmHWM of a process, in MB; undefined once it is gone. */
function memoryOf(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
    return { rssMb: round2(kb('VmRSS') / 1024), hwmMb: round2(kb('VmHWM') / 1024) }; // NaN for a zombie
  } catch {
    return undefined;
  }
}

/** The child processes of a process (Linux: /proc/<pid>/task/<tid>/children). */
function childrenOf(pid) {
  try {
    return fs
      .readdirSync(`/proc/${pid}/task`)
      .flatMap((tid) => fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
  } catch {
    return [];
  }
}

/** Starts the service; resolves once /readyz answers 200, with the peak RSS any child of it reached meanwhile (the initdb child). */
async function startService(name, env) {
  const port = await lib.freePort();
  const child = lib.startChild(name, path.join(ROOT, 'dist/src/server.js'), {
    PORT: String(port),
    HOST,
    LOG_LEVEL: 'warn',
    THROTTLE_IP_PER_MINUTE: '0',
    ADMIN_EMAIL: 'bench-admin@example.com',
    ADMIN_PASSWORD: PASSWORD,
    DATABASE_POOL_SIZE: '',
    SMTP_URL: '',
    VALIDATE_RESPONSES: '0',
    ...env,
  });
  const base = `http://${HOST}:${port}`;
  let childPeakMb = 0;
  const seen = new Map();
  const watch = setInterval(() => {
    for (const pid of childrenOf(child.proc.pid)) {
      const m = memoryOf(pid);
      if (m && Number.isFinite(m.hwmMb)) seen.set(pid, Math.max(seen.get(pid) ?? 0, m.hwmMb)); // a zombie has none
    }
    childPeakMb = Math.max(0, ...seen.values());
  }, 50);
  try {
    await lib.waitReady(child, base);
  } finally {
    clearInterval(watch);
  }
  return { child, base, pid: child.proc.pid, childPeakMb: seen.size ? childPeakMb : null };
}

/** Waits `seconds`, then the process's memory. */
async function idle(service, seconds) {
  await sleep(seconds * 1000);
  lib.assertAlive();
  return memoryOf(service.pid);
}

/**
 * The mixed load: `connections` clients, each looping over a login, reads, a setting written, the
 * settings read and a user created, for `seconds`; RSS sampled every second. Every answer must be
 * the expected one.
 */
async function mixedLoad(service, cfg, tag) {
  const { base } = service;
  const adminJwt = await lib.login(base, 'bench-admin@example.com');
  const users = await mapLimit(range(cfg.users), 4, (i) => lib.createActiveUser(base, adminJwt, { name: `mem-${tag}-${i}` }));
  const counts = {};
  const expect = async (status, promise, what) => {
    const body = await expectStatus(status, promise, what);
    counts[what] = (counts[what] ?? 0) + 1;
    return body;
  };
  let created = 0;
  const samples = [];
  const deadline = Date.now() + cfg.loadSeconds * 1000;
  const sampler = setInterval(() => {
    const m = memoryOf(service.pid);
    if (m) samples.push(m.rssMb);
  }, 1000);
  const client = async (c) => {
    const user = users[c % users.length];
    while (Date.now() < deadline) {
      const jwt = (await expect(200, http(base, 'POST', '/login', { body: { email: user.email, password: PASSWORD } }), 'POST /login')).jwt_token;
      for (let i = 0; i < 10 && Date.now() < deadline; i++) await expect(200, http(base, 'GET', '/user/me', { token: jwt }), 'GET /user/me');
      await expect(204, http(base, 'POST', '/user/me/settings/theme', { token: jwt, body: { theme: `dark ${c} ${Date.now()}` } }), 'POST /user/me/settings/theme');
      await expect(200, http(base, 'GET', '/user/me/settings', { token: jwt }), 'GET /user/me/settings');
      const n = created++;
      await expect(201, http(base, 'POST', '/user?send_mail=0', { token: adminJwt, body: { name: `mem-${tag}-new-${n}`, email: `mem-${tag}-new-${n}@example.com`, password: PASSWORD } }), 'POST /user');
      await expect(204, http(base, 'POST', '/logout', { token: jwt }), 'POST /logout');
    }
  };
  const t0 = Date.now();
  try {
    await Promise.all(range(cfg.connections).map(client));
  } finally {
    clearInterval(sampler);
  }
  const seconds = (Date.now() - t0) / 1000;
  lib.assertAlive();
  const after = memoryOf(service.pid);
  const requests = Object.values(counts).reduce((a, b) => a + b, 0);
  return { seconds: round2(seconds), requests, rps: round2(requests / seconds), counts, maxSampledRssMb: Math.max(...samples, after.rssMb), ...after };
}

async function scenario({ dbName }) {
  const cfg = config();
  heading('embedded_memory', `resident memory of the service on the embedded default (PGlite), beside Postgres mode; idle ${cfg.idleSeconds} s, load ${cfg.loadSeconds} s`);
  const env = { BCRYPT_COST: String(cfg.bcryptCost) };

  // The embedded default: a fresh DATA_DIR, no DATABASE_URL.
  const dataDir = path.join(lib.tmpDir('acct-bench-mem-'), 'data');
  const embedded = { ...env, DATA_DIR: dataDir, DATABASE_URL: '', JWT_SECRET: '', MFA_KEY: '', AUDIT_KEY: '' };
  let service = await startService('service (embedded, first start)', embedded);
  const first = { ...(await idle(service, cfg.idleSeconds)), initdbChildPeakMb: service.childPeakMb };
  console.log(`first start: ${first.rssMb} MB idle (peak ${first.hwmMb} MB; the initdb child's peak ${first.initdbChildPeakMb ?? 'not seen'} MB)`);
  await lib.stopChild(service.child);
  service = await startService('service (embedded, restarted)', embedded);
  const restart = await idle(service, cfg.idleSeconds);
  console.log(`restart: ${restart.rssMb} MB idle (peak ${restart.hwmMb} MB)`);
  const loaded = await mixedLoad(service, cfg, 'pglite');
  console.log(`after ${loaded.seconds} s of load (${loaded.requests} requests, ${loaded.rps}/s): ${loaded.rssMb} MB (peak ${loaded.hwmMb} MB)`);
  await lib.stopChild(service.child);

  // Postgres mode, for comparison: its own fresh database.
  await lib.createDatabase(dbName);
  const keys = { JWT_SECRET: 'bench-mem-jwt-secret-0123456789-abcdefghijklmn', MFA_KEY: 'bench-mem-mfa-key-0123456789-abcdefghijklmnop', AUDIT_KEY: 'bench-mem-audit-key-0123456789-abcdefghijklmn' };
  service = await startService('service (Postgres)', { ...env, ...keys, DATA_DIR: path.join(lib.tmpDir('acct-bench-mem-pg-'), 'data'), DATABASE_URL: lib.databaseUrl(dbName, 'bench-mem') });
  const pgIdle = await idle(service, cfg.idleSeconds);
  const pgLoaded = await mixedLoad(service, cfg, 'pg');
  console.log(`Postgres mode: ${pgIdle.rssMb} MB idle, ${pgLoaded.rssMb} MB after the load (${pgLoaded.requests} requests, ${pgLoaded.rps}/s)`);
  await lib.stopChild(service.child);
  await lib.dropDatabase(dbName);

  const pass = { firstStart: first.rssMb <= TARGETS.firstStartIdleMbMax, restart: restart.rssMb <= TARGETS.restartIdleMbMax, afterLoad: loaded.rssMb <= TARGETS.afterLoadMbMax };
  console.log();
  table([
    ['RSS (MB)', 'PGlite', 'peak', 'Postgres', 'target (PGlite)', ''],
    ['idle after the first start', first.rssMb, first.hwmMb, pgIdle.rssMb, `<= ${TARGETS.firstStartIdleMbMax}`, verdict(pass.firstStart)],
    ['idle after a restart', restart.rssMb, restart.hwmMb, '', `<= ${TARGETS.restartIdleMbMax}`, verdict(pass.restart)],
    [`after ${cfg.loadSeconds} s of mixed load`, loaded.rssMb, loaded.hwmMb, pgLoaded.rssMb, `<= ${TARGETS.afterLoadMbMax}`, verdict(pass.afterLoad)],
    ['  highest sampled during the load', loaded.maxSampledRssMb, '', pgLoaded.maxSampledRssMb, '', 'info'],
    ['  requests/s during the load', loaded.rps, '', pgLoaded.rps, '', 'info'],
    ['the first start\'s initdb child (peak)', first.initdbChildPeakMb, '', '', '', 'info'],
  ]);
  return { config: cfg, firstStart: first, restart, afterLoad: loaded, postgres: { idle: pgIdle, afterLoad: pgLoaded }, targets: TARGETS, pass };
}

function summaryRows(r) {
  return [
    ['embedded_memory', `first start: ${r.firstStart.rssMb} MB idle`, `<= ${TARGETS.firstStartIdleMbMax} MB`, verdict(r.pass.firstStart)],
    ['embedded_memory', `restart: ${r.restart.rssMb} MB idle`, `<= ${TARGETS.restartIdleMbMax} MB`, verdict(r.pass.restart)],
    ['embedded_memory', `after ${r.config.loadSeconds} s of load: ${r.afterLoad.rssMb} MB`, `<= ${TARGETS.afterLoadMbMax} MB`, verdict(r.pass.afterLoad)],
    ['embedded_memory', `Postgres mode: ${r.postgres.idle.rssMb} MB idle, ${r.postgres.afterLoad.rssMb} MB after the load`, 'none', 'info'],
  ];
}

/** Seconds the scenario may take: three starts and two idles, two loads, set-up. */
function budgetSeconds() {
  const cfg = config();
  return 300 + 3 * cfg.idleSeconds + 2 * (cfg.loadSeconds + 60);
}

module.exports = { scenario, summaryRows, budgetSeconds, config, TARGETS };
