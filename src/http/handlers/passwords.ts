import type { RequestHandler } from 'express';
import type { PasswordService } from '../../services/password-service';
import type { UserService } from '../../services/user-service';
import { auditContext, requestMeta } from '../audit-context';
import { callerOf } from '../authenticate';
import { body, query } from '../bodies';
import { clearTokens, flag } from '../flags';
import type { Handlers } from '../mount';
import { owner } from '../owner';

/** Passwords: one's own change, an admin's reset, and the forgot-password links. */
export function passwordHandlers(passwords: PasswordService, users: UserService, resetThrottle: RequestHandler): Handlers {
  const ownerOf = owner(users);
  return {
    requestPasswordReset: [
      resetThrottle,
      async (req, res) => {
        await passwords.requestReset(body(req, 'requestPasswordReset').email, requestMeta(req));
        res.status(202).end();
      },
    ],

    confirmPasswordReset: async (req, res) => {
      const { token, password } = body(req, 'confirmPasswordReset');
      await passwords.confirmReset(token, password, auditContext(req));
      res.status(204).end();
    },

    changeMyPassword: async (req, res) => {
      const { password, current_password } = body(req, 'changeMyPassword');
      await passwords.changeOwn(callerOf(req), password, current_password, clearTokens(query(req, 'changeMyPassword').clear_tokens, 'login_only'), auditContext(req));
      res.status(204).end();
    },

    resetUserPassword: async (req, res) => {
      const q = query(req, 'resetUserPassword');
      await passwords.adminReset(await ownerOf(req), clearTokens(q.clear_tokens, 'login_only'), flag(q.send_mail ?? q.send_password_reset_mail, true), auditContext(req));
      res.status(204).end();
    },
  };
}
