import { Router, type RequestHandler } from 'express';
import type { PasswordService } from '../services/password-service';
import { callerOf } from './authenticate';
import { clearTokens, flag } from './flags';

export function passwordRoutes(passwords: PasswordService, throttle: RequestHandler): Router {
  const router = Router();

  router.post('/password/reset', throttle, async (req, res) => {
    await passwords.requestReset((req.body as { email: string }).email);
    res.status(202).end();
  });

  router.post('/password/reset/confirm', async (req, res) => {
    const body = req.body as { token: string; password: string };
    await passwords.confirmReset(body.token, body.password);
    res.status(204).end();
  });

  router.post('/user/me/password', async (req, res) => {
    const body = req.body as { password: string; current_password?: string };
    await passwords.changeOwn(callerOf(req), body.password, body.current_password, clearTokens(req.query.clear_tokens, 'login_only'));
    res.status(204).end();
  });

  router.delete('/user/:user/password', async (req, res) => {
    const sendMail = flag(req.query.send_mail ?? req.query.send_password_reset_mail, true);
    await passwords.adminReset(callerOf(req).user, req.params.user as string, clearTokens(req.query.clear_tokens, 'login_only'), sendMail);
    res.status(204).end();
  });

  return router;
}
