import { Router } from 'express';
import type { Knex } from 'knex';
import type { DatabaseAvailability } from '../db/availability';
import { UnavailableError } from '../domain/errors';

export function healthRoutes(db: Knex, availability?: DatabaseAvailability): Router {
  const router = Router();

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    try {
      await db.raw('select 1');
    } catch (err) {
      availability?.failed(err);
      throw new UnavailableError('database unreachable');
    }
    res.json({ status: 'ok' });
  });

  return router;
}
