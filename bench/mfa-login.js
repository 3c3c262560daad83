'use strict';
/**
 * mfa_login: what the second step of a login costs, `POST /login/mfa` with an authenticator
 * app's code (issue 19). Every request needs a pending (`aal1`) login token and a code not used
 * yet, so everything is made before the timed part: BENCH_MFA_USERS users (default: the
 * requests of the warm-up and measured runs, plus two per connection of slack), each with a
 * confirmed TOTP factor (enrolled and verified through the API) and a pending token from
 * `POST /login` (the password step, bcrypt at the set-up cost, outside the figures). Each
 * request takes the next user: their token and their app's code, computed when the request is
 * built (for the 30 s step after the current one: the enrolment used the current one, and the
 * server takes a step either side). A user is used once, so no code is ever replayed and the
 * per-account failure counter never moves: every answer must be `200` with a new token.
 *
 * Runs are counted in requests, not seconds (the users are finite): BENCH_MFA_WARMUP_REQUESTS
 * (300) then BENCH_MFA_REQUESTS (2000), on BENCH_MFA_CONNECTIONS (16) connections. Figures:
 * requests/s, p50/p99, CPU per request of the service and of its Postgres backends, beside the
 * same load shape of `POST /refresh_token` (the other route that swaps a login token for a new
 * one, in one transaction) on the same service, so the figure of the code check (decrypting the
 * secret, HMAC, the step update, the audit entry) stands out. No target: reported.
 */
const { Secret, TOTP } = require('otpauth');
const lib = require('./lib');

const { PASSWORD, round3, http, expectStatus, mapLimit, range, load, summarize, table, heading } = lib;

function config() {
  const requests = lib.int('BENCH_MFA_REQUESTS', 2000);
  const warmupRequests = lib.int('BENCH_MFA_WARMUP_REQUESTS', 300);
  const connections = lib.int('BENCH_MFA_CONNECTIONS', 16);
  return { requests, warmupRequests, connections, users: lib.int('BENCH_MFA_USERS', requests + warmupRequests + 4 * connections) };
}

const SETUP_CONCURRENCY = 16;

/** The app's code for the step after the current one. */
const nextCode = (totp) => totp.generate({ timestamp: Date.now() + 30_000 });

/** A user with a confirmed authenticator app: created, password set, factor added and verified. */
async function userWithFactor(base, adminJwt, i) {
  const user = await lib.createActiveUser(base, adminJwt, { name: `mfa${i}` });
  const added = await expectStatus(201, http(base, 'POST', '/user/me/factor', { token: user.jwt, body: { type: 'totp', name: 'bench', current_password: PASSWORD } }), `add a factor for ${user.email}`);
  user.totp = new TOTP({ secret: Secret.fromBase32(added.secret), algorithm: 'SHA1', digits: 6, period: 30 });
  const verified = await expectStatus(200, http(base, 'POST', `/user/me/factor/${added.id}/verify`, { token: user.jwt, body: { code: user.totp.generate() } }), `verify the factor of ${user.email}`);
  if (!Array.isArray(verified.recovery_codes) || verified.recovery_codes.length !== 10) throw new Error(`verifying ${user.email}'s first factor gave no recovery codes`);
  await expectStatus(204, http(base, 'POST', '/logout', { token: user.jwt }), `log out ${user.email}`);
  return user;
}

/** A pending login of the user: the `aal1` token of the password step. */
async function pendingLogin(base, user) {
  const res = await expectStatus(200, http(base, 'POST', '/login', { body: { email: user.email, password: PASSWORD } }), `login ${user.email}`);
  if (res.mfa_required !== true) throw new Error(`login of ${user.email} answered without mfa_required: ${JSON.stringify(res)}`);
  return res.jwt_token;
}

/** The requests of a run over `users`, each once, in order across connections (`state.next`). */
function mfaRequests(users, state) {
  return [
    {
      method: 'POST',
      path: '/login/mfa',
      setupRequest: (req) => {
        const u = users[state.next++];
        if (!u) {
          state.ranOut = true;
          return { ...req, headers: { ...req.headers, 'content-type': 'application/json' }, body: '{"code":"000000"}' };
        }
        return { ...req, headers: { ...req.headers, authorization: `Bearer ${u.pending}`, 'content-type': 'application/json' }, body: JSON.stringify({ code: nextCode(u.totp) }) };
      },
      onResponse: (status, body) => {
        if (status !== 200) return; // load() fails the run
        const token = JSON.parse(body).jwt_token;
        if (typeof token !== 'string') state.error ??= new Error(`POST /login/mfa answered no token: ${body}`);
      },
    },
  ];
}

/** One run of `amount` requests over `users`, in order; how many of them it used up. */
async function mfaRun(ctx, users, amount, connections) {
  const state = { next: 0, ranOut: false, error: undefined };
  const ranOut = () => new Error(`POST /login/mfa: ${users.length} prepared users were not enough for ${amount} requests on ${connections} connections (BENCH_MFA_USERS)`);
  let r;
  try {
    r = await load(ctx.service, { requests: mfaRequests(users, state), amount, connections });
  } catch (err) {
    throw state.ranOut ? ranOut() : err;
  }
  if (state.error) throw state.error;
  if (state.ranOut) throw ranOut();
  return { run: r, used: state.next };
}

async function scenario(ctx) {
  const cfg = config();
  heading('mfa_login', 'POST /login/mfa with an authenticator app\'s code (each request a fresh pending login and an unused code)');
  const t0 = Date.now();
  const users = await mapLimit(range(cfg.users), SETUP_CONCURRENCY, (i) => userWithFactor(ctx.base, ctx.adminJwt, i));
  // The pending tokens last: they live 10 minutes.
  await mapLimit(users, SETUP_CONCURRENCY, async (u) => {
    u.pending = await pendingLogin(ctx.base, u);
  });
  const setupSeconds = round3((Date.now() - t0) / 1000);

  // What the route does, checked once: the pending token does nothing else, the code signs in once.
  const [probe, ...rest] = users;
  await expectStatus(403, http(ctx.base, 'GET', '/user/me', { token: probe.pending }), 'GET /user/me with a pending token');
  const code = nextCode(probe.totp);
  const signedIn = await expectStatus(200, http(ctx.base, 'POST', '/login/mfa', { token: probe.pending, body: { code } }), 'POST /login/mfa');
  await expectStatus(200, http(ctx.base, 'GET', '/user/me', { token: signedIn.jwt_token }), 'GET /user/me at aal2');
  await expectStatus(401, http(ctx.base, 'GET', '/user/me', { token: probe.pending }), 'the pending token after the second step');
  const again = await pendingLogin(ctx.base, probe);
  await expectStatus(401, http(ctx.base, 'POST', '/login/mfa', { token: again, body: { code } }), 'the same code again');
  console.log(`${users.length} users with a confirmed authenticator app and a pending login each, made in ${setupSeconds} s; ${ctx.pinningNote}`);

  const warm = await mfaRun(ctx, rest, cfg.warmupRequests, cfg.connections);
  const measuredUsers = rest.slice(warm.used);
  console.log(`${cfg.connections} connections; ${cfg.warmupRequests} requests of warm-up, then ${cfg.requests} measured`);
  const measured = await mfaRun(ctx, measuredUsers, cfg.requests, cfg.connections);
  const s = summarize([measured.run]);

  // The same load shape on POST /refresh_token: a login token swapped for a new one, no code.
  const refreshUsers = measuredUsers.slice(measured.used, measured.used + cfg.connections);
  const slots = await mapLimit(refreshUsers, SETUP_CONCURRENCY, async (u) => (await expectStatus(200, http(ctx.base, 'POST', '/login/mfa', { token: u.pending, body: { code: nextCode(u.totp) } }), 'sign in for refresh')).jwt_token);
  const refreshState = { error: undefined };
  const refreshRequests = [
    {
      method: 'POST',
      path: '/refresh_token',
      setupRequest: (req, c) => ({ ...req, headers: { ...req.headers, authorization: `Bearer ${slots[c.slot ?? 0]}` } }),
      onResponse: (status, body, c) => {
        if (status !== 200) return;
        const next = JSON.parse(body).jwt_token;
        if (typeof next !== 'string') refreshState.error ??= new Error(`refresh answered no token: ${body}`);
        slots[c.slot] = next;
      },
    },
  ];
  await load(ctx.service, { requests: refreshRequests, amount: cfg.warmupRequests, connections: cfg.connections, setupClient: lib.perConnectionSlot() });
  const refresh = summarize([await load(ctx.service, { requests: refreshRequests, amount: cfg.requests, connections: cfg.connections, setupClient: lib.perConnectionSlot() })]);
  if (refreshState.error) throw refreshState.error;

  const total = (x) => x.cpuUsPerRequest + (x.pgCpuUsPerRequest ?? 0);
  const cpuRatio = round3(total(s) / total(refresh));
  console.log();
  table([
    ['', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'main µs/req', 'PG µs/req', 'total µs/req'],
    ['POST /login/mfa', s.rps, s.p50Ms, s.p99Ms, s.cpuUsPerRequest, s.mainThreadCpuUsPerRequest, s.pgCpuUsPerRequest, total(s)],
    ['POST /refresh_token (same load)', refresh.rps, refresh.p50Ms, refresh.p99Ms, refresh.cpuUsPerRequest, refresh.mainThreadCpuUsPerRequest, refresh.pgCpuUsPerRequest, total(refresh)],
  ]);
  console.log();
  console.log(`POST /login/mfa / POST /refresh_token: ${cpuRatio}x the CPU per request (service + Postgres; no target: reported)`);
  return { users: users.length, setupSeconds, connections: cfg.connections, warmupRequests: cfg.warmupRequests, ...s, totalCpuUs: total(s), refresh: { ...refresh, totalCpuUs: total(refresh) }, cpuRatioToRefresh: cpuRatio, pass: {} };
}

function summaryRows(r) {
  return [
    ['mfa_login', `${r.rps} req/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms`, 'none', 'info'],
    ['mfa_login', `CPU/req ${r.cpuUsPerRequest} µs + PG ${r.pgCpuUsPerRequest} µs = ${r.cpuRatioToRefresh}x POST /refresh_token's`, 'none', 'info'],
  ];
}

/** Seconds the scenario may take: set-up (9 requests a user, 17 users/s on a busy machine), the runs, the checks. */
function budgetSeconds() {
  const cfg = config();
  return 120 + Math.ceil(cfg.users / 8) + Math.ceil((cfg.warmupRequests + cfg.requests) / 25) * 2;
}

module.exports = { scenario, summaryRows, budgetSeconds, config };
