import { Poller } from '../../src/background/poller';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Poller', () => {
  it('runs a pass kickDelayMs after the first kick, gathering the kicks in between, and later kicks never put it off', async () => {
    const passes: number[] = [];
    const poller = new Poller(async () => void passes.push(Date.now()), 60_000, 150);
    poller.start();
    await sleep(30); // the pass start() makes at once
    expect(passes).toHaveLength(1);
    const first = Date.now();
    for (let i = 0; i < 10; i++) {
      poller.kick();
      await sleep(20); // 200 ms of kicks, each within the delay of the one before
    }
    await sleep(250);
    await poller.stop();
    // One pass about 150 ms after the first kick (a delay restarted by each kick would put it at
    // 330 ms, after the last), then one for the kicks that came after it.
    expect(passes.length).toBeGreaterThanOrEqual(2);
    expect(passes[1] - first).toBeGreaterThanOrEqual(140);
    expect(passes[1] - first).toBeLessThan(300);
    expect(passes).toHaveLength(3);
  });

  it('runs a pass at once on a kick without a delay', async () => {
    const passes: number[] = [];
    const poller = new Poller(async () => void passes.push(Date.now()), 60_000);
    poller.start();
    await sleep(30);
    const kicked = Date.now();
    poller.kick();
    await sleep(30);
    await poller.stop();
    expect(passes).toHaveLength(2);
    expect(passes[1] - kicked).toBeLessThan(25);
  });
});
