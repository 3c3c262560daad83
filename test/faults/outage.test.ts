import http from 'node:http';
import pg from 'pg';
import { startCluster, type Cluster } from '../helpers/pg-cluster';
import {
  baseEnv,
  call,
  createUsers,
  isUnavailable,
  listOutcomes,
  dumpRun,
  killAllServices,
  login,
  ok,
  settingWrite,
  sleep,
  startService,
  stopService,
  type LogLine,
  type Outcome,
  type Service,
} from './harness';

/**
 * The database goes away under load and comes back (API.md §0, "The database unreachable"):
 * every route that needs it answers 503 `unavailable` with Retry-After, the service recovers by
 * itself, the outage is logged once when it starts and once when it ends, and nothing that was
 * acknowledged is lost.
 */

const OUTAGE_MS = 3000;
const RECOVERY_LIMIT_MS = 5000;

interface Run {
  outcomes: Outcome[];
  t0: number;
  /** pg_ctl stop -m immediate was called / returned. */
  downCalled: number;
  down: number;
  /** pg_ctl start returned: Postgres accepts connections again. */
  up: number;
  end: number;
  lines: LogLine[];
  settings: Map<string, unknown>;
  tokens: Set<string>;
  serviceExitedEarly?: string;
}

let cluster: Cluster | undefined;
let service: Service | undefined;
let run: Run;

const settingId = (userId: string, key: string) => `${userId}/${key}`;

beforeAll(async () => {
  cluster = await startCluster();
  service = await startService(baseEnv({ DATABASE_URL: cluster.url, DATA_DIR: `${cluster.dir}/service-data` }));
  const port = service.port;
  const token = await login(port);
  const users = await createUsers(port, token, 'outage', 8);

  const outcomes: Outcome[] = [];
  const t0 = Date.now();
  let stop = false;
  const agent = new http.Agent({ keepAlive: false });

  const reader = async () => {
    while (!stop) {
      outcomes.push(await call({ port, agent, token, kind: 'read', method: 'GET', path: '/user/me' }));
      await sleep(15);
    }
  };
  const writer = async (loop: string, userIds: string[], withTokens: boolean) => {
    for (let n = 0; !stop; n++) {
      if (withTokens && n % 5 === 4) {
        const name = `${loop}-token-${n}`;
        outcomes.push(await call({ port, agent, token, kind: 'token', method: 'POST', path: '/user/me/token', body: { name }, writes: { type: 'token', name } }));
      } else {
        const w = settingWrite(userIds, loop, n);
        if (!w) return; // this loop's users are full (a very long recovery): the others go on
        outcomes.push(
          await call({
            port,
            agent,
            token,
            kind: 'write',
            method: 'POST',
            path: `/user/${w.userId}/settings/${w.key}`,
            body: { [w.key]: w.value },
            writes: { type: 'setting', ...w },
          }),
        );
      }
      await sleep(15);
    }
  };
  const loops = [reader(), writer('a', users.slice(0, 4), true), writer('b', users.slice(4), false)];

  let downCalled: number, down: number, up: number;
  try {
    await sleep(1500);
    downCalled = Date.now();
    await cluster.stop('immediate');
    down = Date.now();
    await sleep(OUTAGE_MS);
    await cluster.start();
    up = Date.now();
    // Keep the load until a request made after Postgres is back succeeds, then a little longer.
    const deadline = up + 15_000;
    while (Date.now() < deadline && !outcomes.some((o) => o.start >= up && ok(o))) await sleep(50);
    await sleep(1000);
  } finally {
    stop = true;
    await Promise.allSettled(loops);
  }
  await Promise.all(loops);
  const end = Date.now();

  // What is in the database now, read directly (whatever state the service is in).
  const client = new pg.Client({ connectionString: cluster.url });
  client.on('error', () => undefined);
  await client.connect();
  const settings = new Map<string, unknown>();
  const tokens = new Set<string>();
  try {
    const s = await client.query<{ user_id: string; key: string; value: unknown }>('select user_id, key, value from user_settings');
    for (const row of s.rows) settings.set(settingId(row.user_id, row.key), row.value);
    const t = await client.query<{ name: string }>(`select name from user_tokens where kind = 'api'`);
    for (const row of t.rows) tokens.add(row.name);
  } finally {
    await client.end();
  }

  run = {
    outcomes,
    t0,
    downCalled,
    down,
    up,
    end,
    lines: [...service.lines],
    settings,
    tokens,
    serviceExitedEarly: service.exit ? `the service exited during the run: code ${service.exit.code}, signal ${service.exit.signal}` : undefined,
  };
  dumpRun('outage', run);
}, 120_000);

afterAll(async () => {
  await stopService(service);
  await killAllServices();
  await cluster?.destroy();
});

const show = (list: Outcome[]) => listOutcomes(list, run.t0, `Postgres stopped at +${run.downCalled - run.t0}..+${run.down - run.t0}ms, back at +${run.up - run.t0}ms`);

describe('the database stops under load and comes back', () => {
  it('keeps the service running', () => {
    expect(run.serviceExitedEarly).toBeUndefined();
  });

  it('answers every request (no connection-level failures)', () => {
    const failed = run.outcomes.filter((o) => o.error);
    expect(failed.length === 0 ? 'none' : show(failed)).toBe('none');
  });

  it('answers no 500', () => {
    const bad = run.outcomes.filter((o) => o.status === 500);
    expect(bad.length === 0 ? 'none' : show(bad)).toBe('none');
  });

  it('answers 5xx only as 503 code `unavailable` with a Retry-After header', () => {
    const bad = run.outcomes.filter(
      (o) =>
        o.status !== undefined &&
        o.status >= 500 &&
        !isUnavailable(o),
    );
    expect(bad.length === 0 ? 'none' : show(bad)).toBe('none');
  });

  it('answers 503 while Postgres is down', () => {
    const during = run.outcomes.filter((o) => o.start >= run.down && o.end <= run.up);
    const unavailable = during.filter((o) => o.status === 503);
    expect(unavailable.length > 0 ? 'some 503' : `no 503 answered during the outage; requests made then: ${show(during)}`).toBe('some 503');
  });

  it(`answers a 2xx within ${RECOVERY_LIMIT_MS / 1000} s of Postgres being back`, () => {
    const after = run.outcomes.filter((o) => o.start >= run.up && ok(o)).sort((a, b) => a.end - b.end);
    const first = after[0];
    const late = first ? first.end - run.up : Infinity;
    expect(
      late <= RECOVERY_LIMIT_MS
        ? 'in time'
        : `first 2xx ${first ? `${late} ms` : 'never'} after Postgres was back; requests after it was back: ${show(run.outcomes.filter((o) => o.start >= run.up))}`,
    ).toBe('in time');
  });

  it('keeps every acknowledged write', () => {
    const acked = run.outcomes.filter((o) => ok(o) && o.writes);
    expect(acked.length).toBeGreaterThan(20);
    const missing = acked.filter((o) => {
      const w = o.writes!;
      if (w.type === 'token') return !run.tokens.has(w.name);
      return run.settings.get(settingId(w.userId, w.key)) !== w.value;
    });
    expect(missing.length === 0 ? 'none' : `acknowledged writes missing from the database: ${show(missing)}`).toBe('none');
  });

  it('logs the outage once when it starts ("database unreachable", warn)', () => {
    const lines = run.lines.filter((l) => l.json?.msg === 'database unreachable');
    expect(lines.map((l) => l.json?.level)).toEqual([40]);
    expect(lines[0].json!.time ?? lines[0].at).toBeGreaterThanOrEqual(run.downCalled - 50);
  });

  it('logs once when it ends ("database reachable again")', () => {
    const lines = run.lines.filter((l) => l.json?.msg === 'database reachable again');
    expect(lines).toHaveLength(1);
    const unreachable = run.lines.find((l) => l.json?.msg === 'database unreachable');
    expect(unreachable).toBeDefined();
    expect(lines[0].json!.time ?? lines[0].at).toBeGreaterThanOrEqual(unreachable!.json!.time ?? unreachable!.at);
    expect(lines[0].json!.time ?? lines[0].at).toBeGreaterThanOrEqual(run.down);
  });

  it('logs no per-request errors during the outage (no line at level >= 50)', () => {
    const errors = run.lines.filter((l) => (l.json?.time ?? l.at) >= run.downCalled && (l.json?.level ?? 0) >= 50);
    expect(
      errors.length === 0
        ? 'none'
        : `${errors.length} lines at level >= 50, e.g.:\n  ${errors
            .slice(0, 5)
            .map((l) => l.raw.slice(0, 400))
            .join('\n  ')}`,
    ).toBe('none');
  });
});
