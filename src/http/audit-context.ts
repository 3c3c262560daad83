import type { Request } from 'express';
import type { AuditContext, RequestMeta } from '../domain/audit';

/** The request's address (the proxy's word only with TRUST_PROXY), client and id, for the audit log. */
export function requestMeta(req: Request): RequestMeta {
  return { ip: req.ip ?? null, userAgent: req.get('user-agent') ?? null, requestId: req.id === undefined ? null : String(req.id) };
}

/** Who is making the change (the authenticated caller, if any) and from where. */
export function auditContext(req: Request): AuditContext {
  const user = req.caller?.user;
  return { actor: user ? { id: user.id, name: user.name } : null, ...requestMeta(req) };
}
