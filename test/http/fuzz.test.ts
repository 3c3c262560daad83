import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as fc from 'fast-check';
import { loadApiSpec } from '../../src/api-spec';
import { createTestApp, type TestApp, type TestUser } from '../helpers/test-app';

/*
 * Spec-driven fuzzing: every operation of openapi.yaml gets generated hostile requests, each of
 * them invalid in at least one way, and the service must refuse every one of them the contract's
 * way (shared/API.md §0: "no input, however hostile, gets a 5xx"):
 *
 * - never a 5xx (and the app validates its responses against openapi.yaml, so a response that
 *   breaks the spec shows up as a 500 too);
 * - a 4xx has the Error body ({error, code, request_id}); /login answers invalid text 400 or 401;
 * - a 2xx only where the contract answers invalid input with success: 202 from POST /password/reset
 *   (and /register), and from POST /_admin/api an HTTP 200 envelope with a string `error` and a
 *   null `result` (not "Internal server error", which is a 500 in an envelope).
 *
 * Afterwards the data must be as before (a control read of the tables and of a few GETs).
 *
 * Categories (see categoriesFor): wrong JSON types in the body and the query; NUL and lone
 * surrogates in every string of the body (values and keys), the path and the query; 1 MiB strings;
 * JSON nested 10 000 deep; duplicate and unknown query keys; malformed percent-encoding in the path
 * and the query; bodies that are not UTF-8; other content types; bodies where none is taken. Each
 * (operation, category) pair, split per body member, query parameter or RPC method, is one
 * fast-check property with its own seed, derived from the base seed and the pair's label.
 *
 * Environment:
 *   FUZZ_SEED=<int>     base seed (default below).
 *   FUZZ_RUNS=<int>     total requests, spread over the pairs (default and floor of a run: 5000).
 *   FUZZ_ONLY=<regex>   only the pairs whose label ("METHOD /path [category member]") matches;
 *                       with the same FUZZ_SEED a failure comes back as it was.
 *   FUZZ_COLLECT=1      do not stop at the first failure: run everything, then fail once with the
 *                       list of distinct (operation, category, status, problem) failures.
 *   FUZZ_REPORT=<file>  with FUZZ_COLLECT, also write that list to a file.
 *   FUZZ_TRACE=<file>   append one line per request (pair, auth, what is hostile, path, answer).
 */

const DEFAULT_SEED = 20261122;
const BASE_SEED = envInt('FUZZ_SEED', DEFAULT_SEED);
const TOTAL_RUNS = envInt('FUZZ_RUNS', 5000);
const COLLECT = process.env.FUZZ_COLLECT === '1';
const ONLY = process.env.FUZZ_ONLY ? new RegExp(process.env.FUZZ_ONLY) : undefined;
/** A file to log every request and its answer to, one line each (for looking into a run). */
const TRACE = process.env.FUZZ_TRACE;

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, not ${raw}`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// The spec: every operation, with $refs resolved.

type Schema = Record<string, unknown>;
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'] as const;

interface Param {
  name: string;
  in: string;
  schema: Schema;
}

interface Operation {
  key: string; // "POST /user/{user}"
  method: string; // upper case
  path: string;
  pathParams: Param[];
  queryParams: Param[];
  /** The JSON request body's schema, when the operation takes one. */
  jsonBody?: Schema;
  /** Whether the operation declares any request body at all. */
  takesBody: boolean;
}

const spec = loadApiSpec() as Schema;

function pointer(ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`fuzz: unsupported $ref ${ref}`);
  let node: unknown = spec;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !(key in node)) throw new Error(`fuzz: unresolvable $ref ${ref}`);
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** The node itself, or what its ($ref chain) points at. */
function deref<T = Schema>(node: unknown): T {
  const seen = new Set<string>();
  let n = node;
  while (n !== null && typeof n === 'object' && typeof (n as Schema).$ref === 'string') {
    const ref = (n as Schema).$ref as string;
    if (seen.has(ref)) throw new Error(`fuzz: $ref cycle at ${ref}`);
    seen.add(ref);
    n = pointer(ref);
  }
  return n as T;
}

function operationsOf(doc: Schema): Operation[] {
  const ops: Operation[] = [];
  for (const [path, rawItem] of Object.entries(deref<Record<string, Schema>>(doc.paths))) {
    const item = deref<Record<string, unknown>>(rawItem);
    const shared = ((item.parameters as unknown[]) ?? []).map((p) => deref<Schema>(p));
    for (const method of METHODS) {
      const op = item[method] ? deref<Schema>(item[method]) : undefined;
      if (!op) continue;
      const own = ((op.parameters as unknown[]) ?? []).map((p) => deref<Schema>(p));
      const byKey = new Map<string, Schema>();
      for (const p of [...shared, ...own]) byKey.set(`${p.in as string}:${p.name as string}`, p);
      const params: Param[] = [...byKey.values()].map((p) => ({ name: p.name as string, in: p.in as string, schema: deref(p.schema ?? {}) }));
      const requestBody = op.requestBody ? deref<Schema>(op.requestBody) : undefined;
      const content = (requestBody?.content ?? {}) as Record<string, Schema>;
      const json = content['application/json'] ? deref<Schema>(content['application/json'].schema ?? {}) : undefined;
      ops.push({
        key: `${method.toUpperCase()} ${path}`,
        method: method.toUpperCase(),
        path,
        pathParams: params.filter((p) => p.in === 'path'),
        queryParams: params.filter((p) => p.in === 'query'),
        jsonBody: json,
        takesBody: requestBody !== undefined,
      });
    }
  }
  return ops;
}

/** The JSON types a schema admits; undefined: any type (e.g. `not: {type: null}` admits all but null). */
function typesOf(schema: Schema): Set<string> | undefined {
  const s = deref(schema);
  if (s.type !== undefined) return new Set(Array.isArray(s.type) ? (s.type as string[]) : [s.type as string]);
  if (s.const !== undefined) return new Set([jsonType(s.const)]);
  if (Array.isArray(s.enum)) return new Set((s.enum as unknown[]).map(jsonType));
  for (const key of ['oneOf', 'anyOf'] as const) {
    if (Array.isArray(s[key])) {
      const all = new Set<string>();
      for (const branch of s[key] as unknown[]) {
        const t = typesOf(deref(branch));
        if (!t) return undefined;
        t.forEach((x) => all.add(x));
      }
      return all;
    }
  }
  if (s.properties || s.additionalProperties !== undefined) return new Set(['object']);
  if (s.items) return new Set(['array']);
  if (s.not && deref(s.not).type === 'null') return new Set(['string', 'number', 'integer', 'boolean', 'array', 'object']);
  return undefined;
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (Number.isInteger(v)) return 'integer';
  return typeof v;
}

// ---------------------------------------------------------------------------------------------
// The RPC methods and their arguments, read from the table in POST /_admin/api's description.

interface RpcMethodSpec {
  name: string;
  args: string[];
}

function rpcMethodsOf(op: Schema | undefined): RpcMethodSpec[] {
  const description = String(op?.description ?? '');
  const methods: RpcMethodSpec[] = [];
  for (const m of description.matchAll(/^\s*\|\s*`([a-z_]+)`\s*\|\s*([^|]*)\|/gm)) {
    const args = m[2]
      .replace(/`/g, '')
      .split(',')
      .map((a) => a.trim().replace(/^\[|\]$/g, '').trim())
      .filter((a) => /^[a-z_]+$/.test(a));
    methods.push({ name: m[1], args });
  }
  return methods;
}

/** RPC argument kinds (the spec gives names only): booleans, refs (ids or names; RhodeCode also takes numbers) and strings. */
const RPC_BOOLEAN_ARGS = new Set(['active', 'admin', 'force_password_change']);
const RPC_REF_ARGS = new Set(['userid', 'usergroupid', 'sourceusergroupid', 'owner']);

// ---------------------------------------------------------------------------------------------
// Fixtures.

interface Identity {
  jwt: string;
  api: string;
}

interface Fixtures {
  admin: TestUser & Identity;
  me: TestUser & Identity & { spareJwt: string; sessionId: string };
  user: TestUser;
  member: TestUser;
  gone: TestUser;
  group: { id: string; name: string };
  group2: { id: string; name: string };
}

const RPC_PATH = '/_admin/api';
const UUID0 = '00000000-0000-4000-8000-000000000000';
const FUTURE = new Date(Date.now() + 30 * 86_400_000).toISOString();
const MiB = 1 << 20;

let t: TestApp;
let server: http.Server;
let port: number;
let agent: http.Agent;
let F: Fixtures;
const operations = operationsOf(spec);
const rpcOperation = operations.find((o) => o.key === `POST ${RPC_PATH}`);
const rpcMethods = rpcMethodsOf(rpcOperation ? deref<Schema>(deref<Schema>(deref<Schema>(spec.paths)[RPC_PATH]).post) : undefined);

// ---------------------------------------------------------------------------------------------
// Raw HTTP (node:http, so that paths, bytes and headers go out exactly as built).

interface RawRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  auth: string; // for the report
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function send(req: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...req.headers };
    if (req.body !== undefined) headers['content-length'] = req.body.length;
    const r = http.request({ host: '127.0.0.1', port, method: req.method, path: req.path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    r.setTimeout(30_000, () => r.destroy(new Error('no response within 30 s')));
    r.on('error', reject);
    r.end(req.body);
  });
}

function jsonOf(res: RawResponse): unknown {
  try {
    return JSON.parse(res.body.toString('utf8'));
  } catch {
    return undefined;
  }
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** A call the fixtures need, which must succeed. */
async function call(method: string, path: string, token: string | undefined, body?: unknown, expected: number[] = [200, 201, 202, 204]): Promise<Record<string, unknown>> {
  const res = await send({
    method,
    path,
    headers: { ...(token ? bearer(token) : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
    auth: '',
  });
  if (!expected.includes(res.status)) throw new Error(`fixture ${method} ${path}: ${res.status} ${res.body.toString('utf8').slice(0, 500)}`);
  return (jsonOf(res) ?? {}) as Record<string, unknown>;
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------------
// Plausible values (valid-looking requests, into which one invalid thing is put).

interface BuildContext {
  op: Operation;
  /** Decoded path parameter values of this request. */
  pathValues: Record<string, string>;
}

function plausibleString(name: string | undefined, schema: Schema, ctx: BuildContext): string {
  const isLogin = ctx.op.key === 'POST /login';
  switch (name) {
    case 'email':
      if (isLogin) return F.user.email;
      if (ctx.op.path.startsWith('/password/reset')) return 'nobody-fuzz@example.test';
      return 'fuzz-new@example.test';
    case 'password':
      return isLogin ? F.user.password : 'correct horse battery staple';
    case 'current_password':
      return F.me.password;
    case 'user_id':
      return F.user.user.id;
    case 'user':
      return F.user.email;
    case 'owner':
      return F.user.email;
    case 'token':
      return 'A'.repeat(43);
    case 'first_name':
    case 'last_name':
      return 'Fuzz';
    case 'description':
      return 'fuzz';
    case 'name':
      return 'fuzz-new';
    case 'expires':
      return FUTURE;
  }
  if (Array.isArray(schema.enum)) return String((schema.enum as unknown[]).find((e) => typeof e === 'string') ?? 'x');
  if (schema.format === 'email') return 'fuzz-new@example.test';
  if (schema.format === 'date-time') return FUTURE;
  if (typeof schema.pattern === 'string' && schema.pattern.includes('[0-9a-f]{8}')) return F.user.user.id;
  return 'fuzz';
}

function plausible(rawSchema: unknown, name: string | undefined, ctx: BuildContext): Json {
  const schema = deref(rawSchema ?? {});
  if (schema.const !== undefined) return schema.const as Json;
  if (Array.isArray(schema.enum)) return (schema.enum as Json[]).find((e) => e !== null) ?? null;
  const types = typesOf(schema);
  if (types?.has('object') || schema.properties || schema.additionalProperties) return plausibleObject(schema, ctx);
  if (types?.has('string')) return plausibleString(name, schema, ctx);
  if (types?.has('boolean')) return name === 'active';
  if (types?.has('integer') || types?.has('number')) return typeof schema.minimum === 'number' ? schema.minimum : 1;
  if (types?.has('array')) {
    const items = deref(schema.items ?? {});
    return [plausible(items, name, ctx)];
  }
  for (const key of ['oneOf', 'anyOf'] as const) {
    if (Array.isArray(schema[key])) {
      const branch = (schema[key] as unknown[]).map((b) => deref(b)).find((b) => b.type !== 'null');
      if (branch) return plausible(branch, name, ctx);
    }
  }
  return 'fuzz';
}

/** The required properties (and the oneOf branch holding `ensure`, else the first), plus `ensure`. */
function plausibleObject(schema: Schema, ctx: BuildContext, ensure?: string): { [key: string]: Json } {
  const props = (schema.properties ?? {}) as Record<string, unknown>;
  const names = Object.keys(props);
  if (names.length === 0 && schema.additionalProperties && typeof schema.additionalProperties === 'object') return plausibleMap(schema, ctx);
  const keys = new Set<string>(((schema.required as string[]) ?? []).filter((k) => k in props));
  if (Array.isArray(schema.oneOf)) {
    const branches = (schema.oneOf as unknown[]).map((b) => deref(b)).filter((b) => Array.isArray(b.required));
    const branch = branches.find((b) => ensure !== undefined && (b.required as string[]).includes(ensure)) ?? branches[0];
    for (const k of (branch?.required as string[]) ?? []) if (k in props) keys.add(k);
  }
  if (ensure !== undefined && ensure in props) keys.add(ensure);
  if (keys.size === 0 && names.length > 0) keys.add(names[0]);
  const out: { [key: string]: Json } = {};
  for (const k of keys) out[k] = plausible(props[k], k, ctx);
  return out;
}

/** A settings-like map: the one key named in the URL, or a few settings. */
function plausibleMap(schema: Schema, ctx: BuildContext): { [key: string]: Json } {
  if (schema.maxProperties === 1) return { [ctx.pathValues.key ?? 'fuzz']: 'dark' };
  return { theme: 'light', 'dashboard.columns': ['name', 'email'], notifications: { mail: false, digest: 'weekly' } };
}

function plausibleBody(op: Operation, ctx: BuildContext, ensure?: string): Json {
  if (op.path === RPC_PATH) throw new Error('fuzz: the RPC body is rpcEnvelope()');
  const schema = deref(op.jsonBody ?? {});
  return typesOf(schema)?.has('object') ? plausibleObject(schema, ctx, ensure) : plausible(schema, undefined, ctx);
}

/** Top-level members of a body that a recipe may pick. */
function bodyMembers(op: Operation, ctx: BuildContext): string[] {
  const schema = deref(op.jsonBody ?? {});
  const props = Object.keys((schema.properties ?? {}) as Record<string, unknown>);
  if (props.length > 0) return props;
  const body = plausibleBody(op, ctx);
  return body && typeof body === 'object' && !Array.isArray(body) ? Object.keys(body) : [];
}

function rpcArgValue(arg: string): Json {
  if (RPC_BOOLEAN_ARGS.has(arg)) return arg === 'active';
  switch (arg) {
    case 'userid':
      return F.user.user.id;
    case 'usergroupid':
      return F.group.name;
    case 'sourceusergroupid':
      return F.group2.name;
    case 'owner':
      return F.user.email;
    case 'perm':
      return 'usergroup.read';
    case 'username':
      return 'fuzz-rpc-user';
    case 'email':
      return 'fuzz-rpc@example.test';
    case 'group_name':
      return 'fuzz-rpc-group';
    case 'password':
      return 'correct horse battery staple';
    default:
      return 'Fuzz';
  }
}

function rpcEnvelope(method: RpcMethodSpec, anonymous: boolean): { [key: string]: Json } {
  const args: { [key: string]: Json } = {};
  for (const a of method.args) args[a] = rpcArgValue(a);
  return { id: 'fuzz-1', ...(anonymous ? {} : { auth_token: F.admin.api }), method: method.name, args };
}

// ---------------------------------------------------------------------------------------------
// Positions of strings (values and keys) in a JSON value, and edits at a position.

type Path = (string | number)[];
interface Position {
  path: Path; // to the value, or to the member whose key it is
  kind: 'value' | 'key';
}

function positionsOf(value: Json, path: Path = []): Position[] {
  if (typeof value === 'string') return [{ path, kind: 'value' }];
  if (Array.isArray(value)) return value.flatMap((v, i) => positionsOf(v, [...path, i]));
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => [{ path: [...path, k], kind: 'key' as const }, ...positionsOf(v, [...path, k])]);
  }
  return [];
}

/** A copy of `root` with the string at `pos` (a value, or a member's key) replaced by edit(old). */
function editAt(root: Json, pos: Position, edit: (old: string) => string): Json {
  const go = (node: Json, depth: number): Json => {
    if (depth === pos.path.length) return pos.kind === 'value' && typeof node === 'string' ? edit(node) : node;
    const step = pos.path[depth];
    if (Array.isArray(node)) return node.map((v, i) => (i === step ? go(v, depth + 1) : v));
    if (node && typeof node === 'object') {
      const out: { [key: string]: Json } = {};
      for (const [k, v] of Object.entries(node)) {
        if (k !== step) out[k] = v;
        else if (pos.kind === 'key' && depth === pos.path.length - 1) out[edit(k)] = v;
        else out[k] = go(v, depth + 1);
      }
      return out;
    }
    return node;
  };
  return go(root, 0);
}

/** A copy of `root` with the value at `path` replaced (path [] replaces the root). */
function setAt(root: Json, path: Path, value: Json): Json {
  if (path.length === 0) return value;
  const [step, ...rest] = path;
  if (Array.isArray(root)) return root.map((v, i) => (i === step ? setAt(v, rest, value) : v));
  const obj = root && typeof root === 'object' ? root : {};
  return { ...obj, [step]: setAt((obj as { [key: string]: Json })[step as string] ?? null, rest, value) };
}

function insertAt(s: string, at: number, piece: string): string {
  const chars = [...s];
  const i = at % (chars.length + 1);
  return [...chars.slice(0, i), piece, ...chars.slice(i)].join('');
}

// Strings no JSON value of ours holds, replaced in the serialised text after JSON.stringify.
const SENTINEL = '\u0001fuzz-sentinel\u0001';
const SENTINEL_JSON = JSON.stringify(SENTINEL).slice(1, -1);

function bodyBytes(value: Json, replacement?: Buffer | string, options: { upperEscapes?: boolean } = {}): Buffer {
  let text = JSON.stringify(value);
  if (options.upperEscapes) text = text.replace(/\\u(d[89ab][0-9a-f]{2}|d[c-f][0-9a-f]{2})/g, (_m, hex: string) => `\\u${hex.toUpperCase()}`);
  if (replacement === undefined) return Buffer.from(text, 'utf8');
  const parts = text.split(SENTINEL_JSON);
  if (parts.length < 2) throw new Error('fuzz: sentinel lost');
  const piece = typeof replacement === 'string' ? Buffer.from(replacement, 'utf8') : replacement;
  const out: Buffer[] = [];
  parts.forEach((p, i) => {
    if (i > 0) out.push(piece);
    out.push(Buffer.from(p, 'utf8'));
  });
  return Buffer.concat(out);
}

// ---------------------------------------------------------------------------------------------
// Hostile material.

const HOSTILE_TEXT = ['\u0000', '\ud800', '\udfff', '\udbff', '\udc00', '\u0000\u0000', 'a\ud800b', '\udfff\ud800'];
/** Percent-encoded NUL, and the (WTF-8) encodings of lone surrogates, which are not UTF-8. */
const HOSTILE_PCT_TEXT = ['%00', '%ED%A0%80', '%ed%bf%bf', '%00%00', 'a%00b'];
/** Malformed percent-encoding, or percent-encoded bytes that are not UTF-8. */
const BAD_PERCENT = ['%', '%zz', '%ff', '%c3%28', '%E0%A4%A', '%C0%AF', '%F8%88%80%80%80', '%%', '%2', '%u0041', '%fe%ff', '%E0%A4'];
/** Pieces that a following hex digit or escape could complete: they go at the end of their part. */
const INCOMPLETE_PERCENT = new Set(['%', '%E0%A4%A', '%2', '%E0%A4']);

/**
 * `raw` (percent-encoded) with `piece` put between two characters or escapes (never inside an
 * escape), or at the end for a piece that what follows could complete; checked to be hostile.
 */
function withPiece(raw: string, piece: string, at: number, alone: boolean): string {
  const units = raw.match(/%[0-9A-Fa-f]{2}|[^%]|%/g) ?? [];
  let out: string;
  if (alone) out = piece;
  else if (INCOMPLETE_PERCENT.has(piece)) out = raw + piece;
  else {
    const i = at % (units.length + 1);
    out = [...units.slice(0, i), piece, ...units.slice(i)].join('');
  }
  let decoded: string | undefined;
  try {
    decoded = decodeURIComponent(out);
  } catch {
    decoded = undefined;
  }
  if (decoded !== undefined && !decoded.includes('\u0000')) throw new Error(`fuzz: ${JSON.stringify(out)} is not hostile`);
  return out;
}
const BAD_UTF8: number[][] = [
  [0xff, 0xfe],
  [0xc3, 0x28],
  [0xc0, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xe2, 0x82],
  [0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xfe],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xc3],
];
const LONG_CHARS = ['x', 'é', '💻'];
const DEPTH = 10_000;

function deepJson(shape: number): string {
  switch (shape % 3) {
    case 0:
      return '['.repeat(DEPTH) + ']'.repeat(DEPTH);
    case 1:
      return '{"a":'.repeat(DEPTH) + '1' + '}'.repeat(DEPTH);
    default:
      return '[{"a":'.repeat(DEPTH / 2) + 'null' + '}]'.repeat(DEPTH / 2);
  }
}

/** Values of every JSON type, to put where another type is expected. */
const WRONG_VALUES: Record<string, Json[]> = {
  integer: [0, -1, 123, 9007199254740993],
  number: [1.5, -0.25, 1e308],
  boolean: [true, false],
  string: ['', 'str', 'true', '1', 'null'],
  array: [[], ['a'], [1, 2], [null]],
  object: [{}, { a: 1 }, { '': '' }],
  null: [null],
};

function wrongValuesFor(types: Set<string> | undefined, exclude: string[] = []): Json[] {
  const allowed = types ?? new Set(['string', 'number', 'integer', 'boolean', 'array', 'object']);
  const out: Json[] = [];
  for (const [type, values] of Object.entries(WRONG_VALUES)) {
    if (exclude.includes(type) || allowed.has(type)) continue;
    if (type === 'integer' && allowed.has('number')) continue;
    out.push(...values);
  }
  return out;
}

const UNKNOWN_QUERY_KEYS = ['bogus', '__proto__', 'constructor', 'hasOwnProperty', 'toString', 'a[b]', 'q[]', 'LIMIT', 'Send_Mail', 'x y', 'limit.1', 'valueOf'];

// ---------------------------------------------------------------------------------------------
// Path parameters: real things and garbage.

function pathCandidates(name: string): string[] {
  switch (name) {
    case 'user':
      return [
        F.user.user.id,
        F.user.user.id.toUpperCase(),
        F.user.email,
        `email=${F.user.email}`,
        F.member.user.id,
        F.gone.email,
        F.gone.user.id,
        'nobody@example.test',
        UUID0,
        'not-a-user',
      ];
    case 'group':
    case 'source':
      return [F.group.name, F.group.id, F.group2.name, F.group2.id, 'no such group', UUID0];
    case 'key':
      return ['theme', 'dashboard.columns', 'lang', 'missing', 'a b'];
    case 'name':
      return ['ci / deploys', 'laptop 💻 / home', 'rpc client', 'missing', 'login_jwt_x'];
    case 'id':
      return [F.me.sessionId, F.me.sessionId.toUpperCase(), UUID0, 'not-a-uuid'];
    default:
      return ['x', 'fuzz', UUID0];
  }
}

// ---------------------------------------------------------------------------------------------
// Categories and recipes.

const CATEGORIES = [
  'body-wrong-type',
  'body-nul-surrogate',
  'body-1mb-string',
  'body-deep-10000',
  'body-not-utf8',
  'wrong-content-type',
  'body-on-bodyless',
  'path-nul-surrogate',
  'path-bad-percent',
  'path-long',
  'query-wrong-type',
  'query-nul-surrogate',
  'query-duplicate',
  'query-unknown',
  'query-bad-percent',
] as const;
type Category = (typeof CATEGORIES)[number];

function categoriesFor(op: Operation): Category[] {
  const out: Category[] = [];
  if (op.jsonBody) {
    out.push('body-wrong-type', 'body-nul-surrogate', 'body-1mb-string', 'body-deep-10000', 'body-not-utf8');
    // §2.6: POST /_admin/api reads the body as JSON whatever its Content-Type.
    if (op.path !== RPC_PATH) out.push('wrong-content-type');
  } else if (!op.takesBody) {
    out.push('body-on-bodyless');
  }
  if (op.pathParams.length > 0) out.push('path-nul-surrogate', 'path-bad-percent', 'path-long');
  if (op.queryParams.length > 0) out.push('query-wrong-type');
  out.push('query-nul-surrogate', 'query-duplicate', 'query-unknown', 'query-bad-percent');
  return out;
}

/** What fast-check generates: small numbers (picks), turned into a request by build(). */
interface Recipe {
  auth: number; // 0: anonymous, 1-3: login token, 4-5: API token
  paths: number[];
  pick: number;
  at: number;
  variant: number;
  method: number; // RPC method
  flag: boolean;
  extra: number[];
}

/** Uniform picks (fast-check's default bias towards small numbers would favour the first entries of every list). */
const pickArb = fc.noBias(fc.nat(1_000_000));
const recipeArb: fc.Arbitrary<Recipe> = fc.record({
  auth: fc.noBias(fc.nat(5)),
  paths: fc.array(pickArb, { minLength: 3, maxLength: 3 }),
  pick: pickArb,
  at: pickArb,
  variant: pickArb,
  method: pickArb,
  flag: fc.boolean(),
  extra: fc.array(pickArb, { minLength: 1, maxLength: 3 }),
});

const pickOf = <T>(list: readonly T[], n: number): T => list[n % list.length];

interface Built extends RawRequest {
  note: string; // what is hostile about it
}

function identityFor(op: Operation): { jwt: string; api: string } {
  if (op.path === '/logout' || op.path === '/refresh_token') return { jwt: F.me.spareJwt, api: F.me.api };
  if (op.path === '/me' || op.path.startsWith('/user/me')) return F.me;
  return F.admin;
}

const WHOLE_BODY = '(whole body)';

/**
 * The request for one recipe. `sub` narrows the pair: the body member (or the whole body) a body
 * category puts its invalid value in, the query parameter of query-wrong-type, or the RPC method.
 */
function build(op: Operation, category: Category, r: Recipe, sub?: string): Built {
  // Path parameters: a real thing or garbage each, percent-encoded.
  const pathValues: Record<string, string> = {};
  const pathRaw: Record<string, string> = {};
  op.pathParams.forEach((p, i) => {
    const v = pickOf(pathCandidates(p.name), r.paths[i % r.paths.length]);
    pathValues[p.name] = v;
    pathRaw[p.name] = enc(v);
  });
  const ctx: BuildContext = { op, pathValues };
  let note = '';
  const query: [string, string][] = []; // raw (already encoded) pairs
  let body: Buffer | undefined;
  let contentType: string | undefined;

  const isRpc = op.path === RPC_PATH;
  const anonymous = r.auth === 0;
  const rpcMethod = rpcMethods.find((m) => m.name === sub) ?? (rpcMethods.length ? pickOf(rpcMethods, r.method) : { name: 'get_user', args: ['userid'] });
  /** The body member this request is about: the pair's, else a pick (WHOLE_BODY only where `whole`). */
  const memberOf = (members: string[], whole: boolean): string | undefined => {
    if (sub !== undefined && !isRpc) return sub;
    if (members.length === 0) return whole ? WHOLE_BODY : undefined;
    return whole && r.pick % (members.length + 1) === members.length ? WHOLE_BODY : pickOf(members, r.pick);
  };

  const plausibleQueryValue = (p: Param, second = false): string => {
    const s = deref(p.schema);
    if (Array.isArray(s.enum)) return String(pickOf(s.enum as unknown[], second ? 1 : 0));
    const types = typesOf(s);
    if (types?.has('integer') || types?.has('number')) return String((typeof s.minimum === 'number' ? s.minimum : 1) + (second ? 1 : 0));
    return second ? 'b' : 'a';
  };

  switch (category) {
    case 'body-wrong-type': {
      if (isRpc) {
        const envelope = rpcEnvelope(rpcMethod, anonymous);
        const targets = ['method', 'auth_token', 'api_key', 'args', WHOLE_BODY, ...rpcMethod.args.map((a) => `args.${a}`)];
        const target = pickOf(targets, r.pick);
        let value: Json;
        let doc: Json = envelope;
        if (target === WHOLE_BODY) {
          value = pickOf([[], [1], 'str', 5, true, null] as Json[], r.variant);
          doc = value;
        } else if (target.startsWith('args.')) {
          const arg = target.slice(5);
          const types = RPC_BOOLEAN_ARGS.has(arg) ? ['boolean'] : ['string'];
          // A ref may be a number (RhodeCode's "str or int"); null counts as "not given".
          value = pickOf(wrongValuesFor(new Set(types), RPC_REF_ARGS.has(arg) ? ['null', 'integer', 'number'] : ['null']), r.variant);
          doc = setAt(envelope, ['args', arg], value);
        } else {
          const exclude = target === 'args' ? ['object', 'null'] : ['string'];
          value = pickOf(wrongValuesFor(new Set(exclude)), r.variant);
          if (target === 'api_key') {
            const { auth_token: _dropped, ...rest } = envelope;
            void _dropped;
            doc = { ...rest, api_key: value };
          } else {
            doc = setAt(envelope, [target], value);
          }
        }
        note = `${target} = ${JSON.stringify(value)} (method ${rpcMethod.name})`;
        body = bodyBytes(doc);
        break;
      }
      const schema = deref(op.jsonBody ?? {});
      const members = bodyMembers(op, ctx);
      const target = memberOf(members, true);
      if (target === WHOLE_BODY || target === undefined) {
        const value = pickOf(wrongValuesFor(typesOf(schema) ?? new Set(['object'])), r.variant);
        note = `body = ${JSON.stringify(value)}`;
        body = bodyBytes(value);
      } else {
        const base = plausibleObject(schema, ctx, target);
        const props = (schema.properties ?? {}) as Record<string, unknown>;
        const memberSchema = props[target] !== undefined ? deref(props[target]) : deref(schema.additionalProperties ?? {});
        const wrong = wrongValuesFor(typesOf(memberSchema));
        // An array member: sometimes a wrong item instead.
        const types = typesOf(memberSchema);
        let value: Json;
        if (types?.size === 1 && types.has('array') && r.flag && memberSchema.items) {
          value = [pickOf(wrongValuesFor(typesOf(deref(memberSchema.items))), r.variant)];
        } else {
          value = pickOf(wrong, r.variant);
        }
        note = `/${target} = ${JSON.stringify(value)}`;
        body = bodyBytes({ ...base, [target]: value });
      }
      break;
    }

    case 'body-nul-surrogate':
    case 'body-1mb-string':
    case 'body-not-utf8': {
      let doc: Json;
      if (isRpc) {
        doc = rpcEnvelope(rpcMethod, anonymous);
      } else {
        const members = bodyMembers(op, ctx);
        doc = plausibleObject(deref(op.jsonBody ?? {}), ctx, memberOf(members, false));
      }
      let positions = positionsOf(doc);
      if (isRpc && category === 'body-1mb-string') {
        // A long `id` is fine (echoed), and unknown members are ignored: only values that are read.
        positions = positions.filter((p) => p.kind === 'value' && p.path[0] !== 'id');
      }
      if (!isRpc) {
        const chosen = memberOf(bodyMembers(op, ctx), false);
        const under = positions.filter((p) => p.path[0] === chosen);
        if (under.length) positions = under;
      }
      if (positions.length === 0) throw new Error(`fuzz: no string in the plausible body of ${op.key}`);
      const pos = pickOf(positions, r.at);
      const where = `${pos.kind} at /${pos.path.join('/')}`;
      if (category === 'body-nul-surrogate') {
        const hostile = pickOf(HOSTILE_TEXT, r.variant);
        doc = editAt(doc, pos, (old) => insertAt(old, r.extra[0], hostile));
        note = `${JSON.stringify(hostile)} in the ${where}${r.flag ? ' (upper-case escapes)' : ''}`;
        body = bodyBytes(doc, undefined, { upperEscapes: r.flag });
      } else if (category === 'body-1mb-string') {
        const ch = pickOf(LONG_CHARS, r.variant);
        const long = ch.repeat(Math.ceil(MiB / Buffer.byteLength(ch)));
        doc = editAt(doc, pos, (old) => (r.flag ? old + long : long));
        note = `a 1 MiB string of ${JSON.stringify(ch)} as the ${where}`;
        body = bodyBytes(doc);
      } else {
        const variant = r.variant % (BAD_UTF8.length + 2);
        if (variant === BAD_UTF8.length) {
          note = 'body prefixed with bytes ff fe';
          body = Buffer.concat([Buffer.from([0xff, 0xfe]), bodyBytes(doc)]);
        } else if (variant === BAD_UTF8.length + 1) {
          note = 'body in UTF-16LE';
          body = Buffer.from(JSON.stringify(doc), 'utf16le');
        } else {
          const bytes = BAD_UTF8[variant];
          doc = editAt(doc, pos, (old) => insertAt(old, r.extra[0], SENTINEL));
          note = `bytes ${Buffer.from(bytes).toString('hex')} in the ${where}`;
          body = bodyBytes(doc, Buffer.from(bytes));
        }
      }
      break;
    }

    case 'body-deep-10000': {
      const deep = deepJson(r.variant);
      const shape = ['arrays', 'objects', 'arrays of objects'][r.variant % 3];
      if (isRpc) {
        const envelope = rpcEnvelope(rpcMethod, anonymous);
        const targets: Path[] = [['id'], ['args'], [], ...rpcMethod.args.map((a) => ['args', a])];
        const target = pickOf(targets, r.pick);
        note = `${target.length ? `/${target.join('/')}` : 'the whole body'} nested ${DEPTH} deep (${shape}; method ${rpcMethod.name})`;
        body = Buffer.from(target.length === 0 ? deep : JSON.stringify(setAt(envelope, target, SENTINEL)).replace(`"${SENTINEL_JSON}"`, deep));
        break;
      }
      const members = bodyMembers(op, ctx);
      const member = memberOf(members, true);
      const target = member === WHOLE_BODY ? undefined : member;
      if (target === undefined) {
        note = `the whole body nested ${DEPTH} deep (${shape})`;
        body = Buffer.from(deep);
      } else {
        const base = plausibleObject(deref(op.jsonBody ?? {}), ctx, target);
        note = `/${target} nested ${DEPTH} deep (${shape})`;
        body = Buffer.from(JSON.stringify({ ...base, [target]: SENTINEL }).replace(`"${SENTINEL_JSON}"`, deep));
      }
      break;
    }

    case 'wrong-content-type': {
      const doc = plausibleBody(op, ctx);
      const types = ['text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'text/plain; charset=utf-8'];
      contentType = pickOf(types, r.variant);
      const flat = doc && typeof doc === 'object' && !Array.isArray(doc) ? Object.entries(doc) : [];
      if (contentType.startsWith('text/plain')) body = Buffer.from(JSON.stringify(doc));
      else if (contentType === 'application/xml') body = Buffer.from(`<?xml version="1.0"?><body>${flat.map(([k, v]) => `<${k}>${typeof v === 'string' ? v : JSON.stringify(v)}</${k}>`).join('')}</body>`);
      else body = Buffer.from(new URLSearchParams(flat.map(([k, v]): [string, string] => [k, typeof v === 'string' ? v : JSON.stringify(v)])).toString());
      note = `a plausible body as ${contentType}`;
      break;
    }

    case 'body-on-bodyless': {
      const variants: [string, Buffer][] = [
        ['application/json', Buffer.from('{"a":1}')],
        ['application/json', Buffer.from('{}')],
        ['application/json', Buffer.from('[]')],
        ['application/json', Buffer.from('"x"')],
        ['application/json', Buffer.from(JSON.stringify({ name: 'fuzz', email: 'fuzz@example.test', password: 'correct horse battery staple' }))],
        ['text/plain', Buffer.from('hello')],
        ['application/x-www-form-urlencoded', Buffer.from('a=1&b=2')],
        ['application/octet-stream', Buffer.from([0, 1, 2, 0xff])],
        ['application/xml', Buffer.from('<a>1</a>')],
      ];
      const [ct, bytes] = pickOf(variants, r.variant);
      contentType = ct;
      body = bytes;
      note = `a ${ct} body ${JSON.stringify(bytes.toString('latin1'))} on a route that takes none`;
      break;
    }

    case 'path-nul-surrogate':
    case 'path-bad-percent':
    case 'path-long': {
      const p = pickOf(op.pathParams, r.pick);
      const current = pathRaw[p.name];
      if (category === 'path-long') {
        const size = pickOf([4096, 8000], r.variant);
        pathRaw[p.name] = r.flag ? current + 'a'.repeat(size) : 'a'.repeat(size);
        note = `:${p.name} of ${pathRaw[p.name].length} characters`;
      } else {
        const piece = pickOf(category === 'path-nul-surrogate' ? HOSTILE_PCT_TEXT : BAD_PERCENT, r.variant);
        pathRaw[p.name] = withPiece(current, piece, r.at, r.flag);
        note = `${piece} in :${p.name}`;
      }
      break;
    }

    case 'query-wrong-type': {
      const p = op.queryParams.find((q) => q.name === sub) ?? pickOf(op.queryParams, r.pick);
      const s = deref(p.schema);
      const types = typesOf(s);
      let candidates: string[];
      if (Array.isArray(s.enum)) {
        candidates = ['true', 'false', 'yes', '2', '-1', 'null', '', 'ALL', '1.0', '01', 'on', '[1]', '{}', ' 1'].filter((v) => !(s.enum as unknown[]).includes(v));
      } else if (types?.has('integer') || types?.has('number')) {
        const min = typeof s.minimum === 'number' ? s.minimum : -Infinity;
        const max = typeof s.maximum === 'number' ? s.maximum : Infinity;
        candidates = ['abc', '1.5', 'true', 'false', 'null', '[1]', '{}', '', '-1', '0', '1001', '99999999999999999999999', 'NaN', 'Infinity', '1,2'].filter(
          (v) => !(/^-?\d+$/.test(v) && Number(v) >= min && Number(v) <= max),
        );
      } else {
        candidates = [];
        if (typeof s.minLength === 'number' && s.minLength > 0) candidates.push('');
        if (typeof s.maxLength === 'number') candidates.push('a'.repeat(s.maxLength + 1));
      }
      if (candidates.length === 0 || r.variant % 5 === 4) {
        // As an array: the same key twice.
        query.push([enc(p.name), enc(plausibleQueryValue(p))], [enc(p.name), enc(plausibleQueryValue(p, true))]);
        note = `${p.name} given as an array`;
      } else {
        const v = pickOf(candidates, r.variant);
        query.push([enc(p.name), enc(v)]);
        note = `${p.name}=${JSON.stringify(v.length > 40 ? `${v.slice(0, 20)}…(${v.length})` : v)}`;
      }
      break;
    }

    case 'query-duplicate': {
      if (op.queryParams.length > 0) {
        const p = pickOf(op.queryParams, r.pick);
        query.push([enc(p.name), enc(plausibleQueryValue(p))], [enc(p.name), enc(plausibleQueryValue(p, !r.flag))]);
        note = `${p.name} twice`;
      } else {
        const k = pickOf(UNKNOWN_QUERY_KEYS, r.pick);
        query.push([enc(k), '1'], [enc(k), r.flag ? '1' : '2']);
        note = `unknown ${k} twice`;
      }
      break;
    }

    case 'query-unknown': {
      const known = new Set(op.queryParams.map((p) => p.name));
      const keys = r.extra.map((n) => pickOf(UNKNOWN_QUERY_KEYS, n)).filter((k) => !known.has(k));
      if (keys.length === 0) keys.push('bogus');
      if (r.flag && op.queryParams.length > 0) {
        const p = pickOf(op.queryParams, r.pick);
        query.push([enc(p.name), enc(plausibleQueryValue(p))]);
      }
      for (const k of keys) query.push([enc(k), enc(pickOf(['1', '0', 'true', '', 'x'], r.variant))]);
      note = `unknown ${keys.join(', ')}`;
      break;
    }

    case 'query-nul-surrogate':
    case 'query-bad-percent': {
      const piece = pickOf(category === 'query-nul-surrogate' ? HOSTILE_PCT_TEXT : BAD_PERCENT, r.variant);
      // Free-text parameters (no enum, not a number) are where hostile text could get through.
      const free = op.queryParams.filter((p) => !Array.isArray(deref(p.schema).enum) && typesOf(p.schema)?.has('string'));
      const p =
        free.length > 0 && r.extra[0] % 2 === 0 ? pickOf(free, r.pick) : op.queryParams.length > 0 && r.pick % 4 !== 3 ? pickOf(op.queryParams, r.pick) : undefined;
      const inKey = r.at % 4 === 0;
      if (p && !inKey) {
        query.push([enc(p.name), withPiece(enc(plausibleQueryValue(p)), piece, r.at, r.flag)]);
        note = `${piece} in the value of ${p.name}`;
      } else if (p) {
        query.push([withPiece(enc(p.name), piece, r.at, false), '1']);
        note = `${piece} in the key ${p.name}`;
      } else if (inKey) {
        query.push([withPiece('x', piece, r.at, false), '1']);
        note = `${piece} in an unknown key`;
      } else {
        query.push(['bogus', withPiece('a', piece, r.at, false)]);
        note = `${piece} in the value of an unknown key`;
      }
      break;
    }
  }

  // Path, query, headers.
  let path = op.path.replace(/\{([^}]+)\}/g, (_m, name: string) => pathRaw[name] ?? 'x');
  if (query.length) path += `?${query.map(([k, v]) => `${k}=${v}`).join('&')}`;
  const headers: Record<string, string> = {};
  let auth = 'anonymous';
  if (!anonymous && !isRpc) {
    const id = identityFor(op);
    const who = op.path.startsWith('/user/me') || op.path === '/me' || op.path === '/logout' || op.path === '/refresh_token' ? 'me' : 'admin';
    if (r.auth >= 4) {
      headers.authorization = `Bearer ${id.api}`;
      auth = `${who} (API token)`;
    } else {
      headers.authorization = `Bearer ${id.jwt}`;
      auth = `${who} (login token)`;
    }
  } else if (isRpc && !anonymous) {
    auth = 'admin API token in the envelope';
  }
  if (body === undefined && (category.startsWith('path-') || category.startsWith('query-')) && op.jsonBody) {
    // Otherwise plausible, so that the path or query is what is wrong.
    if (isRpc) {
      body = bodyBytes(rpcEnvelope(rpcMethod, anonymous));
    } else {
      body = bodyBytes(plausibleBody(op, ctx));
    }
    contentType = 'application/json';
  }
  if (body !== undefined) headers['content-type'] = contentType ?? 'application/json';
  return { method: op.method, path, headers, body, auth, note };
}

// ---------------------------------------------------------------------------------------------
// The verdict on one response.

function isErrorBody(body: unknown): boolean {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return false;
  const b = body as Record<string, unknown>;
  return typeof b.error === 'string' && typeof b.code === 'string' && typeof b.request_id === 'string';
}

/** undefined when the response is how the contract refuses an invalid request; else the problem. */
function problemWith(op: Operation, category: Category, res: RawResponse): string | undefined {
  if (res.status >= 500) return `${res.status}`;
  const body = jsonOf(res);
  if (res.status >= 400) {
    if (!isErrorBody(body)) return `${res.status} without the Error body`;
    // §0: text that breaks the rule gets /login's ordinary 401 (or a 400; 429 when throttled).
    if (op.key === 'POST /login' && (category === 'body-nul-surrogate' || category === 'body-not-utf8') && ![400, 401, 429].includes(res.status)) {
      return `${res.status} from /login for invalid text (400 or 401 expected)`;
    }
    return undefined;
  }
  if (res.status === 202 && (op.key === 'POST /password/reset' || op.key === 'POST /register')) return undefined;
  if (op.key === `POST ${RPC_PATH}` && res.status === 200) {
    if (!body || typeof body !== 'object' || Array.isArray(body)) return 'RPC answer that is not an envelope';
    const b = body as Record<string, unknown>;
    if (!('id' in b) || !('result' in b) || !('error' in b)) return 'RPC answer that is not an envelope';
    if (typeof b.error !== 'string') return 'RPC success (error null) for an invalid call';
    if (b.result !== null) return 'RPC error envelope with a non-null result';
    if (b.error === 'Internal server error') return 'RPC "Internal server error" envelope (a 500 in disguise)';
    return undefined;
  }
  return `${res.status} (success) for an invalid request`;
}

function printable(bytes: Buffer, max = 300): string {
  const text = bytes.toString('latin1');
  const esc = (s: string) =>
    s.replace(/[^\x20-\x7e]/g, (c) => {
      const code = c.charCodeAt(0);
      return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : c;
    });
  if (text.length <= max) return esc(text);
  return `${esc(text.slice(0, (max * 2) / 3))}…(${bytes.length} bytes)…${esc(text.slice(-max / 3))}`;
}

function describeExchange(req: Built, res: RawResponse | Error): string {
  return [
    `request:  ${req.method} ${printable(Buffer.from(req.path), 400)}`,
    `          auth: ${req.auth}${req.headers['content-type'] ? `; Content-Type: ${req.headers['content-type']}` : ''}`,
    `          hostile: ${req.note}`,
    req.body ? `          body (${req.body.length} bytes): ${printable(req.body)}` : '          no body',
    res instanceof Error ? `response: none (${res.message})` : `response: ${res.status} ${printable(res.body, 600)}`,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// The control read.

const NAMED_TABLES = ['users', 'user_tokens', 'user_settings', 'user_groups', 'user_group_members', 'user_group_grants', 'password_tokens', 'mail_outbox'];
/** Columns that authentication legitimately updates. */
const VOLATILE_COLUMNS: Record<string, string[]> = { users: ['last_seen', 'last_login'], user_tokens: ['last_used', 'last_ipaddr'] };

async function tablesToSnapshot(): Promise<string[]> {
  const { rows } = await t.knex.raw<{ rows: { table_name: string }[] }>(
    "select table_name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE' order by table_name",
  );
  const found = rows.map((r) => r.table_name);
  for (const name of NAMED_TABLES) if (!found.includes(name)) throw new Error(`control read: table ${name} is missing`);
  // Throttling, rate limits and jobs change on every request by design; knex's own bookkeeping
  // and an audit log (which records failed logins, §2.4b), with the webhook fan-out's cursor that
  // follows it, are not the data under test.
  return found.filter((n) => !/throttle|rate|job|audit|webhook_cursor|^knex_/i.test(n));
}

async function snapshotTables(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const table of await tablesToSnapshot()) {
    const rows = (await t.knex(table).select('*')) as Record<string, unknown>[];
    out[table] = rows
      .map((row) => {
        const copy = { ...row };
        for (const c of VOLATILE_COLUMNS[table] ?? []) delete copy[c];
        return JSON.stringify(copy, Object.keys(copy).sort());
      })
      .sort();
  }
  return out;
}

function stripVolatile(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripVolatile);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => !['last_seen', 'last_login', 'last_used', 'last_ipaddr', 'last_activity'].includes(k))
        .map(([k, v]) => [k, stripVolatile(v)]),
    );
  }
  return value;
}

async function snapshotApi(): Promise<Record<string, unknown>> {
  const get = async (path: string, token: string) => {
    const res = await send({ method: 'GET', path, headers: bearer(token), auth: '' });
    return { status: res.status, body: stripVolatile(jsonOf(res)) };
  };
  return {
    'GET /user/me': await get('/user/me', F.me.api),
    'GET /user/me/settings': await get('/user/me/settings', F.me.api),
    'GET /user/me/token': await get('/user/me/token', F.me.api),
    [`GET /user_group/${F.group.name}`]: await get(`/user_group/${enc(F.group.name)}`, F.admin.api),
    [`GET /user_group/${F.group2.name}`]: await get(`/user_group/${enc(F.group2.name)}`, F.admin.api),
    'GET /user/<user>': await get(`/user/${F.user.user.id}`, F.admin.api),
    'GET /user/<user>/settings': await get(`/user/${F.user.user.id}/settings`, F.admin.api),
    'GET /user?include_deactivated=1': await get('/user?include_deactivated=1', F.admin.api),
  };
}

async function outboxDrained(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const [{ count }] = await t.knex('mail_outbox').whereNull('sent').count<{ count: string }[]>('* as count');
    if (Number(count) === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tableDiff(before: Record<string, string[]>, after: Record<string, string[]>): string[] {
  const lines: string[] = [];
  const clip = (s: string) => (s.length > 300 ? `${s.slice(0, 300)}…(${s.length} chars)` : s);
  for (const table of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const b = new Set(before[table] ?? []);
    const a = new Set(after[table] ?? []);
    const gone = [...b].filter((r) => !a.has(r));
    const added = [...a].filter((r) => !b.has(r));
    if (!gone.length && !added.length) continue;
    lines.push(`${table}: ${gone.length} row(s) changed or removed, ${added.length} row(s) new or changed`);
    for (const r of gone.slice(0, 5)) lines.push(`  - ${clip(r)}`);
    for (const r of added.slice(0, 5)) lines.push(`  + ${clip(r)}`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// The run.

interface Pair {
  op: Operation;
  category: Category;
  sub?: string;
  label: string;
  seed: number;
}

function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The narrower pairs of a category, so that every body member, every query parameter and every
 * RPC method gets its own requests: [undefined] when the category is not split.
 */
function subsOf(op: Operation, category: Category): (string | undefined)[] {
  if (category.startsWith('body-') && category !== 'body-on-bodyless') {
    if (op.path === RPC_PATH) return rpcMethods.map((m) => m.name);
    const props = Object.keys((deref(op.jsonBody ?? {}).properties ?? {}) as Record<string, unknown>);
    if (props.length === 0) return [undefined]; // a map (settings): its keys are picked per request
    return category === 'body-wrong-type' || category === 'body-deep-10000' ? [...props, WHOLE_BODY] : props;
  }
  if (category === 'query-wrong-type') return op.queryParams.map((p) => p.name);
  return [undefined];
}

const allPairs: Pair[] = operations.flatMap((op) =>
  categoriesFor(op).flatMap((category) =>
    subsOf(op, category).map((sub) => {
      const label = `${op.key} [${category}${sub === undefined ? '' : ` ${sub}`}]`;
      return { op, category, sub, label, seed: (BASE_SEED ^ hash32(label)) | 0 };
    }),
  ),
);
const pairs = ONLY ? allPairs.filter((p) => ONLY.test(p.label)) : allPairs;
/** Cheap categories with many candidate values get more runs (they are refused before any query). */
const WEIGHT: Partial<Record<Category, number>> = { 'query-wrong-type': 3 };
const weightOf = (p: Pair) => WEIGHT[p.category] ?? 1;
const runsPerPair = Math.max(1, Math.ceil(TOTAL_RUNS / allPairs.reduce((sum, p) => sum + weightOf(p), 0)));

interface Failure {
  key: string;
  count: number;
  /** The members, parameters or RPC methods of the failing requests. */
  subs: Set<string>;
  example: string;
}
const failures = new Map<string, Failure>();
const sent = new Map<string, number>(); // by pair label
let snapshotBefore: Record<string, string[]>;
let apiBefore: Record<string, unknown>;
let fuzzFinished = false;

beforeAll(async () => {
  t = await createTestApp();
  agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  server = http.createServer(t.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;

  const factory = t.factory;
  const adminUser = await factory.loggedIn({ admin: true, name: 'fuzz-admin' });
  const adminApi = (await call('POST', '/user/me/token', adminUser.jwt, { name: 'rpc client' })).token as string;
  const meUser = await factory.loggedIn({ admin: true, name: 'fuzz-me' });
  const meApi = (await call('POST', '/user/me/token', meUser.jwt, { name: 'ci / deploys', scopes: ['api'], expires: FUTURE })).token as string;
  const spareJwt = await factory.login(meUser);
  const otherSession = await factory.login(meUser);
  const sessions = (await send({ method: 'GET', path: '/user/me/session', headers: bearer(otherSession), auth: '' })).body;
  const sessionId = (JSON.parse(sessions.toString('utf8')) as { id: string; current: boolean }[]).find((s) => s.current)?.id;
  if (!sessionId) throw new Error('fixture: no session id');
  await call('POST', '/user/me/settings', meUser.jwt, { theme: 'dark', 'dashboard.columns': ['name', 'email'], notifications: { mail: false } });

  const user = await factory.loggedIn({ name: 'fuzz-user' });
  await call('POST', '/user/me/token', user.jwt, { name: 'laptop 💻 / home', scopes: ['api:read'] });
  await call('POST', `/user/${user.user.id}/settings`, adminUser.jwt, { lang: 'en', theme: 'dark' });
  const member = await factory.user({ name: 'fuzz-member' });
  const gone = await factory.user({ name: 'fuzz-gone' });
  await call('DELETE', `/user/${gone.user.id}`, adminUser.jwt);
  // Created through the API: a welcome mail (mail_outbox) and a set-password link (password_tokens).
  const invited = await call('POST', '/user', adminUser.jwt, { name: 'fuzz-invited', email: 'fuzz-invited@example.test' });
  if (typeof invited.id !== 'string') throw new Error('fixture: POST /user gave no id');

  const group = (await call('POST', '/user_group', adminUser.jwt, { name: 'fuzz operators', description: 'on call' })) as { id: string; name: string };
  const group2 = (await call('POST', '/user_group', adminUser.jwt, { name: 'fuzz-auditors' })) as { id: string; name: string };
  await call('PUT', `/user_group/${group.id}/member/${user.user.id}`, adminUser.jwt);
  await call('PUT', `/user_group/${group2.id}/member/${member.user.id}`, adminUser.jwt);
  await call('PUT', `/user_group/${group.id}/grant/user_group/${group2.id}`, adminUser.jwt, { permission: 'usergroup.read' });
  await call('PUT', `/user_group/${group.id}/grant/user/${member.user.id}`, adminUser.jwt, { permission: 'usergroup.write' });

  F = {
    admin: { ...adminUser, api: adminApi },
    me: { ...meUser, api: meApi, spareJwt, sessionId },
    user,
    member,
    gone,
    group: { id: group.id, name: group.name },
    group2: { id: group2.id, name: group2.name },
  };

  await outboxDrained(10_000);
  snapshotBefore = await snapshotTables();
  apiBefore = await snapshotApi();
}, 60_000);

afterAll(async () => {
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  agent?.destroy();
  await t?.close();
});

describe('spec-driven fuzzing', () => {
  it('covers every operation of openapi.yaml', () => {
    expect(operations.length).toBeGreaterThan(0);
    expect(rpcOperation).toBeDefined();
    // The RPC method table in the spec is what the envelopes are built from.
    expect(rpcMethods.length).toBeGreaterThanOrEqual(16);
    for (const op of operations) {
      const categories = allPairs.filter((p) => p.op === op).map((p) => p.category);
      if (!categories.some((c) => c.startsWith('body-') || c === 'wrong-content-type')) throw new Error(`${op.key}: no body category`);
      if (!categories.includes('query-unknown')) throw new Error(`${op.key}: not fuzzed`);
      if (op.pathParams.length && !categories.includes('path-nul-surrogate')) throw new Error(`${op.key}: path not fuzzed`);
      if (op.jsonBody && !categories.includes('body-not-utf8')) throw new Error(`${op.key}: body not fuzzed`);
    }
    expect(allPairs.reduce((sum, p) => sum + runsPerPair * weightOf(p), 0)).toBeGreaterThanOrEqual(TOTAL_RUNS);
  });

  it(`refuses every hostile request without a 5xx (seed ${BASE_SEED}, ${TOTAL_RUNS}+ requests)`, async () => {
    const started = Date.now();
    let total = 0;
    for (const pair of pairs) {
      let run = 0;
      let lastError: string | undefined;
      const property = fc.asyncProperty(recipeArb, async (recipe) => {
        run++;
        const req = build(pair.op, pair.category, recipe, pair.sub);
        let res: RawResponse | Error;
        try {
          res = await send(req);
        } catch (err) {
          res = err as Error;
        }
        total++;
        sent.set(pair.label, (sent.get(pair.label) ?? 0) + 1);
        const problem = res instanceof Error ? `no response (${res.message})` : problemWith(pair.op, pair.category, res);
        if (TRACE) {
          const answer = res instanceof Error ? res.message : `${res.status} ${printable(res.body, 120)}`;
          fs.appendFileSync(TRACE, `${pair.label}\t${req.auth}\t${req.note}\t${printable(Buffer.from(req.path), 160)}\t${answer}\n`);
        }
        if (problem === undefined) return;
        const status = res instanceof Error ? 'none' : String(res.status);
        const key = `${pair.op.key} | ${pair.category} | ${status} | ${problem}`;
        const example = [
          `${pair.op.key} [${pair.category}]: ${problem}`,
          describeExchange(req, res),
          `seed:     FUZZ_SEED=${BASE_SEED} (this pair's fast-check seed ${pair.seed}, run ${run})`,
          `again:    FUZZ_SEED=${BASE_SEED} FUZZ_ONLY='${pair.label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' npm test -- test/http/fuzz.test.ts`,
        ].join('\n');
        if (COLLECT) {
          const f = failures.get(key) ?? { key, count: 0, subs: new Set<string>(), example };
          f.count++;
          if (pair.sub !== undefined) f.subs.add(pair.sub);
          failures.set(key, f);
          return;
        }
        lastError = example;
        throw new Error(example);
      });
      try {
        await fc.assert(property, { seed: pair.seed, numRuns: runsPerPair * weightOf(pair), endOnFailure: true });
      } catch (err) {
        throw new Error(`${lastError ?? ''}\n\nfast-check: ${(err as Error).message.split('\n').slice(0, 3).join('\n')}`);
      }
    }
    fuzzFinished = true;
    if (COLLECT && failures.size > 0) {
      const list = [...failures.values()].sort((a, b) => a.key.localeCompare(b.key));
      const report = [
        `${failures.size} distinct failures in ${total} requests (FUZZ_SEED=${BASE_SEED}, ${((Date.now() - started) / 1000).toFixed(1)} s):`,
        ...list.map((f) => `  ${f.key}  ×${f.count}${f.subs.size ? `  (${[...f.subs].join(', ')})` : ''}`),
        '',
        'First example of each:',
        ...list.map((f) => `\n${f.example}`),
      ].join('\n');
      if (process.env.FUZZ_REPORT) fs.writeFileSync(process.env.FUZZ_REPORT, report);
      throw new Error(report);
    }
    if (!ONLY) {
      expect(total).toBeGreaterThanOrEqual(TOTAL_RUNS);
      // Every operation got every category it has.
      const missing = allPairs.filter((p) => !sent.get(p.label)).map((p) => p.label);
      expect(missing).toEqual([]);
    }
  }, 600_000);

  it('changed nothing: the tables and the API read as before', async () => {
    await outboxDrained(5_000);
    const lines = tableDiff(snapshotBefore, await snapshotTables());
    const apiAfter = await snapshotApi();
    for (const [what, before] of Object.entries(apiBefore)) {
      if (JSON.stringify(before) !== JSON.stringify(apiAfter[what])) {
        lines.push(`${what}: before ${JSON.stringify(before).slice(0, 400)}\n  after ${JSON.stringify(apiAfter[what]).slice(0, 400)}`);
      }
    }
    if (lines.length) throw new Error(`the hostile requests changed data${fuzzFinished ? '' : ' (the fuzzing stopped early)'} (FUZZ_SEED=${BASE_SEED}):\n${lines.join('\n')}`);
  }, 60_000);
});
