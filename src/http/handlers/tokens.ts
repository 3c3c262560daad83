import type { Request, Response } from 'express';
import { ValidationError } from '../../domain/errors';
import { parseRfc3339 } from '../../domain/timestamps';
import type { TokenService } from '../../services/token-service';
import type { UserService } from '../../services/user-service';
import { auditContext } from '../audit-context';
import { callerOf } from '../authenticate';
import { body, query } from '../bodies';
import { flag, revokeMode } from '../flags';
import type { Handlers } from '../mount';
import { presentNewToken, presentToken } from '../presenters';
import { owner } from '../owner';

/** API tokens (the caller's, and an admin's view of anyone's) and revocation. */
export function tokenHandlers(tokens: TokenService, users: UserService): Handlers {
  const ownerOf = owner(users);
  const list = async (req: Request, res: Response) => {
    res.json((await tokens.list(await ownerOf(req))).map(presentToken));
  };
  const get = async (req: Request, res: Response) => {
    res.json(presentToken(await tokens.get(await ownerOf(req), req.params.name as string)));
  };
  const remove = async (req: Request, res: Response) => {
    await tokens.delete(await ownerOf(req), req.params.name as string, auditContext(req));
    res.status(204).end();
  };

  return {
    listMyTokens: list,
    listUserTokens: list,
    getMyToken: get,
    getUserToken: get,
    deleteMyToken: remove,
    deleteUserToken: remove,

    createMyToken: async (req, res) => {
      const input = body(req, 'createMyToken');
      const expires = input.expires === undefined ? undefined : parseRfc3339(input.expires);
      if (input.expires !== undefined && !expires) throw new ValidationError('expires is not an RFC 3339 time', [{ path: '/body/expires', message: 'is not a real moment' }]);
      const { token, jwt } = await tokens.create(callerOf(req).user, {
        name: input.name,
        scopes: input.scopes ? [...new Set(input.scopes)] : undefined,
        expires,
      }, auditContext(req));
      res.set('Cache-Control', 'no-store');
      res.status(201).location(`/user/me/token/${encodeURIComponent(token.name)}`).json(presentNewToken(token, jwt));
    },

    revokeMyTokens: async (req, res) => {
      const { user } = callerOf(req);
      const q = query(req, 'revokeMyTokens');
      await tokens.revoke(user, user, revokeMode(q.login_only, q.api_only), false, auditContext(req));
      res.status(204).end();
    },

    revokeUserTokens: async (req, res) => {
      const q = query(req, 'revokeUserTokens');
      await tokens.revoke(callerOf(req).user, await ownerOf(req), revokeMode(q.login_only, q.api_only), flag(q.send_mail, true), auditContext(req));
      res.status(204).end();
    },
  };
}
