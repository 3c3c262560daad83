import type { FactorProof, MfaService } from '../../services/mfa-service';
import type { UserService } from '../../services/user-service';
import { auditContext } from '../audit-context';
import { callerOf } from '../authenticate';
import { body } from '../bodies';
import type { Handlers } from '../mount';
import { owner } from '../owner';
import { presentFactor } from '../presenters';

/** Two-factor sign-in: the caller's factors and recovery codes, and an admin's view and reset of a user's (tag `mfa`). */
export function mfaHandlers(mfa: MfaService, users: UserService): Handlers {
  const ownerOf = owner(users);
  return {
    listMyFactors: async (req, res) => {
      res.json((await mfa.list(callerOf(req).user)).map(presentFactor));
    },

    createMyFactor: async (req, res) => {
      const input = body(req, 'createMyFactor');
      const made = await mfa.enrol(callerOf(req), { type: input.type, name: input.name, currentPassword: input.current_password }, auditContext(req));
      res.set('Cache-Control', 'no-store');
      res.status(201).location(`/user/me/factor/${made.factor.id}`);
      if ('options' in made) res.json({ ...presentFactor(made.factor), verified: false, options: made.options });
      else res.json({ ...presentFactor(made.factor), verified: false, secret: made.secret, uri: made.uri, qr_svg: made.qrSvg });
    },

    verifyMyFactor: async (req, res) => {
      const proof = body(req, 'verifyMyFactor') as FactorProof;
      const { factor, recoveryCodes } = await mfa.verify(callerOf(req), (req.params.id as string).toLowerCase(), proof, auditContext(req));
      res.json(recoveryCodes ? { factor: presentFactor(factor), recovery_codes: recoveryCodes } : { factor: presentFactor(factor) });
    },

    renameMyFactor: async (req, res) => {
      const factor = await mfa.rename(callerOf(req), (req.params.id as string).toLowerCase(), body(req, 'renameMyFactor').name, auditContext(req));
      res.json(presentFactor(factor));
    },

    deleteMyFactor: async (req, res) => {
      await mfa.remove(callerOf(req), (req.params.id as string).toLowerCase(), auditContext(req));
      res.status(204).end();
    },

    getMyRecoveryCodes: async (req, res) => {
      res.json({ remaining: await mfa.recoveryCodesRemaining(callerOf(req).user) });
    },

    createMyRecoveryCodes: async (req, res) => {
      const codes = await mfa.regenerateRecoveryCodes(callerOf(req), body(req, 'createMyRecoveryCodes').current_password, auditContext(req));
      res.status(201).json({ codes });
    },

    listUserFactors: async (req, res) => {
      res.json((await mfa.list(await ownerOf(req))).map(presentFactor));
    },

    resetUserFactors: async (req, res) => {
      await mfa.reset(await ownerOf(req), auditContext(req));
      res.status(204).end();
    },
  };
}
