import fs from 'node:fs';
import http from 'node:http';
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
  type Outcome,
  type Service,
} from './harness';

/**
 * The embedded database (PGlite in DATA_DIR/pgdata) when the process is SIGKILLed mid-write:
 * the service starts again on the same DATA_DIR (a dead holder's data-directory lock is stale,
 * API.md §5) and every write it acknowledged is there.
 */

const KILL_AFTER_ACKS = 60;
const LOOPS = 3;

interface Run {
  t0: number;
  killedAt: number;
  outcomes: Outcome[];
  restart?: Service;
  restartError?: string;
  settings?: Map<string, Record<string, unknown>>;
  verifyError?: string;
}

let dataDir: string;
let first: Service | undefined;
let run: Run;

beforeAll(async () => {
  dataDir = tempDir('sigkill');
  const env = baseEnv({ DATA_DIR: dataDir });
  first = await startService(env);
  const port = first.port;
  const token = await login(port);
  const users = await createUsers(port, token, 'sigkill', LOOPS * 2);

  const outcomes: Outcome[] = [];
  const t0 = Date.now();
  let killed = false;
  let stop = false;
  const agent = new http.Agent({ keepAlive: false });
  const writer = async (loop: string, userIds: string[]) => {
    for (let n = 0; !stop; n++) {
      const w = settingWrite(userIds, loop, n);
      if (!w) throw new Error(`loop ${loop} ran out of users for unique keys`);
      const o = await call({
        port,
        agent,
        token,
        kind: 'write',
        method: 'POST',
        path: `/user/${w.userId}/settings/${w.key}`,
        body: { [w.key]: w.value },
        writes: { type: 'setting', ...w },
        timeoutMs: 10_000,
      });
      outcomes.push(o);
      if (killed && o.error) return; // the process is gone
      if (Date.now() - t0 > 30_000) throw new Error('the load ran 30 s without reaching the kill');
    }
  };
  const loops = Array.from({ length: LOOPS }, (_, i) => writer(`k${i}`, users.slice(i * 2, i * 2 + 2)));

  let killedAt: number;
  try {
    while (outcomes.filter(ok).length < KILL_AFTER_ACKS) {
      if (first.exit) throw new Error(`the service exited before the kill:\n${first.output()}`);
      if (Date.now() - t0 > 30_000) throw new Error(`no ${KILL_AFTER_ACKS} writes acknowledged in 30 s`);
      await sleep(2);
    }
    await sleep(Math.floor(Math.random() * 10)); // somewhere in the middle of the next writes
    killed = true;
    killedAt = Date.now();
    first.child.kill('SIGKILL');
    await first.exited;
  } finally {
    stop = true;
    await Promise.allSettled(loops);
  }
  await Promise.all(loops);
  run = { t0, killedAt, outcomes };

  try {
    run.restart = await startService(env);
  } catch (err) {
    run.restartError = (err as Error).message;
    dumpRun('sigkill-embedded', run);
    return;
  }
  try {
    const port2 = run.restart.port;
    const token2 = await login(port2);
    const agent2 = new http.Agent({ keepAlive: false });
    run.settings = new Map();
    for (const id of users) {
      const res = await call({ port: port2, agent: agent2, token: token2, method: 'GET', path: `/user/${id}/settings` });
      if (res.status !== 200) throw new Error(`GET /user/${id}/settings: ${res.status ?? res.error} ${res.body ?? ''}`);
      run.settings.set(id, res.json as Record<string, unknown>);
    }
  } catch (err) {
    run.verifyError = (err as Error).message;
  }
  dumpRun('sigkill-embedded', { ...run, restart: run.restart && { port: run.restart.port, pid: run.restart.pid } });
}, 120_000);

afterAll(async () => {
  await stopService(run?.restart);
  await stopService(first);
  await killAllServices();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('SIGKILL on the embedded database mid-load', () => {
  it('acknowledges writes until the kill', () => {
    const before = run.outcomes.filter((o) => o.end < run.killedAt);
    const bad = before.filter((o) => !(ok(o) && o.status === 204));
    expect(bad.map((o) => describeOutcome(o, run.t0))).toEqual([]);
    expect(run.outcomes.filter(ok).length).toBeGreaterThanOrEqual(KILL_AFTER_ACKS);
  });

  it('starts again on the same DATA_DIR', () => {
    expect(run.restartError).toBeUndefined();
  });

  it('keeps every acknowledged write', () => {
    expect(run.verifyError).toBeUndefined();
    expect(run.settings).toBeDefined();
    const acked = run.outcomes.filter((o) => ok(o) && o.writes?.type === 'setting');
    const missing = acked.filter((o) => {
      const w = o.writes as { userId: string; key: string; value: string };
      return run.settings!.get(w.userId)?.[w.key] !== w.value;
    });
    expect(missing.map((o) => describeOutcome(o, run.t0))).toEqual([]);
  });
});
