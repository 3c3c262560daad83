import { authorize, authorizeTokenKind, parsePolicy, type Policy } from '../domain/policy';
import type { RequestMeta } from '../domain/audit';
import type { Caller } from '../domain/types';
import { parseArgs } from './args';
import { toRpcError } from './errors';
import { RPC_METHODS, type RpcServices } from './methods';

/**
 * The JSON-RPC API behind `POST /_admin/api`: each method's policy (openapi.yaml's
 * `x-rpc-methods` on that operation) is checked by the same `authorize` as REST's, after the
 * arguments' types (a static check of the request, which tells nothing about anyone) and before
 * any lookup and the method run. Building it fails, naming them, if a method has no
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
    const loginTokens = names.filter((m) => this.policies[m].tokens !== 'api');
    if (loginTokens.length) throw new Error(`x-rpc-methods: ${loginTokens.join(', ')} must declare tokens: api (RhodeCode takes only API keys)`);
  }

  has(method: string): boolean {
    return Object.hasOwn(RPC_METHODS, method);
  }

  /**
   * Runs a method for an authenticated caller. Expected failures are RpcErrors in RhodeCode's
   * words; anything else (an outage, a bug) propagates. The token's kind comes first (a login
   * token is "Invalid API KEY" whatever it sends); then the arguments' types, before the rest of
   * the policy and any lookup: nothing reads an argument the method's schema has not accepted
   * (an object is not a string: `String({"toString": 1})` throws).
   */
  async call(caller: Caller, method: string, raw: Record<string, unknown>, meta: RequestMeta): Promise<unknown> {
    const m = RPC_METHODS[method];
    try {
      authorizeTokenKind(caller, this.policies[method]);
    } catch (err) {
      throw toRpcError(err);
    }
    const args = parseArgs(m.args, raw);
    // A self_or_admin method names its user in `userid` (RhodeCode's get_user); user names count.
    const named = typeof args.userid === 'string' ? args.userid : undefined;
    try {
      authorize(caller, this.policies[method], named, true);
    } catch (err) {
      throw toRpcError(err);
    }
    try {
      const audit = { actor: { id: caller.user.id, name: caller.user.name }, ip: meta.ip, userAgent: meta.userAgent, requestId: meta.requestId };
      return await m.run({ ...this.services, actor: caller.user, audit }, args);
    } catch (err) {
      throw toRpcError(err, m.subjects?.(args));
    }
  }
}
