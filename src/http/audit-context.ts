import type { Request } from 'express';
import type { AuditContext, RequestMeta } from '../domain/audit';

/** The request's address (the proxy's word only with TRUST_PROXY), client and id, for the audit log. */
export function requestMeta(req: Request): RequestMeta {
  // The client's name as the token rows keep it: at most 512 characters.
  return { ip: req.ip ?? null, userAgent: req.get('user-agent')?.slice(0, 512) ?? null, requestId: req.id === undefined ? null : String(req.id) };
}

/** Who is making the change (the authenticated caller, if any) and from where. */
export function auditContext(req: Request): AuditContext {
  const user = req.caller?.user;
  return { actor: user ? { id: user.id, name: user.name } : null, ...requestMeta(req) };
}
