import { Router } from 'express';
import type { Knex } from 'knex';
import { UnavailableError } from '../domain/errors';

export function healthRoutes(db: Knex): Router {
  const router = Router();

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    try {
      await db.raw('select 1');
    } catch {
      throw new UnavailableError('database unreachable');
    }
    res.json({ status: 'ok' });
  });

  return router;
}
