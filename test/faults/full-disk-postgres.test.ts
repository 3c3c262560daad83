import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { startCluster, type Cluster } from '../helpers/pg-cluster';
import { baseEnv, call, createUsers, dumpRun, isUnavailable, KEYS_PER_USER, killAllServices, listOutcomes, login, ok, sleep, startService, stopService, tempDir, type LogLine, type Outcome, type Service } from './harness';
import { mountTmpfs, type Tmpfs } from './tmpfs';

/**
 * A Postgres server (DATABASE_URL) whose data directory is on a small tmpfs of its own, filled
 * under load and freed: a write that needs a new data page is refused with SQLSTATE 53100 and
 * answers `503 unavailable` with Retry-After; reads, /readyz, /healthz and /metrics answer 200;
 * writes succeed again once the space is back; one log line when it starts, one when it ends;
 * every acknowledged write is kept.
 */

const MOUNT_MB = 128;
const FULL_MS = 5000;
const LONGEST_MS = 10_000;
const RECOVERY_LIMIT_MS = 10_000;
const START_LINE = 'the database disk is full: writes answer 503 until space is freed (reads go on where the database can)';
const END_LINE = 'the database disk has space again: writes succeed';

interface Run {
  t0: number;
  full: number;
  freed: number;
  recovered?: number;
  outcomes: Outcome[];
  probes: Outcome[];
  lines: LogLine[];
  acked: Map<string, string>;
  held?: Map<string, unknown>;
  verifyError?: string;
  exitedEarly?: string;
}

let disk: Tmpfs | undefined;
let cluster: Cluster | undefined;
let service: Service | undefined;
let serviceDir: string | undefined;
let run: Run;

beforeAll(async () => {
  disk = mountTmpfs('full-disk-pg', MOUNT_MB, '0755'); // the server runs as the postgres user
  cluster = await startCluster({ parentDir: disk.dir });
  serviceDir = tempDir('full-disk-pg-service');
  service = await startService(baseEnv({ DATABASE_URL: cluster.url, DATA_DIR: serviceDir }));
  const port = service.port;
  const token = await login(port);
  const users = await createUsers(port, token, 'diskpg', 4);
  const agent = new http.Agent({ keepAlive: false });
  const outcomes: Outcome[] = [];
  const probes: Outcome[] = [];
  const acked = new Map<string, string>();
  const t0 = Date.now();
  let stop = false;
  let n = 0;
  const writer = async () => {
    while (!stop) {
      const i = n++;
      const userId = users[Math.floor(i / KEYS_PER_USER)];
      if (!userId) return;
      const key = `k${i}`;
      const value = crypto.randomBytes(11_000).toString('base64'); // 15 kB: new pages at each write
      const o = await call({ port, agent, token, kind: 'write', method: 'POST', path: `/user/${userId}/settings/${key}`, body: { [key]: value }, timeoutMs: 30_000 });
      outcomes.push(o);
      if (ok(o)) acked.set(`${userId}/${key}`, value);
      await sleep(50);
    }
  };
  const reader = async () => {
    while (!stop) {
      outcomes.push(await call({ port, agent, token, kind: 'read', method: 'GET', path: '/user/me', timeoutMs: 30_000 }));
      await sleep(50);
    }
  };
  const loops = [writer(), writer(), reader()];
  let full = 0;
  let freed = 0;
  try {
    await sleep(500);
    disk.fill(0);
    full = Date.now();
    await sleep(FULL_MS / 2);
    for (const p of ['/healthz', '/readyz', '/metrics']) probes.push(await call({ port, agent, kind: p, method: 'GET', path: p, timeoutMs: 30_000 }));
    await sleep(Math.max(0, full + FULL_MS - Date.now()));
  } finally {
    disk.free();
    freed = Date.now();
  }
  let recovered: number | undefined;
  try {
    const deadline = freed + 30_000;
    const ended = () => service!.lines.some((l) => l.json?.msg === END_LINE);
    while (Date.now() < deadline && !(recovered && ended())) {
      recovered ??= outcomes.find((o) => o.kind === 'write' && o.start >= freed && ok(o))?.end;
      await sleep(50);
    }
  } finally {
    stop = true;
    await Promise.allSettled(loops);
  }
  run = { t0, full, freed, recovered, outcomes, probes, lines: [...service.lines], acked, exitedEarly: service.exit ? `code ${service.exit.code}, signal ${service.exit.signal}` : undefined };
  run.held = new Map();
  for (const userId of users) {
    const res = await call({ port, agent, token, method: 'GET', path: `/user/${userId}/settings` });
    if (res.status !== 200) run.verifyError = `GET /user/${userId}/settings: ${res.status ?? res.error} ${res.body?.slice(0, 300) ?? ''}`;
    else for (const [key, value] of Object.entries(res.json as Record<string, unknown>)) run.held.set(`${userId}/${key}`, value);
  }
  dumpRun('full-disk-postgres', { ...run, acked: undefined, held: undefined, outcomes: outcomes.map((o) => ({ ...o, body: o.body?.slice(0, 200) })) });
}, 180_000);

afterAll(async () => {
  try {
    await stopService(service);
    await killAllServices();
    await cluster?.destroy();
  } finally {
    disk?.unmount();
    if (serviceDir) fs.rmSync(serviceDir, { recursive: true, force: true });
  }
});

const show = (list: Outcome[]) => listOutcomes(list, run.t0, `full at +${run.full - run.t0}ms, freed at +${run.freed - run.t0}ms`);
const during = (kind: string) => run.outcomes.filter((o) => o.kind === kind && o.start >= run.full + 200 && o.end <= run.freed);

describe('a full disk under the Postgres server', () => {
  it('answers every request, within 10 s, and no 500', () => {
    expect(run.exitedEarly).toBeUndefined();
    const bad = [...run.outcomes, ...run.probes].filter((o) => o.error || o.end - o.start > LONGEST_MS || (o.status !== undefined && o.status >= 500 && !isUnavailable(o)));
    expect(bad.length === 0 ? 'none' : show(bad)).toBe('none');
  });

  it('answers writes 503 with Retry-After while full, reads and the probes 200', () => {
    const writes = during('write');
    expect(writes.length > 0 && writes.every(isUnavailable) ? 'all 503' : show(writes)).toBe('all 503');
    const reads = during('read');
    expect(reads.length > 0 && reads.every((o) => o.status === 200) ? 'all 200' : show(reads)).toBe('all 200');
    expect(run.probes.map((o) => `${o.path} ${o.status ?? o.error}`).join(', ')).toBe('/healthz 200, /readyz 200, /metrics 200');
  });

  it(`serves writes again within ${RECOVERY_LIMIT_MS} ms of the space coming back`, () => {
    const took = run.recovered === undefined ? 'never' : run.recovered - run.freed;
    expect(typeof took === 'number' && took <= RECOVERY_LIMIT_MS ? 'in time' : took).toBe('in time');
  });

  it('logs one line when it starts and one when it ends, no error and no stack trace', () => {
    expect(run.lines.filter((l) => l.json?.msg === START_LINE).map((l) => (l.at >= run.full && l.at <= run.freed ? 'while full' : l.at - run.t0))).toEqual(['while full']);
    expect(run.lines.filter((l) => l.json?.msg === END_LINE).map((l) => (l.at >= run.freed ? 'after' : l.at - run.t0))).toEqual(['after']);
    expect(run.lines.filter((l) => !l.json || (l.json.level ?? 0) >= 50 || l.raw.includes('"stack"')).map((l) => l.raw.slice(0, 300))).toEqual([]);
  });

  it('keeps every acknowledged write', () => {
    expect(run.verifyError).toBeUndefined();
    expect(run.acked.size).toBeGreaterThan(5);
    expect([...run.acked].filter(([key, value]) => run.held?.get(key) !== value).map(([key]) => key)).toEqual([]);
  });
});
