import http from 'node:http';
import { startCluster, type Cluster } from '../helpers/pg-cluster';
import { baseEnv, call, createUsers, describeOutcome, dumpRun, isUnavailable, killAllServices, listOutcomes, login, ok, settingWrite, sleep, startService, stopService, type LogLine, type Outcome, type Service } from './harness';

/**
 * The database freezes (SIGSTOP to the postmaster and every backend: the sockets stay open and
 * nothing answers) under load, and thaws (SIGCONT). A frozen database is an outage, not a bug:
 * every request ends within the connection wait and the statement timeout as `503 unavailable`
 * with Retry-After, never 500 nor no answer; `/readyz` answers 503 within its own second; the
 * service recovers by itself once the database answers again.
 */

const ACQUIRE_MS = 2000;
const STATEMENT_MS = 2000;
/** The longest a request may take: a connection wait, a query's timeout (statement + 1 s), and a generous margin for a loaded machine. */
const LONGEST_MS = ACQUIRE_MS + STATEMENT_MS + 1000 + 5000;
const FROZEN_MS = 8000;
/** /readyz waits one second for the database; the margin is the machine's. */
const READY_LIMIT_MS = 4000;
const RECOVERY_LIMIT_MS = 10_000;

interface Run {
  outcomes: Outcome[];
  ready: Outcome[];
  t0: number;
  frozen: number;
  thawed: number;
  lines: LogLine[];
  serviceExitedEarly?: string;
}

let cluster: Cluster | undefined;
let service: Service | undefined;
let run: Run;

beforeAll(async () => {
  cluster = await startCluster();
  service = await startService(
    baseEnv({
      DATABASE_URL: cluster.url,
      DATA_DIR: `${cluster.dir}/service-data`,
      DATABASE_POOL_SIZE: '4',
      DATABASE_ACQUIRE_TIMEOUT: `${ACQUIRE_MS}ms`,
      DATABASE_STATEMENT_TIMEOUT: `${STATEMENT_MS}ms`,
    }),
  );
  const port = service.port;
  const token = await login(port);
  const users = await createUsers(port, token, 'frozen', 4);

  const outcomes: Outcome[] = [];
  const ready: Outcome[] = [];
  const t0 = Date.now();
  let stop = false;
  const agent = new http.Agent({ keepAlive: false });
  // Longer than any answer should take: a request that hangs shows as one, not as a client timeout.
  const timeoutMs = 30_000;

  const reader = async () => {
    while (!stop) {
      outcomes.push(await call({ port, agent, token, timeoutMs, kind: 'read', method: 'GET', path: '/user/me' }));
      await sleep(20);
    }
  };
  const writer = async (loop: string, userIds: string[]) => {
    for (let n = 0; !stop; n++) {
      const w = settingWrite(userIds, loop, n);
      if (!w) return;
      outcomes.push(await call({ port, agent, token, timeoutMs, kind: 'write', method: 'POST', path: `/user/${w.userId}/settings/${w.key}`, body: { [w.key]: w.value }, writes: { type: 'setting', ...w } }));
      await sleep(20);
    }
  };
  // More loops than connections: some wait for one.
  const loops = [reader(), reader(), reader(), writer('a', users.slice(0, 2)), writer('b', users.slice(2)), writer('c', users.slice(0, 2).reverse())];

  let frozen = 0;
  let thawed = 0;
  try {
    await sleep(1500);
    frozen = Date.now();
    cluster.signalAll('SIGSTOP');
    // /readyz, a second into the freeze and again later.
    await sleep(1000);
    ready.push(await call({ port, agent, timeoutMs, kind: 'ready', method: 'GET', path: '/readyz' }));
    await sleep(FROZEN_MS - 1000 - 3000);
    ready.push(await call({ port, agent, timeoutMs, kind: 'ready', method: 'GET', path: '/readyz' }));
    await sleep(Math.max(0, frozen + FROZEN_MS - Date.now()));
  } finally {
    cluster.signalAll('SIGCONT');
    thawed = Date.now();
  }
  try {
    const deadline = thawed + 20_000;
    while (Date.now() < deadline && !outcomes.some((o) => o.start >= thawed && ok(o))) await sleep(50);
    await sleep(1000);
  } finally {
    stop = true;
    await Promise.allSettled(loops);
  }
  run = {
    outcomes,
    ready,
    t0,
    frozen,
    thawed,
    lines: [...service.lines],
    serviceExitedEarly: service.exit ? `the service exited during the run: code ${service.exit.code}, signal ${service.exit.signal}` : undefined,
  };
  dumpRun('frozen', run);
}, 180_000);

afterAll(async () => {
  await stopService(service);
  await killAllServices();
  await cluster?.destroy();
});

const show = (list: Outcome[]) => listOutcomes(list, run.t0, `frozen at +${run.frozen - run.t0}ms, thawed at +${run.thawed - run.t0}ms`);
const unavailable = isUnavailable;

describe('the database freezes under load and thaws', () => {
  it('keeps the service running', () => {
    expect(run.serviceExitedEarly).toBeUndefined();
  });

  it('answers every request (no request left without an answer)', () => {
    const failed = run.outcomes.filter((o) => o.error);
    expect(failed.length === 0 ? 'none' : show(failed)).toBe('none');
  });

  it('answers no 500, and 5xx only as 503 `unavailable` with Retry-After', () => {
    const bad = run.outcomes.filter((o) => o.status !== undefined && o.status >= 500 && !unavailable(o));
    expect(bad.length === 0 ? 'none' : show(bad)).toBe('none');
  });

  it('answers 503 while the database is frozen', () => {
    const during = run.outcomes.filter((o) => o.start >= run.frozen && o.end <= run.thawed);
    expect(during.some(unavailable) ? 'some 503' : `no 503 during the freeze; requests then: ${show(during)}`).toBe('some 503');
  });

  it(`answers each request within the connection wait and the statement timeout (${LONGEST_MS} ms with a margin)`, () => {
    const slow = run.outcomes.filter((o) => o.end - o.start > LONGEST_MS);
    expect(slow.length === 0 ? 'none' : show(slow)).toBe('none');
  });

  it(`answers /readyz 503 within ${READY_LIMIT_MS} ms while frozen`, () => {
    expect(run.ready).toHaveLength(2);
    for (const r of run.ready) {
      expect(`${describeOutcome(r, run.t0)}: ${unavailable(r) && r.end - r.start <= READY_LIMIT_MS ? 'in time' : `took ${r.end - r.start} ms`}`).toMatch(/in time$/);
    }
  });

  it('logs the freeze without stack traces (503 access lines carry none) and no line at level >= 50', () => {
    const bad = run.lines.filter((l) => (l.json?.time ?? l.at) >= run.frozen && ((l.json?.level ?? 0) >= 50 || /"stack"|^\s+at /.test(l.raw)));
    expect(bad.length === 0 ? 'none' : `${bad.length} lines, e.g.:\n  ${bad.slice(0, 5).map((l) => l.raw.slice(0, 400)).join('\n  ')}`).toBe('none');
    expect(run.lines.filter((l) => l.json?.msg === 'database unreachable').length).toBeGreaterThanOrEqual(1);
  });

  it(`answers a 2xx within ${RECOVERY_LIMIT_MS / 1000} s of the thaw`, () => {
    const first = run.outcomes.filter((o) => o.start >= run.thawed && ok(o)).sort((a, b) => a.end - b.end)[0];
    const late = first ? first.end - run.thawed : Infinity;
    expect(late <= RECOVERY_LIMIT_MS ? 'in time' : `first 2xx ${first ? `${late} ms` : 'never'} after the thaw: ${show(run.outcomes.filter((o) => o.start >= run.thawed))}`).toBe('in time');
  });
});
