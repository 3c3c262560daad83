import { Router } from 'express';
import type { PasswordService } from '../services/password-service';

export function passwordRoutes(passwords: PasswordService): Router {
  const router = Router();

  router.post('/password/reset/confirm', async (req, res) => {
    const body = req.body as { token: string; password: string };
    await passwords.confirmReset(body.token, body.password);
    res.status(204).end();
  });

  return router;
}
