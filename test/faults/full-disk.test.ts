import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { baseEnv, call, createUsers, dumpRun, isUnavailable, KEYS_PER_USER, killAllServices, listOutcomes, login, ok, sleep, startService, stopService, type LogLine, type Outcome, type Service } from './harness';
import { mountTmpfs, type Tmpfs } from './tmpfs';

/**
 * The embedded database (DATA_DIR) on a full file system: a small tmpfs of its own, filled with a
 * filler file and freed by deleting it. Two episodes on one service:
 *
 * 1. The disk fills while the WAL has room: a write that needs a new data page fails (SQLSTATE
 *    53100) and answers 503; reads go on (200).
 * 2. The disk fills when the WAL needs a new segment: Postgres PANICs, and PGlite's instance is
 *    dead (the next message spun it forever, the whole process with it). Now every database
 *    request answers 503 at once, /healthz 200, /readyz 503, /metrics 200; the database reopens
 *    in the process once space is back.
 *
 * Each time, writes succeed again within seconds of the space coming back, one log line says the
 * disk is full and one that it has space again, and every acknowledged write is there, in the
 * running service and after a restart on the same directory.
 */

const MOUNT_MB = 192;
const START_LINE = 'the database disk is full: writes answer 503 until space is freed (reads go on where the database can)';
const END_LINE = 'the database disk has space again: writes succeed';
/** A request's longest answer, disk full or not: generous for a loaded machine. */
const LONGEST_MS = 10_000;
const FULL_MS = 5000;
const RECOVERY_LIMIT_MS = 10_000;
const PAGE = 8192;
/** Settings values near the 16 kB limit: each write adds about as much to the WAL. */
const VALUE_CHARS = 15_000;

interface Episode {
  name: string;
  full: number;
  freed: number;
  /** The first write that succeeded after the space came back. */
  recovered?: number;
  probes: Outcome[];
}

interface Run {
  t0: number;
  outcomes: Outcome[];
  episodes: Episode[];
  lines: LogLine[];
  exitedEarly?: string;
  /** Acknowledged writes: user id → key → value. */
  acked: Map<string, Map<string, string>>;
  /** What the service then held, running and after a restart. */
  heldRunning?: Map<string, Record<string, unknown>>;
  heldRestarted?: Map<string, Record<string, unknown>>;
  verifyError?: string;
}

let disk: Tmpfs | undefined;
let service: Service | undefined;
let restarted: Service | undefined;
let run: Run;

const ZERO_PAGE = Buffer.alloc(PAGE);

/**
 * Bytes the WAL can still take without a new segment file: the room after the last written page
 * of the newest segment written to, and whole segments made ahead of it (zero-filled).
 */
function walRoom(pgdata: string): number {
  const dir = path.join(pgdata, 'pg_wal');
  const segments = fs
    .readdirSync(dir)
    .filter((f) => /^[0-9A-F]{24}$/.test(f))
    .sort()
    .reverse();
  let room = 0;
  for (const segment of segments) {
    const buf = fs.readFileSync(path.join(dir, segment));
    for (let off = buf.length - PAGE; off >= 0; off -= PAGE) {
      if (!buf.subarray(off, off + PAGE).equals(ZERO_PAGE)) return room + buf.length - (off + PAGE);
    }
    room += buf.length;
  }
  return room;
}

const value = () => crypto.randomBytes((VALUE_CHARS * 3) / 4).toString('base64');

beforeAll(async () => {
  disk = mountTmpfs('full-disk', MOUNT_MB);
  const dataDir = path.join(disk.dir, 'data');
  const env = baseEnv({ DATA_DIR: dataDir });
  service = await startService(env);
  const port = service.port;
  const token = await login(port);
  const users = await createUsers(port, token, 'disk', 12);
  const agent = new http.Agent({ keepAlive: false });
  const t0 = Date.now();
  const outcomes: Outcome[] = [];
  const acked = new Map<string, Map<string, string>>(users.map((u) => [u, new Map()]));
  const episodes: Episode[] = [];
  let n = 0;
  let stop = false;

  /** One write of a fresh key (of the next user with room), recorded if acknowledged. */
  const write = async (kind: string) => {
    const i = n++;
    const userId = users[Math.floor(i / KEYS_PER_USER)];
    if (!userId) throw new Error('the users ran out of keys');
    const key = `k${i}`;
    const v = value();
    const o = await call({ port, agent, token, kind, method: 'POST', path: `/user/${userId}/settings/${key}`, body: { [key]: v }, writes: { type: 'setting', userId, key, value: v }, timeoutMs: 30_000 });
    outcomes.push(o);
    if (ok(o)) acked.get(userId)!.set(key, v);
    return o;
  };
  const writer = async () => {
    while (!stop) {
      await write('write');
      await sleep(20);
    }
  };
  const reader = async () => {
    while (!stop) {
      outcomes.push(await call({ port, agent, token, kind: 'read', method: 'GET', path: '/user/me', timeoutMs: 30_000 }));
      await sleep(50);
    }
  };
  const probe = async (episode: Episode) => {
    for (const p of ['/healthz', '/readyz', '/metrics']) episode.probes.push(await call({ port, agent, kind: p, method: 'GET', path: p, timeoutMs: 30_000 }));
  };

  /** The disk full for FULL_MS under load, then freed; waits for a write to succeed again. */
  const episode = async (name: string, leaveBytes: number) => {
    const e: Episode = { name, full: 0, freed: 0, probes: [] };
    episodes.push(e);
    stop = false;
    disk!.fill(leaveBytes);
    e.full = Date.now();
    const loops = [writer(), writer(), reader()];
    try {
      await sleep(FULL_MS / 2);
      await probe(e);
      await sleep(Math.max(0, e.full + FULL_MS - Date.now()));
    } finally {
      disk!.free();
      e.freed = Date.now();
    }
    try {
      const deadline = e.freed + 30_000;
      while (Date.now() < deadline && !outcomes.some((o) => o.kind === 'write' && o.start >= e.freed && ok(o))) await sleep(50);
      e.recovered = outcomes.find((o) => o.kind === 'write' && o.start >= e.freed && ok(o))?.end;
      // The end is logged at a commit some seconds after the last refusal: the load goes on till then.
      const ended = () => service!.lines.filter((l) => l.json?.msg === END_LINE && l.at >= e.freed).length > 0;
      while (Date.now() < deadline && !ended()) await sleep(50);
      await sleep(1000);
    } finally {
      stop = true;
      await Promise.allSettled(loops);
    }
  };

  // 1. The WAL has room (a fresh database is early in its first segment): data pages cannot grow.
  await episode('data', 0);

  // 2. Writes until the WAL is near the end of its last segment file, then the disk fills leaving
  // room for data pages but not a new WAL segment: the next segment's creation PANICs.
  const pgdata = path.join(dataDir, 'pgdata');
  for (let room = walRoom(pgdata); room > 300_000; room = walRoom(pgdata)) {
    const batch = room > 2 * 1024 * 1024 ? 16 : 1;
    const res = await Promise.all(Array.from({ length: batch }, () => write('prefill')));
    const bad = res.find((o) => !ok(o));
    if (bad) throw new Error(`a write before the disk filled failed: ${bad.status ?? bad.error} ${bad.body ?? ''}`);
  }
  await episode('wal', 1024 * 1024);

  run = { t0, outcomes, episodes, lines: [...service.lines], acked, exitedEarly: service.exit ? `code ${service.exit.code}, signal ${service.exit.signal}` : undefined };
  try {
    const read = async (p: number, t: string) => {
      const held = new Map<string, Record<string, unknown>>();
      for (const id of users) {
        const res = await call({ port: p, agent, token: t, method: 'GET', path: `/user/${id}/settings` });
        if (res.status !== 200) throw new Error(`GET /user/${id}/settings: ${res.status ?? res.error} ${res.body?.slice(0, 300) ?? ''}`);
        held.set(id, res.json as Record<string, unknown>);
      }
      return held;
    };
    run.heldRunning = await read(port, token);
    await stopService(service);
    restarted = await startService(env);
    run.heldRestarted = await read(restarted.port, await login(restarted.port));
  } catch (err) {
    run.verifyError = (err as Error).message;
  }
  dumpRun('full-disk', { ...run, outcomes: run.outcomes.map((o) => ({ ...o, body: o.body?.slice(0, 200), writes: undefined })), acked: undefined, heldRunning: undefined, heldRestarted: undefined });
}, 300_000);

afterAll(async () => {
  try {
    await stopService(restarted);
    await stopService(service);
    await killAllServices();
  } finally {
    disk?.unmount();
  }
});

const show = (list: Outcome[]) => listOutcomes(list, run.t0, run.episodes.map((e) => `${e.name}: full at +${e.full - run.t0}ms, freed at +${e.freed - run.t0}ms`).join('; '));
const logged = (msg: string) => run.lines.filter((l) => l.json?.msg === msg);
const STOPPED_LINE = 'the embedded database stopped (a PANIC: on a full disk, its WAL could not be written); reopening it on the same directory once there is space';
/**
 * Requests of an episode while its disk was full: all of them for 'data'; for 'wal', from the
 * PANIC on (writes still found room for data pages until the WAL needed a new segment).
 */
const during = (e: Episode, kind: string) => {
  const from = e.name === 'wal' ? (logged(STOPPED_LINE)[0]?.at ?? e.freed) : e.full + 200;
  return run.outcomes.filter((o) => o.kind === kind && o.start >= from && o.end <= e.freed);
};

describe('a full disk under the embedded database', () => {
  it('keeps the service running', () => {
    expect(run.exitedEarly).toBeUndefined();
  });

  it(`answers every request within ${LONGEST_MS} ms (no hang)`, () => {
    const slow = run.outcomes.filter((o) => o.error || o.end - o.start > LONGEST_MS);
    expect(slow.length === 0 ? 'none' : show(slow)).toBe('none');
    const probes = run.episodes.flatMap((e) => e.probes).filter((o) => o.error || o.end - o.start > LONGEST_MS);
    expect(probes.length === 0 ? 'none' : show(probes)).toBe('none');
  });

  it('answers no 500: 5xx only as 503 `unavailable` with Retry-After', () => {
    const bad = run.outcomes.filter((o) => o.status !== undefined && o.status >= 500 && !isUnavailable(o));
    expect(bad.length === 0 ? 'none' : show(bad)).toBe('none');
  });

  it('answers writes 503 while the disk is full (after the PANIC when the WAL is full), 204 or 503 before', () => {
    const early = run.outcomes.filter((o) => o.kind === 'write' && run.episodes.some((e) => o.start >= e.full && o.end <= e.freed) && o.status !== 204 && !isUnavailable(o));
    expect(early.length === 0 ? 'none' : show(early)).toBe('none');
    for (const e of run.episodes) {
      const writes = during(e, 'write');
      expect(`${e.name}: ${writes.length > 0 && writes.every(isUnavailable) ? 'all 503' : show(writes)}`).toBe(`${e.name}: all 503`);
    }
  });

  it('answers reads while the WAL has room; 503 while the stopped database reopens', () => {
    const [data, wal] = run.episodes;
    const reads = during(data!, 'read');
    expect(reads.length > 0 && reads.every((o) => o.status === 200) ? 'all 200' : show(reads)).toBe('all 200');
    const stopped = during(wal!, 'read');
    expect(stopped.length > 0 && stopped.every(isUnavailable) ? 'all 503' : show(stopped)).toBe('all 503');
  });

  it('answers /healthz 200, /metrics 200 and /readyz as the database allows while full', () => {
    const [data, wal] = run.episodes;
    const status = (e: Episode) => e.probes.map((o) => `${o.path} ${o.status ?? o.error}`).join(', ');
    expect(status(data!)).toBe('/healthz 200, /readyz 200, /metrics 200');
    expect(status(wal!)).toBe('/healthz 200, /readyz 503, /metrics 200');
  });

  it(`serves writes again within ${RECOVERY_LIMIT_MS} ms of the space coming back`, () => {
    for (const e of run.episodes) {
      const took = e.recovered === undefined ? 'never' : e.recovered - e.freed;
      expect(`${e.name}: ${typeof took === 'number' && took <= RECOVERY_LIMIT_MS ? 'in time' : took}`).toBe(`${e.name}: in time`);
    }
  });

  it('stops the embedded database on the PANIC and reopens it, each said once', () => {
    const [, wal] = run.episodes;
    expect(logged(STOPPED_LINE).map((l) => l.at >= wal!.full && l.at <= wal!.freed)).toEqual([true]);
    expect(logged('the embedded database reopened')).toHaveLength(1);
  });

  it('logs one line when each full disk starts and one when it ends, and no error or stack trace', () => {
    const at = (msg: string) => logged(msg).map((l) => run.episodes.filter((e) => l.at >= e.full).length - 1);
    expect(at(START_LINE)).toEqual([0, 1]);
    expect(at(END_LINE)).toEqual([0, 1]);
    const errors = run.lines.filter((l) => !l.json || (l.json.level ?? 0) >= 50);
    expect(errors.map((l) => l.raw.slice(0, 300))).toEqual([]);
    // Neither the 503s' access lines nor the background workers' passes that met the full disk.
    const stacks = run.lines.filter((l) => l.raw.includes('"stack"'));
    expect(stacks.map((l) => l.raw.slice(0, 300))).toEqual([]);
  });

  it('keeps every acknowledged write, running and after a restart on the same directory', () => {
    expect(run.verifyError).toBeUndefined();
    const missing = (held: Map<string, Record<string, unknown>> | undefined) => {
      const lost: string[] = [];
      for (const [userId, keys] of run.acked) for (const [key, v] of keys) if (held?.get(userId)?.[key] !== v) lost.push(`${userId}/${key}`);
      return lost;
    };
    const acked = [...run.acked.values()].reduce((sum, keys) => sum + keys.size, 0);
    expect(acked).toBeGreaterThan(100);
    expect(missing(run.heldRunning)).toEqual([]);
    expect(missing(run.heldRestarted)).toEqual([]);
  });
});
