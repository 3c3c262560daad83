import fs from 'node:fs';
import http from 'node:http';
import pg from 'pg';
import { startCluster, type Cluster } from '../helpers/pg-cluster';
import {
  baseEnv,
  call,
  createUsers,
  describeOutcome,
  dumpRun,
  killAllServices,
  login,
  ok,
  settingWrite,
  sleep,
  startService,
  stopService,
  tempDir,
  type Exit,
  type Outcome,
  type Service,
} from './harness';

/**
 * SIGTERM under keep-alive load (API.md §5): stop taking requests on every connection at once
 * (requests that arrive afterwards get 503 `unavailable` with `Connection: close`, or find the
 * connection closed), finish those in flight (answered, with `Connection: close`), exit 0, and
 * never cut a request whose write may commit: after a restart on the same database every 2xx
 * write is there and no write that got a 503 or a socket error is.
 *
 * In flight for sure: on Postgres, token creations blocked behind a SHARE lock on user_tokens
 * that a test connection holds across the SIGTERM; on both, a settings write whose body is only
 * half sent when SIGTERM arrives. Also counted as in flight: load requests fully sent at least
 * IN_FLIGHT_MARGIN_MS before SIGTERM and not answered by then, nor logged by the service as
 * answered before its "shutting down" line (see answeredBeforeShutdown). SIGTERM is sent while load requests
 * are under way, and each surely-in-flight request's client sends one more write on its
 * keep-alive agent once answered, so "every connection at once" is tested on busy connections,
 * not only idle ones.
 */

const CLIENTS = 4;
const USERS_PER_CLIENT = 6; // unique keys for a client writing through a 10 s drain
const BLOCKED = 2;
/** A load request fully sent this long before SIGTERM and not answered by then is in flight. */
const IN_FLIGHT_MARGIN_MS = 100;
/** A request started this long after SIGTERM arrived after it. */
const ARRIVED_AFTER_MARGIN_MS = 250;
const SOCKET_ERROR = /^(ECONNRESET|ECONNREFUSED|EPIPE)\b|socket hang up/;

type Backend = 'postgres' | 'pglite';

interface Run {
  backend: Backend;
  t0: number;
  killedAt: number;
  exit: Exit;
  outcomes: Outcome[];
  /** Requests surely in flight when SIGTERM arrived. */
  held: Outcome[];
  restartError?: string;
  /** Clients that stopped because their users were full (the service kept taking writes). */
  exhausted: number;
  settings?: Map<string, Record<string, unknown>>;
  tokens?: Set<string>;
  firstOutput: string;
}

interface Fixture {
  cluster?: Cluster;
  dataDir?: string;
  services: Service[];
  /** The test's own connection holding the lock, while it holds it. */
  lock?: pg.Client;
  run?: Run;
}

async function scenario(backend: Backend, f: Fixture): Promise<Run> {
  f.dataDir = tempDir(`sigterm-${backend}`);
  let env: NodeJS.ProcessEnv;
  if (backend === 'postgres') {
    f.cluster = await startCluster();
    env = baseEnv({ DATABASE_URL: f.cluster.url, DATA_DIR: f.dataDir });
  } else {
    env = baseEnv({ DATA_DIR: f.dataDir });
  }
  const service = await startService(env);
  f.services.push(service);
  const port = service.port;
  const token = await login(port);
  const users = await createUsers(port, token, `sigterm-${backend}`, CLIENTS * USERS_PER_CLIENT + 1);
  const slowUser = users[CLIENTS * USERS_PER_CLIENT];

  // Every client has its own keep-alive connection, opened before the load starts.
  const agents = Array.from({ length: CLIENTS + BLOCKED + 1 }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  for (const agent of agents) {
    const warm = await call({ port, agent, token, method: 'GET', path: '/user/me' });
    if (warm.status !== 200) throw new Error(`warm-up GET /user/me: ${warm.status ?? warm.error}`);
  }
  const loadAgents = agents.slice(0, CLIENTS);
  const blockedAgents = agents.slice(CLIENTS, CLIENTS + BLOCKED);
  const slowAgent = agents[CLIENTS + BLOCKED];

  const outcomes: Outcome[] = [];
  const t0 = Date.now();
  let killedAt = Infinity;
  let stop = false;
  let exhausted = 0;
  let pending = 0; // load requests under way
  void service.exited.then(() => (stop = true));
  const loop = async (i: number) => {
    const agent = loadAgents[i];
    const userIds = users.slice(i * USERS_PER_CLIENT, (i + 1) * USERS_PER_CLIENT);
    for (let n = 0; !stop; n++) {
      const w = settingWrite(userIds, `c${i}`, n);
      if (!w) {
        exhausted++;
        return;
      }
      pending++;
      const o = await call({
        port,
        agent,
        token,
        kind: 'write',
        method: 'POST',
        path: `/user/${w.userId}/settings/${w.key}`,
        body: { [w.key]: w.value },
        writes: { type: 'setting', ...w },
        timeoutMs: 30_000,
      });
      pending--;
      outcomes.push(o);
      if (o.error && o.start > killedAt) return; // refused or closed after SIGTERM: done
      await sleep(3);
    }
  };
  const loops = Array.from({ length: CLIENTS }, (_, i) => loop(i));
  await sleep(700);

  // Requests surely in flight at SIGTERM. When one is answered, its client sends one more write
  // on the same keep-alive agent: a request that arrives after SIGTERM on a connection that was
  // busy when SIGTERM came (it must find the connection closed, or get a 503).
  const held: Promise<Outcome>[] = [];
  const followUps: Promise<Outcome>[] = [];
  const followUp = (agent: http.Agent, o: Promise<Outcome>, i: number): Promise<Outcome> =>
    o.then((answered) => {
      const key = `after-${i}`;
      const value = `after-value-${i}-${Date.now()}`;
      followUps.push(
        call({
          port,
          agent,
          token,
          kind: 'after',
          method: 'POST',
          path: `/user/${slowUser}/settings/${key}`,
          body: { [key]: value },
          writes: { type: 'setting', userId: slowUser, key, value },
          timeoutMs: 30_000,
        }),
      );
      return answered;
    });
  let lock: pg.Client | undefined;
  if (f.cluster) {
    lock = f.lock = new pg.Client({ connectionString: f.cluster.url });
    lock.on('error', () => undefined); // the cluster may go away under it if the scenario fails
    await lock.connect();
    await lock.query('begin');
    await lock.query('lock table user_tokens in share mode');
    blockedAgents.forEach((agent, i) => {
      const name = `blocked-${i}`;
      const o = call({ port, agent, token, kind: 'blocked', method: 'POST', path: '/user/me/token', body: { name }, writes: { type: 'token', name }, timeoutMs: 30_000 });
      held.push(followUp(agent, o, i));
    });
    const waitingUntil = Date.now() + 10_000;
    for (;;) {
      const { rows } = await lock.query<{ n: string }>(
        `select count(*) as n from pg_locks l join pg_class c on c.oid = l.relation where c.relname = 'user_tokens' and not l.granted`,
      );
      if (Number(rows[0].n) >= BLOCKED) break;
      if (Date.now() > waitingUntil) throw new Error(`the token creations did not wait on the lock of user_tokens (${rows[0].n} waiting)`);
      await sleep(20);
    }
  }
  let releaseBody!: () => void;
  const bodyReleased = new Promise<void>((resolve) => (releaseBody = resolve));
  const slowKey = 'slow-0';
  const slowValue = `slow-value-${Date.now()}`;
  const slow = call({
    port,
    agent: slowAgent,
      token,
      kind: 'slow',
      method: 'POST',
      path: `/user/${slowUser}/settings/${slowKey}`,
      body: { [slowKey]: slowValue },
      writes: { type: 'setting', userId: slowUser, key: slowKey, value: slowValue },
    holdBodyUntil: bodyReleased,
    timeoutMs: 30_000,
  });
  held.push(followUp(slowAgent, slow, BLOCKED));
  await sleep(200); // the headers and half the body have long arrived

  // SIGTERM while load requests are under way too (their connections are busy, not idle).
  const busyUntil = Date.now() + 2000;
  while (pending < 2 && Date.now() < busyUntil) await new Promise((resolve) => setImmediate(resolve));
  killedAt = Date.now();
  service.child.kill('SIGTERM');
  await sleep(400);
  releaseBody();
  await sleep(200);
  if (lock) {
    await lock.query('rollback');
    await lock.end();
    f.lock = undefined;
  }

  const forced = setTimeout(() => service.child.kill('SIGKILL'), 30_000);
  const exit = await service.exited;
  clearTimeout(forced);
  stop = true;
  await Promise.all(loops);
  const heldOutcomes = await Promise.all(held);
  const followUpOutcomes = await Promise.all(followUps);
  for (const agent of agents) agent.destroy();

  const run: Run = { backend, t0, killedAt, exit, outcomes: [...outcomes, ...heldOutcomes, ...followUpOutcomes], held: heldOutcomes, exhausted, firstOutput: service.output() };

  // The same database, a new process: what is there now?
  let second: Service;
  try {
    second = await startService(env);
    f.services.push(second);
  } catch (err) {
    run.restartError = (err as Error).message;
    return run;
  }
  try {
    const token2 = await login(second.port);
    const agent = new http.Agent({ keepAlive: false });
    run.settings = new Map();
    for (const id of users) {
      const res = await call({ port: second.port, agent, token: token2, method: 'GET', path: `/user/${id}/settings` });
      if (res.status !== 200) throw new Error(`GET /user/${id}/settings: ${res.status ?? res.error} ${res.body ?? ''}`);
      run.settings.set(id, res.json as Record<string, unknown>);
    }
    const res = await call({ port: second.port, agent, token: token2, method: 'GET', path: '/user/me/token' });
    if (res.status !== 200) throw new Error(`GET /user/me/token: ${res.status ?? res.error} ${res.body ?? ''}`);
    run.tokens = new Set((res.json as { name: string }[]).map((t) => t.name));
  } catch (err) {
    run.restartError = (err as Error).message;
  }
  await stopService(second);
  return run;
}

function isPresent(run: Run, o: Outcome): boolean {
  const w = o.writes!;
  if (w.type === 'token') return run.tokens!.has(w.name);
  return run.settings!.get(w.userId)?.[w.key] === w.value;
}

function isUnavailable(o: Outcome): boolean {
  return o.status === 503 && (o.json as { code?: string } | undefined)?.code === 'unavailable';
}

/**
 * The request ids the service logged as answered before it logged "shutting down": the order of
 * its own log lines, not the clock. The embedded database runs on the event loop, so the signal
 * may be handled a hundred milliseconds after it was sent; an answer that went out before then
 * was not in flight at the shutdown (its connection stays open, and a request that follows on it
 * gets the 503).
 */
function answeredBeforeShutdown(run: Run): Set<string> {
  const ids = new Set<string>();
  for (const raw of run.firstOutput.split('\n')) {
    let line: { msg?: unknown; req?: { id?: unknown } } | undefined;
    try {
      line = JSON.parse(raw) as typeof line;
    } catch {
      continue;
    }
    if (typeof line?.msg === 'string' && line.msg.startsWith('shutting down')) break;
    if (typeof line?.req?.id === 'string') ids.add(line.req.id);
  }
  return ids;
}

function inFlight(run: Run): Outcome[] {
  const before = answeredBeforeShutdown(run);
  const guessed = run.outcomes.filter(
    (o) =>
      o.kind === 'write' &&
      o.sent !== undefined &&
      o.sent <= run.killedAt - IN_FLIGHT_MARGIN_MS &&
      !(o.responded !== undefined && o.responded <= run.killedAt) &&
      !before.has(String(o.headers?.['x-request-id'])),
  );
  return [...run.held, ...guessed];
}

const list = (run: Run, outcomes: Outcome[], max = 12) =>
  outcomes.length === 0
    ? 'none'
    : `${outcomes.length}, e.g.:\n  ${outcomes
        .slice(0, max)
        .map((o) => describeOutcome(o, run.t0))
        .join('\n  ')}\n(SIGTERM at +${run.killedAt - run.t0}ms, exit at +${run.exit.at - run.t0}ms)`;

describe.each<Backend>(['postgres', 'pglite'])('SIGTERM under keep-alive load (%s)', (backend) => {
  const f: Fixture = { services: [] };
  let run: Run;

  beforeAll(async () => {
    run = f.run = await scenario(backend, f);
    dumpRun(`sigterm-${backend}`, run);
  }, 120_000);

  afterAll(async () => {
    await f.lock?.end().catch(() => undefined);
    for (const s of f.services) await stopService(s);
    await killAllServices();
    await f.cluster?.destroy();
    if (f.dataDir) fs.rmSync(f.dataDir, { recursive: true, force: true });
  });

  it('exits with code 0', () => {
    expect({ code: run.exit.code, signal: run.exit.signal }).toEqual({ code: 0, signal: null });
  });

  it('acknowledged writes before SIGTERM', () => {
    expect(run.outcomes.filter((o) => ok(o) && o.end < run.killedAt).length).toBeGreaterThan(20);
  });

  it('answers each request with a 2xx, a 503 `unavailable` with Connection: close, or a socket error', () => {
    const bad = run.outcomes.filter((o) => {
      if (o.error) return !SOCKET_ERROR.test(o.error);
      if (ok(o)) return false;
      return !(isUnavailable(o) && o.headers?.connection === 'close');
    });
    expect(list(run, bad)).toBe('none');
  });

  it('takes no request that arrives after SIGTERM (503 `unavailable` with Connection: close, or no connection)', () => {
    const late = run.outcomes.filter((o) => o.start >= run.killedAt + ARRIVED_AFTER_MARGIN_MS && !run.held.includes(o));
    const taken = late.filter((o) => !(o.error ? SOCKET_ERROR.test(o.error) : isUnavailable(o) && o.headers?.connection === 'close'));
    expect(run.exhausted === 0 ? list(run, taken) : `${run.exhausted} clients wrote all their keys after SIGTERM; ${list(run, taken)}`).toBe('none');
  });

  it('answers the requests in flight at SIGTERM (not reset), with Connection: close', () => {
    const bad = inFlight(run).filter((o) => o.error !== undefined || o.status === undefined || o.headers?.connection !== 'close');
    expect(list(run, bad)).toBe('none');
  });

  if (backend === 'postgres') {
    it('finishes the writes in flight inside the database (2xx)', () => {
      const blocked = run.held.filter((o) => o.kind === 'blocked');
      expect(blocked).toHaveLength(BLOCKED);
      expect(list(run, blocked.filter((o) => !ok(o)))).toBe('none');
    });
  }

  it('starts again on the same database', () => {
    expect(run.restartError).toBeUndefined();
  });

  it('keeps every acknowledged (2xx) write', () => {
    expect(run.settings && run.tokens).toBeTruthy();
    const missing = run.outcomes.filter((o) => o.writes && ok(o) && !isPresent(run, o));
    expect(list(run, missing)).toBe('none');
  });

  it('commits no write that got a 503 or a socket error', () => {
    expect(run.settings && run.tokens).toBeTruthy();
    const refused = run.outcomes.filter((o) => o.writes && !ok(o));
    const committed = refused.filter((o) => isPresent(run, o));
    expect(list(run, committed)).toBe('none');
  });
});
