import http from 'node:http';
import { startCluster, type Cluster } from '../helpers/pg-cluster';
import { baseEnv, call, createUsers, dumpRun, killAllServices, login, sleep, startService, stopService, tempDir, type Service } from './harness';
import { WebhookSink, type WebhookCopy } from './webhook-sink';
import { WEBHOOK_LEASE_MS } from '../../src/webhooks/sender';

/**
 * A SIGKILL during webhook delivery (issue 23), on Postgres and on the embedded database: the
 * receiver holds its answers, so the instance is killed while it has events in flight at the
 * receiver and none answered; a supervisor starts it again on the same database. Every event
 * arrives, none is lost: the copies the killed instance never got an answer for are sent again
 * once their lease ran out, with the same `webhook-id`, and each event is delivered (answered
 * 2xx) once.
 */

const EVENTS = 6;
/** How long the test waits for every event after the restart. */
const REDELIVERY_MS = 120_000;
/** Allowed beyond the lease for the restart (a first start on a loaded machine) and the next claim. */
const PICKUP_MARGIN_MS = 45_000;

interface Run {
  t0: number;
  killedAt: number;
  inFlightAtKill: number;
  restartedAt: number;
  allAcceptedAt?: number;
  copies: WebhookCopy[];
  deliveries?: { id: string; event_id: string; status: string; attempts: number }[];
  error?: string;
}

describe.each(['postgres', 'embedded'] as const)('webhooks: SIGKILL during delivery (%s)', (kind) => {
  let cluster: Cluster | undefined;
  let first: Service | undefined;
  let again: Service | undefined;
  const sink = new WebhookSink();
  const names = Array.from({ length: EVENTS }, (_, i) => `hook-kill-${kind}-${i}`);
  let run: Run;

  beforeAll(async () => {
    await sink.start();
    let database: Record<string, string>;
    if (kind === 'postgres') {
      cluster = await startCluster();
      database = { DATABASE_URL: cluster.url, DATA_DIR: `${cluster.dir}/service` };
    } else {
      database = { DATA_DIR: tempDir('webhooks-sigkill') };
    }
    const env = baseEnv({ ...database, WEBHOOK_ALLOW_HTTP: '1', WEBHOOK_ALLOW_PRIVATE: '1' });
    first = await startService(env);
    run = { t0: Date.now(), killedAt: 0, inFlightAtKill: 0, restartedAt: 0, copies: sink.copies };
    const agent = new http.Agent({ keepAlive: false });
    try {
      const token = await login(first.port);
      const made = await call({ port: first.port, agent, token, method: 'POST', path: '/webhook', body: { url: sink.url('/hook'), events: ['user.created'] } });
      if (made.status !== 201) throw new Error(`POST /webhook: ${made.status ?? made.error} ${made.body ?? ''}`);
      const hook = made.json as { id: string; secret: string };
      sink.trust('/hook', hook.secret);

      // Every answer held: the killed instance never learns that a copy arrived.
      sink.hold();
      await createUsers(first.port, token, `hook-kill-${kind}`, EVENTS);
      const deadline = Date.now() + 60_000;
      let firstInFlight = 0;
      // Kill once several are in flight (or a moment after the first: the sender may send one endpoint's events a few at a time).
      while (sink.inFlight() < Math.min(EVENTS, 3) && !(firstInFlight && Date.now() - firstInFlight > 3000)) {
        if (Date.now() > deadline) throw new Error(`no event in flight at the receiver within 60 s (${sink.copies.length} copies)`);
        if (first.exit) throw new Error(`the service exited:\n${first.output()}`);
        if (!firstInFlight && sink.inFlight() > 0) firstInFlight = Date.now();
        await sleep(20);
      }
      run.inFlightAtKill = sink.inFlight();
      run.killedAt = Date.now();
      first.child.kill('SIGKILL');
      await first.exited;
      // The kernel closed its connections as it died: wait until the receiver saw every one go.
      const closed = Date.now() + 10_000;
      while (sink.inFlight() > 0 && Date.now() < closed) await sleep(50);
      sink.release();

      again = await startService(env);
      run.restartedAt = Date.now();
      const done = Date.now() + REDELIVERY_MS;
      const acceptedNames = () => new Set(sink.accepted('/hook').map((c) => (c.data.user as { name?: string } | undefined)?.name));
      while (!names.every((n) => acceptedNames().has(n))) {
        if (Date.now() > done) throw new Error(`not every event delivered ${REDELIVERY_MS / 1000} s after the restart: ${acceptedNames().size} of ${EVENTS}`);
        if (again.exit) throw new Error(`the restarted service exited:\n${again.output()}`);
        await sleep(200);
      }
      run.allAcceptedAt = Date.now();
      await sleep(3000); // a copy sent twice would show by now
      const log = await call({ port: again.port, agent, token: await login(again.port), method: 'GET', path: `/webhook/${hook.id}/delivery?limit=100` });
      if (log.status !== 200) throw new Error(`the delivery log: ${log.status ?? log.error} ${log.body ?? ''}`);
      run.deliveries = log.json as Run['deliveries'];
    } catch (err) {
      run.error = (err as Error).message;
    } finally {
      dumpRun(`webhooks-sigkill-${kind}`, run);
    }
  }, 300_000);

  afterAll(async () => {
    await stopService(again);
    await stopService(first);
    await killAllServices();
    await sink.stop();
    await cluster?.destroy();
  });

  const nameOf = (c: WebhookCopy) => (c.data.user as { name?: string } | undefined)?.name ?? '';

  it('runs the scenario: events in flight at the receiver when the instance was killed', () => {
    expect(run.error).toBeUndefined();
    expect(run.inFlightAtKill).toBeGreaterThanOrEqual(1);
  });

  it('delivers every event once after the restart, each copy signed', () => {
    const accepted = new Map<string, number>();
    for (const c of sink.accepted('/hook')) accepted.set(nameOf(c), (accepted.get(nameOf(c)) ?? 0) + 1);
    expect(Object.fromEntries([...accepted].sort())).toEqual(Object.fromEntries(names.map((n) => [n, 1])));
    expect(sink.copies.filter((c) => !c.verified || c.type !== 'user.created')).toEqual([]);
  });

  it('sends what the killed instance had in flight again, with the same webhook-id', () => {
    const cut = sink.copies.filter((c) => c.cut !== undefined);
    expect(cut.length).toBeGreaterThanOrEqual(run.inFlightAtKill);
    for (const c of cut) expect(sink.accepted('/hook').filter((d) => nameOf(d) === nameOf(c)).map((d) => d.id)).toEqual([c.id]);
    // One webhook-id per event, its own: every copy of an event has it, no two events share one.
    const idsByName = new Map<string, Set<string>>();
    for (const c of sink.copies) idsByName.set(nameOf(c), (idsByName.get(nameOf(c)) ?? new Set()).add(c.id));
    expect([...idsByName.values()].every((ids) => ids.size === 1)).toBe(true);
    expect(new Set(sink.copies.map((c) => c.id)).size).toBe(EVENTS);
  });

  it('sends them again within the lease and a margin of the kill, not hours later', () => {
    expect(run.allAcceptedAt! - run.killedAt).toBeLessThanOrEqual(WEBHOOK_LEASE_MS + PICKUP_MARGIN_MS);
  });

  it("records every delivery as delivered in the endpoint's log, the reclaimed ones with more than one attempt", () => {
    expect(run.deliveries).toHaveLength(EVENTS);
    expect(run.deliveries!.map((d) => d.status)).toEqual(Array(EVENTS).fill('delivered'));
    const cutIds = new Set(sink.copies.filter((c) => c.cut !== undefined).map((c) => c.id));
    const reclaimed = run.deliveries!.filter((d) => [...cutIds].some((id) => id.includes(d.event_id) || id.includes(d.event_id.replaceAll('-', ''))));
    expect(reclaimed.length).toBe(cutIds.size);
    for (const d of reclaimed) expect(d.attempts).toBeGreaterThanOrEqual(2);
  });
});
