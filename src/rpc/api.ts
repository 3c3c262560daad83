import { authorize, parsePolicy, type Policy } from '../domain/policy';
import type { RequestMeta } from '../domain/audit';
import type { Caller } from '../domain/types';
import { parseArgs } from './args';
import { toRpcError } from './errors';
import { RPC_METHODS, type RpcServices } from './methods';

/**
 * The JSON-RPC API behind `POST /_admin/api`: each method's policy (openapi.yaml's
 * `x-rpc-methods` on that operation) is checked by the same `authorize` as REST's, before the
 * arguments are read and the method runs. Building it fails, naming them, if a method has no
 * policy or a policy no method.
 */
export class RpcApi {
  private readonly policies: Record<string, Policy>;

  constructor(
    private readonly services: RpcServices,
    declared: unknown,
  ) {
    if (typeof declared !== 'object' || declared === null) throw new Error('POST /_admin/api: no x-rpc-methods (every method declares who may call it)');
    const names = Object.keys(RPC_METHODS);
    const missing = names.filter((m) => !(m in declared));
    const extra = Object.keys(declared).filter((m) => !(m in RPC_METHODS));
    if (missing.length || extra.length) {
      throw new Error(`x-rpc-methods: ${[missing.length ? `no policy for ${missing.join(', ')}` : '', extra.length ? `no method ${extra.join(', ')}` : ''].filter(Boolean).join('; ')}`);
    }
    this.policies = Object.fromEntries(names.map((m) => [m, parsePolicy((declared as Record<string, unknown>)[m], `JSON-RPC method ${m}`)]));
  }

  has(method: string): boolean {
    return Object.hasOwn(RPC_METHODS, method);
  }

  policyOf(method: string): Policy {
    return this.policies[method];
  }

  /**
   * Runs a method for an authenticated caller. Expected failures are RpcErrors in RhodeCode's
   * words; anything else (an outage, a bug) propagates.
   */
  async call(caller: Caller, method: string, raw: Record<string, unknown>, meta: RequestMeta): Promise<unknown> {
    const m = RPC_METHODS[method];
    // A self_or_admin method names its user in `userid` (RhodeCode's get_user); user names count.
    const named = raw.userid === undefined || raw.userid === null ? undefined : String(raw.userid);
    try {
      authorize(caller, this.policies[method], named, true);
    } catch (err) {
      throw toRpcError(err);
    }
    const args = parseArgs(m.args, raw);
    try {
      const audit = { actor: { id: caller.user.id, name: caller.user.name }, ip: meta.ip, userAgent: meta.userAgent, requestId: meta.requestId };
      return await m.run({ ...this.services, actor: caller.user, audit }, args);
    } catch (err) {
      throw toRpcError(err, m.subjects?.(args));
    }
  }
}
