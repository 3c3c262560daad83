import { DatabaseAvailability, isDatabaseUnavailable } from '../../src/db/availability';
import { logCapture } from '../helpers/log-capture';

describe('isDatabaseUnavailable', () => {
  it('tells an unreachable database from bugs and bad input', () => {
    const down = [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5999'), { code: 'ECONNREFUSED' }),
      new Error('Connection terminated unexpectedly'),
      Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      Object.assign(new Error('the database system is starting up'), { code: '57P03' }),
      Object.assign(new Error('connection failure'), { code: '08006' }),
      Object.assign(new Error('Knex: Timeout acquiring a connection.'), { name: 'KnexTimeoutError' }),
      // pg-pool's connection wait (DATABASE_ACQUIRE_TIMEOUT), a new connection's handshake, a query unanswered (a frozen server).
      new Error('timeout exceeded when trying to connect'),
      new Error('Connection terminated due to connection timeout'),
      new Error('Query read timeout'),
      new AggregateError([Object.assign(new Error('a'), { code: 'ECONNREFUSED' }), Object.assign(new Error('b'), { code: 'ECONNREFUSED' })]),
    ];
    const notDown = [
      new Error('column "x" does not exist'),
      Object.assign(new Error('duplicate key'), { code: '23505' }),
      // statement_timeout: a 503 of its own, not an outage.
      Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }),
      Object.assign(new Error('invalid byte sequence'), { code: '22021' }),
      undefined,
      'a string',
    ];
    for (const err of down) expect(isDatabaseUnavailable(err)).toBe(true);
    for (const err of notDown) expect(isDatabaseUnavailable(err)).toBe(false);
  });
});

describe('DatabaseAvailability', () => {
  it('logs an outage once when it starts and once when a probe finds the database back', async () => {
    const { log, lines } = logCapture();
    let up = false;
    const availability = new DatabaseAvailability(async () => {
      if (!up) throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
    }, log, 20);
    try {
      const refused = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
      for (let i = 0; i < 50; i++) expect(availability.failed(refused)).toBe(true);
      expect(availability.failed(new Error('a bug'))).toBe(false);
      expect(availability.isDown).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
      up = true;
      for (let i = 0; i < 50 && availability.isDown; i++) await new Promise((r) => setTimeout(r, 10));
      expect(availability.isDown).toBe(false);
      expect(lines.map((l) => [l.level, l.msg])).toEqual([
        [40, 'database unreachable'],
        [30, 'database reachable again'],
      ]);
    } finally {
      availability.stop();
    }
  });
});
