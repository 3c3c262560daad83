import bytes from 'bytes';
import { needsUserToken, parsePolicy, type Policy } from '../domain/policy';

/** How an operation answers input that breaks the text rule (`x-invalid-text`). */
export type InvalidTextAnswer = 'validation_failed' | 'unauthenticated' | 'accepted' | 'handler';
const INVALID_TEXT_ANSWERS: readonly InvalidTextAnswer[] = ['validation_failed', 'unauthenticated', 'accepted', 'handler'];

/** Which of the spec's security schemes an operation accepts. */
export interface Accepts {
  bearer: boolean;
  cookie: boolean;
}

/** One operation of openapi.yaml, with what the request path needs of it worked out at start-up. */
export interface Operation {
  /** Its operationId: how its handler is found. */
  id: string;
  method: string;
  /** The spec's path template, e.g. `/user/{user}/settings/{key}`. */
  path: string;
  policy: Policy;
  /** The credentials it accepts; undefined for a public operation. */
  accepts: Accepts | undefined;
  invalidText: InvalidTextAnswer;
  /** It has a request body in the spec, and of which kind: JSON, or anything read as JSON (JSON-RPC). */
  body: 'none' | 'json' | 'any';
  /** It has parameters (path or query) or a body: the validator has something to check. */
  hasInput: boolean;
  /**
   * The largest body it reads, in bytes (`x-body-limit`); undefined: the configured default
   * (`BODY_LIMIT`). Every public operation that takes a body declares one: a stranger's body is
   * sized on purpose.
   */
  bodyLimit: number | undefined;
}

type Segment = { literal: string } | { param: string };

interface Compiled {
  operation: Operation;
  segments: Segment[];
}

export interface Match {
  operation: Operation;
  params: Record<string, string>;
}

type SecurityRequirement = Record<string, unknown>;
type SpecOperation = Record<string, unknown> & { operationId?: string; security?: SecurityRequirement[]; parameters?: unknown[]; requestBody?: { content?: Record<string, unknown> } };
export interface Spec {
  security?: SecurityRequirement[];
  paths: Record<string, Record<string, unknown> & { parameters?: unknown[] }>;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];
const SCHEMES = { bearerAuth: 'bearer', cookieAuth: 'cookie' } as const;

/**
 * What an operation's security (its own, else the document's) accepts; undefined when it is
 * public (`security: []`). Anything the policy module cannot enforce faithfully (an unknown
 * scheme, two schemes required together, an optional `{}`) is refused, so a spec change fails closed.
 */
function acceptsOf(security: SecurityRequirement[] | undefined, where: string): Accepts | undefined {
  if (!security || security.length === 0) return undefined;
  const accepts: Accepts = { bearer: false, cookie: false };
  for (const requirement of security) {
    const schemes = Object.keys(requirement);
    if (schemes.length !== 1 || !(schemes[0] in SCHEMES)) {
      throw new Error(`${where}: unsupported security requirement ${JSON.stringify(requirement)}`);
    }
    accepts[SCHEMES[schemes[0] as keyof typeof SCHEMES]] = true;
  }
  return accepts;
}

/** A `$ref` within the document (`#/components/...`), followed. */
function deref<T>(spec: Spec, value: T | { $ref: string } | undefined): T | undefined {
  if (!value || typeof value !== 'object' || !('$ref' in value)) return value as T | undefined;
  let target: unknown = spec;
  for (const part of value.$ref.replace(/^#\//, '').split('/')) target = (target as Record<string, unknown> | undefined)?.[part];
  if (target === undefined) throw new Error(`unresolved $ref ${value.$ref}`);
  return deref(spec, target as T | { $ref: string });
}

function bodyOf(spec: Spec, op: SpecOperation, where: string): Operation['body'] {
  const types = Object.keys(deref(spec, op.requestBody)?.content ?? {});
  if (types.length === 0) return 'none';
  if (types.includes('*/*')) return 'any';
  if (types.every((t) => t === 'application/json')) return 'json';
  throw new Error(`${where}: request bodies are application/json (or */* read as JSON), not ${types.join(', ')}`);
}

/** An operation's `x-body-limit` (a size such as `16kb` or `5mb`), in bytes; fails closed on anything else. */
function bodyLimitOf(raw: unknown, body: Operation['body'], isPublic: boolean, where: string): number | undefined {
  if (raw === undefined) {
    if (isPublic && body !== 'none') throw new Error(`${where}: a public operation that takes a body declares its x-body-limit`);
    return undefined;
  }
  if (body === 'none') throw new Error(`${where}: x-body-limit on an operation without a request body`);
  const limit = typeof raw === 'string' && /^\d+(b|kb|mb)$/i.test(raw) ? bytes.parse(raw) : null;
  if (limit === null || limit <= 0) throw new Error(`${where}: x-body-limit must be a size such as 16kb or 5mb`);
  return limit;
}

/** Literal segments before parameters, position by position: `/user/me` wins over `/user/{user}`. */
function bySpecificity(a: Compiled, b: Compiled): number {
  for (let i = 0; i < Math.min(a.segments.length, b.segments.length); i++) {
    const [x, y] = ['literal' in a.segments[i], 'literal' in b.segments[i]];
    if (x !== y) return x ? -1 : 1;
  }
  return 0;
}

/**
 * The route table, made from openapi.yaml alone: every operation with its policy, security and
 * input. Requests are matched once, here (literal paths by a map lookup); nothing else routes.
 * Building it fails, naming the operation, on anything it cannot serve faithfully.
 */
export class RouteTable {
  readonly operations: Operation[] = [];
  /** Every query parameter some operation declares: what the request log may show the value of. */
  readonly queryNames = new Set<string>();
  private readonly exact = new Map<string, Operation>();
  private readonly templated = new Map<string, Compiled[]>(); // by method

  /** `without`: operations not served in this configuration (they answer `404 Route Not Found`, as unknown routes do). */
  constructor(spec: Spec, without: ReadonlySet<string> = new Set()) {
    const documentAccepts = acceptsOf(spec.security, 'security');
    const ids = new Set<string>();
    const compiled: Compiled[] = [];
    for (const [path, item] of Object.entries(spec.paths)) {
      const segments: Segment[] = path
        .split('/')
        .slice(1)
        .map((s) => (/^\{\w+\}$/.test(s) ? { param: s.slice(1, -1) } : { literal: s }));
      for (const method of METHODS) {
        const op = item[method] as SpecOperation | undefined;
        if (!op) continue;
        const where = `${method.toUpperCase()} ${path}`;
        if (!op.operationId) throw new Error(`${where}: no operationId`);
        if (ids.has(op.operationId)) throw new Error(`${where}: operationId ${op.operationId} is used twice`);
        ids.add(op.operationId);
        const invalidText = (op['x-invalid-text'] ?? 'validation_failed') as InvalidTextAnswer;
        if (!INVALID_TEXT_ANSWERS.includes(invalidText)) throw new Error(`${where}: x-invalid-text must be one of ${INVALID_TEXT_ANSWERS.join(', ')}`);
        const accepts = op.security ? acceptsOf(op.security, `${where} security`) : documentAccepts;
        const policy = parsePolicy(op['x-policy'], where);
        if (needsUserToken(policy.caller) !== (accepts !== undefined)) {
          throw new Error(`${where}: x-policy caller ${policy.caller} but security ${accepts ? 'requires a credential' : 'is public'}`);
        }
        const body = bodyOf(spec, op, where);
        const bodyLimit = bodyLimitOf(op['x-body-limit'], body, accepts === undefined, where);
        for (const p of [...(item.parameters ?? []), ...(op.parameters ?? [])]) {
          const parameter = deref<{ in?: string; name?: string }>(spec, p as { in?: string; name?: string });
          if (parameter?.in === 'query' && parameter.name) this.queryNames.add(parameter.name);
        }
        if (without.has(op.operationId)) continue;
        const operation: Operation = {
          id: op.operationId,
          method: method.toUpperCase(),
          path,
          policy,
          accepts,
          invalidText,
          body,
          hasInput: body !== 'none' || (op.parameters?.length ?? 0) > 0 || (item.parameters?.length ?? 0) > 0,
          bodyLimit,
        };
        this.operations.push(operation);
        if (segments.every((s) => 'literal' in s)) this.exact.set(`${operation.method} ${path}`, operation);
        else compiled.push({ operation, segments });
      }
    }
    for (const c of compiled.sort(bySpecificity)) {
      const list = this.templated.get(c.operation.method) ?? [];
      list.push(c);
      this.templated.set(c.operation.method, list);
    }
  }

  /**
   * The operation a request names, with its path parameters (percent-decoded); undefined when
   * none does (an unknown path, or a known path with a method it does not have: both are
   * `404 Route Not Found`). Throws URIError on a malformed percent-encoding.
   */
  match(method: string, rawPath: string): Match | undefined {
    const path = rawPath.length > 1 && rawPath.endsWith('/') ? rawPath.slice(0, -1) : rawPath;
    const exact = this.exact.get(`${method} ${path}`);
    if (exact) return { operation: exact, params: {} };
    const candidates = this.templated.get(method);
    if (!candidates) return undefined;
    const parts = path.split('/').slice(1);
    for (const { operation, segments } of candidates) {
      if (segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segments.length && ok; i++) {
        const segment = segments[i];
        if ('literal' in segment) ok = segment.literal === parts[i];
        else if (parts[i] === '') ok = false;
        else params[segment.param] = decodeURIComponent(parts[i]);
      }
      if (ok) return { operation, params };
    }
    return undefined;
  }
}
