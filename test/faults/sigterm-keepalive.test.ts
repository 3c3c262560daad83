import fs from 'node:fs';
import http from 'node:http';
import { startCluster, type Cluster } from '../helpers/pg-cluster';
import { baseEnv, call, describeOutcome, killAllServices, login, sleep, startService, stopService, tempDir, type Exit, type Outcome, type Service } from './harness';

/**
 * SIGTERM across back-to-back requests on kept-alive connections (docs/operations.md, "Shutdown
 * and deploys"; issue 21 item 5): each client sends its next request on its own keep-alive
 * connection the moment the previous answer ends, before, across and after SIGTERM. Every
 * request gets an answer, never a reset: a normal one, or `503 unavailable` with
 * `Connection: close`. A client stops after an answer that says `Connection: close` (its next
 * request would need a new connection, and the listener is closed). No timing is asserted: the
 * counts are what they are however late the signal is handled.
 */

const CLIENTS = 8;
const RESET = /ECONNRESET|EPIPE|socket hang up|response cut/;

type Backend = 'postgres' | 'pglite';

interface Run {
  t0: number;
  killedAt: number;
  exit: Exit;
  outcomes: Outcome[];
}

async function scenario(backend: Backend, f: { cluster?: Cluster; dataDir?: string; services: Service[] }): Promise<Run> {
  f.dataDir = tempDir(`sigterm-keepalive-${backend}`);
  if (backend === 'postgres') f.cluster = await startCluster();
  const env = baseEnv(f.cluster ? { DATABASE_URL: f.cluster.url, DATA_DIR: f.dataDir } : { DATA_DIR: f.dataDir });
  const service = await startService(env);
  f.services.push(service);
  const { port } = service;
  const token = await login(port);
  const agents = Array.from({ length: CLIENTS }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));

  const outcomes: Outcome[] = [];
  let exited = false;
  void service.exited.then(() => (exited = true));
  const t0 = Date.now();
  const loop = async (agent: http.Agent, i: number) => {
    for (let n = 0; !exited; n++) {
      // Reads and writes, so the database is busy (on the embedded one, the event loop too).
      const o =
        n % 2 === 0
          ? await call({ port, agent, token, method: 'GET', path: '/user/me', timeoutMs: 30_000 })
          : await call({ port, agent, token, method: 'POST', path: '/user/me/settings', body: { [`k${i}`]: `v${n}` }, timeoutMs: 30_000 });
      outcomes.push(o);
      if (o.error || o.headers?.connection === 'close') return;
      // Back to back, or after a pause of a few milliseconds (so that some connections are idle,
      // and some about to send, whenever SIGTERM comes).
      if (i % 2 === 1) await sleep(1 + (n % 4));
    }
  };
  const loops = agents.map((agent, i) => loop(agent, i));
  await sleep(1500);
  const killedAt = Date.now();
  service.child.kill('SIGTERM');
  const forced = setTimeout(() => service.child.kill('SIGKILL'), 30_000);
  const exit = await service.exited;
  clearTimeout(forced);
  await Promise.all(loops);
  for (const agent of agents) agent.destroy();
  return { t0, killedAt, exit, outcomes };
}

describe.each<Backend>(['pglite', 'postgres'])('SIGTERM across back-to-back keep-alive requests (%s)', (backend) => {
  const f: { cluster?: Cluster; dataDir?: string; services: Service[] } = { services: [] };
  let run: Run;

  beforeAll(async () => {
    run = await scenario(backend, f);
  }, 120_000);

  afterAll(async () => {
    for (const s of f.services) await stopService(s);
    await killAllServices();
    await f.cluster?.destroy();
    if (f.dataDir) fs.rmSync(f.dataDir, { recursive: true, force: true });
  });

  const show = (os: Outcome[]) => (os.length === 0 ? 'none' : `${os.length}:\n  ${os.map((o) => describeOutcome(o, run.t0)).join('\n  ')}\n(SIGTERM at +${run.killedAt - run.t0}ms)`);

  it('exits with code 0 after serving requests', () => {
    expect({ code: run.exit.code, signal: run.exit.signal }).toEqual({ code: 0, signal: null });
    expect(run.outcomes.filter((o) => o.status === 200).length).toBeGreaterThan(CLIENTS);
  });

  it('resets no request (no ECONNRESET, EPIPE or socket hang up)', () => {
    expect(show(run.outcomes.filter((o) => o.error !== undefined && RESET.test(o.error)))).toBe('none');
  });

  it('answers every request with a 2xx, or 503 unavailable with Connection: close', () => {
    const bad = run.outcomes.filter((o) => {
      if (o.error !== undefined) return true;
      if (o.status !== undefined && o.status >= 200 && o.status < 300) return false;
      return !(o.status === 503 && (o.json as { code?: string } | undefined)?.code === 'unavailable' && o.headers?.connection === 'close');
    });
    expect(show(bad)).toBe('none');
  });

  it('tells every client to close its connection (each one ends with Connection: close)', () => {
    // Every client's loop ends with an answer saying Connection: close (or an error, counted above).
    const closing = run.outcomes.filter((o) => o.headers?.connection === 'close');
    expect(closing.length).toBe(CLIENTS);
  });
});
