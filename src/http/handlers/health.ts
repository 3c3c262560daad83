import type { Knex } from 'knex';
import type { DatabaseAvailability } from '../../db/availability';
import { UnavailableError } from '../../domain/errors';
import type { Handlers } from '../mount';

/** Probes for orchestrators. */
export function healthHandlers(db: Knex, availability?: DatabaseAvailability): Handlers {
  return {
    healthz: (_req, res) => {
      res.json({ status: 'ok' });
    },

    readyz: async (_req, res) => {
      try {
        await db.raw('select 1');
      } catch (err) {
        availability?.failed(err);
        throw new UnavailableError('database unreachable');
      }
      res.json({ status: 'ok' });
    },
  };
}
