import { Router } from 'express';
import type { Scope } from '../domain/types';
import type { TokenService } from '../services/token-service';
import type { UserService } from '../services/user-service';
import { callerOf } from './authenticate';
import { ValidationError } from '../domain/errors';
import { parseRfc3339 } from '../domain/timestamps';
import { ownerForms } from './owners';
import { presentNewToken, presentSession, presentToken } from './presenters';

/** API tokens (the caller's, and an admin's view of anyone's) and the caller's login sessions. */
export function tokenRoutes(tokens: TokenService, users: UserService): Router {
  const router = Router();

  router.post('/user/me/token', async (req, res) => {
    const body = req.body as { name: string; scopes?: Scope[]; expires?: string };
    const expires = body.expires === undefined ? undefined : parseRfc3339(body.expires);
    if (body.expires !== undefined && !expires) throw new ValidationError('expires is not an RFC 3339 time', [{ path: '/body/expires', message: 'is not a real moment' }]);
    const { token, jwt } = await tokens.create(callerOf(req).user, {
      name: body.name,
      scopes: body.scopes ? [...new Set(body.scopes)] : undefined,
      expires,
    });
    res.set('Cache-Control', 'no-store');
    res.status(201).location(`/user/me/token/${encodeURIComponent(token.name)}`).json(presentNewToken(token, jwt));
  });

  for (const [prefix, owner] of ownerForms(users)) {
    router.get(`${prefix}/token`, async (req, res) => {
      res.json((await tokens.list(await owner(req))).map(presentToken));
    });
    router.get(`${prefix}/token/:name`, async (req, res) => {
      res.json(presentToken(await tokens.get(await owner(req), req.params.name as string)));
    });
    router.delete(`${prefix}/token/:name`, async (req, res) => {
      await tokens.delete(await owner(req), req.params.name as string);
      res.status(204).end();
    });
  }

  router.get('/user/me/session', async (req, res) => {
    res.json((await tokens.sessions(callerOf(req))).map(presentSession));
  });

  router.delete('/user/me/session/:id', async (req, res) => {
    await tokens.endSession(callerOf(req), (req.params.id as string).toLowerCase());
    res.status(204).end();
  });

  return router;
}
