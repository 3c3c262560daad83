import type { RequestHandler } from 'express';
import type { PasswordService } from '../../services/password-service';
import type { UserService } from '../../services/user-service';
import { callerOf } from '../authenticate';
import { clearTokens, flag } from '../flags';
import type { Handlers } from '../mount';

/** Passwords: one's own change, an admin's reset, and the forgot-password links. */
export function passwordHandlers(passwords: PasswordService, users: UserService, resetThrottle: RequestHandler): Handlers {
  return {
    requestPasswordReset: [
      resetThrottle,
      async (req, res) => {
        await passwords.requestReset((req.body as { email: string }).email);
        res.status(202).end();
      },
    ],

    confirmPasswordReset: async (req, res) => {
      const body = req.body as { token: string; password: string };
      await passwords.confirmReset(body.token, body.password);
      res.status(204).end();
    },

    changeMyPassword: async (req, res) => {
      const body = req.body as { password: string; current_password?: string };
      await passwords.changeOwn(callerOf(req), body.password, body.current_password, clearTokens(req.query.clear_tokens, 'login_only'));
      res.status(204).end();
    },

    resetUserPassword: async (req, res) => {
      const sendMail = flag(req.query.send_mail ?? req.query.send_password_reset_mail, true);
      await passwords.adminReset(await users.target(req.params.user as string), clearTokens(req.query.clear_tokens, 'login_only'), sendMail);
      res.status(204).end();
    },
  };
}
