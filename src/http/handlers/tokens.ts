import type { Request, Response } from 'express';
import { ValidationError } from '../../domain/errors';
import { parseRfc3339 } from '../../domain/timestamps';
import type { Scope } from '../../domain/types';
import type { TokenService } from '../../services/token-service';
import type { UserService } from '../../services/user-service';
import { callerOf } from '../authenticate';
import { flag, revokeMode } from '../flags';
import type { Handlers } from '../mount';
import { presentNewToken, presentToken } from '../presenters';
import { owner } from './users';

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
    await tokens.delete(await ownerOf(req), req.params.name as string);
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
    },

    revokeMyTokens: async (req, res) => {
      const { user } = callerOf(req);
      await tokens.revoke(user, user, revokeMode(req.query.login_only, req.query.api_only), false);
      res.status(204).end();
    },

    revokeUserTokens: async (req, res) => {
      const mode = revokeMode(req.query.login_only, req.query.api_only);
      await tokens.revoke(callerOf(req).user, await ownerOf(req), mode, flag(req.query.send_mail, true));
      res.status(204).end();
    },
  };
}
