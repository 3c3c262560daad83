import { Router } from 'express';
import type { TokenService } from '../services/token-service';
import { callerOf } from './authenticate';
import { flag, revokeMode } from './flags';

export function revokeRoutes(tokens: TokenService): Router {
  const router = Router();

  router.post('/user/me/revoke', async (req, res) => {
    const { user } = callerOf(req);
    await tokens.revoke(user, user, revokeMode(req.query.login_only, req.query.api_only), false);
    res.status(204).end();
  });

  router.post('/user/:user/revoke', async (req, res) => {
    const mode = revokeMode(req.query.login_only, req.query.api_only);
    await tokens.revokeFor(callerOf(req).user, req.params.user as string, mode, flag(req.query.send_mail, true));
    res.status(204).end();
  });

  return router;
}
