import type { DatabaseAvailability } from '../../db/availability';
import type { MaintenanceStore } from '../../stores/maintenance-store';
import { UnavailableError } from '../../domain/errors';
import type { Handlers } from '../mount';

/**
 * How long `/readyz` waits for the database: an orchestrator's probe wants an answer, and a
 * database that does not answer `select 1` in a second is not ready (the query itself ends by the
 * pool's own timeouts).
 */
export const READY_TIMEOUT_MS = 1000;

class NotReadyInTime extends Error {}

/** `select 1`, waiting for a connection included, within `ms`; what it does after that is the pool's business. */
async function answersWithin(database: MaintenanceStore, ms: number): Promise<void> {
  const probe = database.ping();
  probe.catch(() => undefined); // answered by the timeout: a late failure is nobody's
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new NotReadyInTime(`no answer within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Probes for orchestrators. */
export function healthHandlers(database: MaintenanceStore, availability?: DatabaseAvailability): Handlers {
  return {
    healthz: (_req, res) => {
      res.json({ status: 'ok' });
    },

    readyz: async (_req, res) => {
      try {
        await answersWithin(database, READY_TIMEOUT_MS);
      } catch (err) {
        // Its own timeout says "not now", not "unreachable": a busy embedded database can be slow
        // to get to it, and requests report an outage of their own.
        if (!(err instanceof NotReadyInTime)) availability?.failed(err);
        throw new UnavailableError('database unreachable');
      }
      res.json({ status: 'ok' });
    },
  };
}
