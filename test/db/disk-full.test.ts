import { DatabaseAvailability } from '../../src/db/availability';
import { openDatabase } from '../../src/db/database';
import { DiskFullLog, isDiskFull } from '../../src/db/disk-full';
import { logCapture as capture } from '../helpers/log-capture';

const logCapture = () => capture<{ msg: string; level: number; failed_statements?: number }>();
const START = 'the database disk is full: writes answer 503 until space is freed (reads go on where the database can)';
const END = 'the database disk has space again: writes succeed';
const diskFull = () => Object.assign(new Error('could not extend file "base/5/16498": No space left on device'), { code: '53100', severity: 'ERROR' });

describe('isDiskFull', () => {
  it('is SQLSTATE 53100 or ENOSPC, nothing else', () => {
    expect(isDiskFull(diskFull())).toBe(true);
    expect(isDiskFull(Object.assign(new Error('write'), { code: 'ENOSPC' }))).toBe(true);
    for (const other of [Object.assign(new Error('out of memory'), { code: '53200' }), Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), new Error('a bug'), undefined, 'x']) {
      expect(isDiskFull(other)).toBe(false);
    }
  });

  it('is accounted for by the availability (background passes stay quiet), and is no outage', () => {
    const { log, lines } = logCapture();
    const availability = new DatabaseAvailability(async () => undefined, log, 20);
    try {
      expect(availability.accountedFor(diskFull())).toBe(true);
      expect(availability.isDown).toBe(false);
      expect(availability.accountedFor(new Error('a bug'))).toBe(false);
      expect(lines).toEqual([]);
    } finally {
      availability.stop();
    }
  });
});

describe('DiskFullLog', () => {
  it('logs once when the disk fills and once at a commit a quiet while after the last refusal', async () => {
    const { log, lines } = logCapture();
    const state = new DiskFullLog(log, 100);
    for (let i = 0; i < 20; i++) state.failed(diskFull());
    state.failed(new Error('a bug'));
    state.committed(); // a transaction that needed no new space, between refusals: the disk is still full
    expect(state.isFull).toBe(true);
    await new Promise((r) => setTimeout(r, 150));
    state.committed();
    state.committed();
    expect(state.isFull).toBe(false);
    expect(lines.map((l) => [l.level, l.msg, l.failed_statements])).toEqual([
      [40, START, undefined],
      [30, END, 20],
    ]);
  });

  it("hears every connection of a database's pool: a statement refused with 53100", async () => {
    const { log, lines } = logCapture();
    const db = await openDatabase({ dataDir: 'memory://', log });
    try {
      const refuse = `do $$ begin raise exception 'could not extend file' using errcode = 'disk_full'; end $$`;
      for (let i = 0; i < 3; i++) await expect(db.knex.raw(refuse)).rejects.toMatchObject({ code: '53100' });
      await db.knex.transaction(async (trx) => trx.raw('select 1')); // too soon to say it is over
      expect(lines.filter((l) => l.msg === START || l.msg === END).map((l) => l.msg)).toEqual([START]);
    } finally {
      await db.close();
    }
  });
});
