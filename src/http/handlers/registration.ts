import type { RequestHandler } from 'express';
import type { RegistrationService } from '../../services/registration-service';
import { auditContext, requestMeta } from '../audit-context';
import { body } from '../bodies';
import type { Handlers } from '../mount';

/** The operations served only with `ALLOW_REGISTRATION=1` (otherwise `404 Route Not Found`). */
export const REGISTRATION_OPERATIONS: ReadonlySet<string> = new Set(['register']);

/**
 * Self-service registration: `register` is served only when registration is on; the verification
 * of a link already mailed keeps working after it is turned off.
 */
export function registrationHandlers(registration: RegistrationService, enabled: boolean, throttle: RequestHandler): Handlers {
  return {
    ...(enabled && {
      register: [
        throttle,
        async (req, res) => {
          const { name, email, password } = body(req, 'register');
          await registration.register(name, email, password, requestMeta(req));
          res.status(202).end();
        },
      ],
    }),

    verifyRegistration: async (req, res) => {
      await registration.verify(body(req, 'verifyRegistration').token, auditContext(req));
      res.status(204).end();
    },
  };
}
