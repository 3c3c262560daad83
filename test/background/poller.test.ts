import { Poller } from '../../src/background/poller';

/**
 * On Jest's fake clock (timers and Date.now), so the windows are exact however loaded the
 * machine is: `advance` moves time on and lets the passes' promises settle at each timer.
 */
beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());
const advance = (ms: number) => jest.advanceTimersByTimeAsync(ms);

describe('Poller', () => {
  it('runs a pass kickDelayMs after the first kick, gathering the kicks in between, and later kicks never put it off', async () => {
    const passes: number[] = [];
    const poller = new Poller(async () => void passes.push(Date.now()), 60_000, 150);
    poller.start();
    await advance(0); // the pass start() makes at once
    expect(passes).toHaveLength(1);
    const first = Date.now();
    for (let i = 0; i < 10; i++) {
      poller.kick();
      await advance(20); // 200 ms of kicks, each within the delay of the one before
    }
    // One pass 150 ms after the first kick (a delay restarted by each kick would put it at 330
    // ms, after the last), then one 150 ms after the first kick that came after it (at 160 ms;
    // the one at 180 ms does not put it off), and no more.
    expect(passes.map((at) => at - first)).toEqual([0, 150]);
    await advance(150);
    expect(passes.map((at) => at - first)).toEqual([0, 150, 310]);
    await advance(10_000);
    expect(passes).toHaveLength(3);
    await poller.stop();
  });

  it('runs a pass at once on a kick without a delay, and polls every intervalMs', async () => {
    const passes: number[] = [];
    const poller = new Poller(async () => void passes.push(Date.now()), 60_000);
    poller.start();
    await advance(30);
    const kicked = Date.now();
    poller.kick();
    await advance(0);
    expect(passes.map((at) => at - kicked)).toEqual([-30, 0]);
    await advance(60_000);
    expect(passes.map((at) => at - kicked)).toEqual([-30, 0, 60_000]);
    await poller.stop();
  });

  it('runs one pass at a time: a kick during a pass runs another after it, and stop waits for the pass under way', async () => {
    let release: () => void = () => undefined;
    let running = 0;
    let most = 0;
    const passes: number[] = [];
    const poller = new Poller(
      () =>
        new Promise<void>((resolve) => {
          running++;
          most = Math.max(most, running);
          passes.push(Date.now());
          release = () => {
            running--;
            resolve();
          };
        }),
      60_000,
    );
    poller.start();
    await advance(0);
    poller.kick();
    poller.kick();
    await advance(100);
    expect(passes).toHaveLength(1); // still the first
    release();
    await advance(0);
    expect(passes).toHaveLength(2); // the kicks' pass, once
    let stopped = false;
    const stopping = poller.stop().then(() => (stopped = true));
    await advance(0);
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect([passes.length, most]).toEqual([2, 1]);
  });
});
