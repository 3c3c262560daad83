import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import os from 'node:os';
import path from 'node:path';

/**
 * The fault suite's harness: the real service as a child process (`node --import tsx
 * src/server.ts`, as test/server.test.ts starts it), its JSON log lines, and an HTTP client on
 * node:http that records every request's outcome with timestamps and never throws.
 */

const root = path.join(__dirname, '..', '..');

export const ADMIN = { email: 'admin@faults.example.test', password: 'fault suite admin password' };
export const JWT_SECRET = 'fault-suite-jwt-secret-0123456789abcdefghijklmnop';
/** Required with Postgres (the suite's services run on a server database). */
export const AUDIT_KEY = 'fault-suite-audit-key-0123456789abcdefghijklmnop';
export const MFA_KEY = 'fault-suite-mfa-key-0123456789abcdefghijklmnopqr';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface LogLine {
  raw: string;
  /** The parsed JSON line, or undefined for anything else (stack traces, warnings). */
  json?: { level?: number; msg?: string; time?: number; [k: string]: unknown };
  stream: 'stdout' | 'stderr';
  /** When the harness read it. */
  at: number;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

export interface Service {
  child: ChildProcess;
  pid: number;
  port: number;
  lines: LogLine[];
  /** Everything the process wrote, for failure messages. */
  output(): string;
  exited: Promise<Exit>;
  exit?: Exit;
}

const running = new Set<Service>();

/** The environment every instance gets (plus what a test adds). */
export function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: '0',
    BCRYPT_COST: '4',
    THROTTLE_IP_PER_MINUTE: '0',
    JWT_SECRET,
    MFA_KEY,
    AUDIT_KEY,
    ADMIN_EMAIL: ADMIN.email,
    ADMIN_PASSWORD: ADMIN.password,
    LOG_LEVEL: 'info',
    ...extra,
  };
}

/**
 * Starts the service and resolves once it logged "listening" (with its port). `sources`: the tree
 * whose src/server.ts runs (another build's, in test/faults/builds.test.ts).
 */
export function startService(env: NodeJS.ProcessEnv, timeoutMs = 60_000, sources = root): Promise<Service> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: sources,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  let text = '';
  const exited = new Promise<Exit>((resolve) =>
    child.on('exit', (code, signal) => {
      service.exit = { code, signal, at: Date.now() };
      running.delete(service);
      resolve(service.exit);
    }),
  );
  const service: Service = { child, pid: child.pid ?? -1, port: 0, lines, output: () => text, exited };
  running.add(service);

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`the service did not start within ${timeoutMs} ms:\n${text}`));
      child.kill('SIGKILL');
    }, timeoutMs);
    const reader = (stream: 'stdout' | 'stderr') => {
      let partial = '';
      return (chunk: Buffer) => {
        const s = chunk.toString();
        text += s;
        partial += s;
        const parts = partial.split('\n');
        partial = parts.pop() ?? '';
        for (const raw of parts) {
          if (!raw.trim()) continue;
          let json: LogLine['json'];
          try {
            const parsed: unknown = JSON.parse(raw);
            if (parsed && typeof parsed === 'object') json = parsed as LogLine['json'];
          } catch {
            // not a log line
          }
          lines.push({ raw, json, stream, at: Date.now() });
          if (json?.msg === 'listening' && typeof json.port === 'number' && !service.port) {
            service.port = json.port;
            clearTimeout(timer);
            resolve(service);
          }
        }
      };
    };
    child.stdout!.on('data', reader('stdout'));
    child.stderr!.on('data', reader('stderr'));
    void exited.then((exit) => {
      clearTimeout(timer);
      reject(new Error(`the service exited (code ${exit.code}, signal ${exit.signal}) before listening:\n${text}`));
    });
  });
}

/** SIGTERM, and SIGKILL if it has not exited within `graceMs`. Resolves with its exit. */
export async function stopService(service: Service | undefined, graceMs = 20_000): Promise<Exit | undefined> {
  if (!service) return undefined;
  if (service.exit) return service.exit;
  service.child.kill('SIGTERM');
  const timer = setTimeout(() => service.child.kill('SIGKILL'), graceMs);
  const exit = await service.exited;
  clearTimeout(timer);
  return exit;
}

/** For afterAll: whatever this file started and is still running gets SIGKILL. */
export async function killAllServices(): Promise<void> {
  const left = [...running];
  for (const s of left) s.child.kill('SIGKILL');
  await Promise.all(left.map((s) => s.exited));
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `accounts-faults-${prefix}-`));
}

// --- HTTP -------------------------------------------------------------------------------------

export interface Outcome {
  /** What the test calls it ("write", "read", "token", "blocked", ...). */
  kind: string;
  method: string;
  path: string;
  /** Settings key or token name this request writes, if it writes. */
  writes?: { type: 'setting'; userId: string; key: string; value: string } | { type: 'token'; name: string };
  start: number;
  /** When the request (headers and body) was handed to the socket. */
  sent?: number;
  /** When the response's headers arrived. */
  responded?: number;
  end: number;
  status?: number;
  headers?: IncomingHttpHeaders;
  body?: string;
  json?: unknown;
  /** A connection-level failure: ECONNRESET, ECONNREFUSED, "socket hang up", a timeout... */
  error?: string;
}

export interface CallOptions {
  port: number;
  method: string;
  path: string;
  token?: string;
  body?: unknown;
  agent: http.Agent;
  kind?: string;
  writes?: Outcome['writes'];
  timeoutMs?: number;
  /**
   * Send the headers and the first half of the body at once, the rest when this resolves (a
   * request that is surely in flight while it waits).
   */
  holdBodyUntil?: Promise<void>;
  onSent?: () => void;
}

export function call(options: CallOptions): Promise<Outcome> {
  const { port, method, agent, token } = options;
  const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
  const outcome: Outcome = {
    kind: options.kind ?? 'request',
    method,
    path: options.path,
    writes: options.writes,
    start: Date.now(),
    end: 0,
  };
  return new Promise((resolve) => {
    let settled = false;
    const settle = (error?: string) => {
      if (settled) return;
      settled = true;
      outcome.end = Date.now();
      if (error !== undefined) outcome.error = error;
      resolve(outcome);
    };
    const headers: http.OutgoingHttpHeaders = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const req = http.request({ host: '127.0.0.1', port, method, path: options.path, headers, agent });
    req.setTimeout(options.timeoutMs ?? 15_000, () => req.destroy(Object.assign(new Error('no answer in time'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => settle(err.code ? `${err.code}: ${err.message}` : err.message));
    req.on('finish', () => {
      outcome.sent = Date.now();
      options.onSent?.();
    });
    req.on('response', (res) => {
      outcome.responded = Date.now();
      outcome.status = res.statusCode;
      outcome.headers = res.headers;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err: NodeJS.ErrnoException) => settle(`response cut: ${err.code ?? ''} ${err.message}`));
      res.on('aborted', () => settle('response cut: aborted'));
      res.on('end', () => {
        outcome.body = Buffer.concat(chunks).toString();
        try {
          outcome.json = outcome.body ? JSON.parse(outcome.body) : undefined;
        } catch {
          // not JSON
        }
        settle();
      });
    });
    if (payload && options.holdBodyUntil) {
      const half = Math.max(1, Math.floor(payload.length / 2));
      req.write(payload.subarray(0, half));
      void options.holdBodyUntil.then(() => {
        if (!settled) req.end(payload.subarray(half));
      });
    } else {
      req.end(payload);
    }
  });
}

export const ok = (o: Outcome): boolean => o.status !== undefined && o.status >= 200 && o.status < 300 && !o.error;

/** POST /login as the admin; throws unless 200. */
export async function login(port: number, agent = new http.Agent({ keepAlive: false })): Promise<string> {
  const res = await call({ port, agent, method: 'POST', path: '/login', body: ADMIN });
  if (res.status !== 200) throw new Error(`admin login failed: ${res.status ?? res.error} ${res.body ?? ''}`);
  return (res.json as { jwt_token: string }).jwt_token;
}

/** Admin-created users (no mail, no password) whose settings the admin writes. */
export async function createUsers(port: number, token: string, prefix: string, n: number): Promise<string[]> {
  const agent = new http.Agent({ keepAlive: false });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = `${prefix}-${i}`;
    const res = await call({ port, agent, token, method: 'POST', path: '/user?send_mail=0', body: { name, email: `${name}@faults.example.test` } });
    if (res.status !== 201) throw new Error(`creating user ${name} failed: ${res.status ?? res.error} ${res.body ?? ''}`);
    ids.push((res.json as { id: string }).id);
  }
  return ids;
}

/** One line per outcome, for failure messages. */
export function describeOutcome(o: Outcome, t0: number): string {
  const what = o.error ?? `${o.status} ${o.body?.slice(0, 160) ?? ''}`;
  const conn = o.headers?.connection ? ` [connection: ${o.headers.connection}]` : '';
  return `+${o.start - t0}ms..+${o.end - t0}ms ${o.method} ${o.path}: ${what}${conn}`;
}

/** An outage's answer as API.md §0 has it: `503 unavailable` with `Retry-After`. */
export function isUnavailable(o: Outcome): boolean {
  return o.status === 503 && (o.json as { code?: string } | undefined)?.code === 'unavailable' && o.headers?.['retry-after'] !== undefined;
}

/** Outcomes for an assertion's message: how many, the first `max` of them, then `context` (when the fault came and went). */
export function listOutcomes(list: Outcome[], t0: number, context: string, max = 15): string {
  return `${list.length} of them, e.g.:\n  ${list
    .slice(0, max)
    .map((o) => describeOutcome(o, t0))
    .join('\n  ')}\n(${context})`;
}

/** Keys per user we write at most (the service allows 256). */
export const KEYS_PER_USER = 240;

/**
 * Unique settings writes for one load loop: key n goes to user floor(n / KEYS_PER_USER), so no
 * user reaches the 256-key limit. Returns undefined once the users are full.
 */
export function settingWrite(users: string[], loop: string, n: number): { userId: string; key: string; value: string } | undefined {
  const userId = users[Math.floor(n / KEYS_PER_USER)];
  if (!userId) return undefined;
  return { userId, key: `${loop}-${n}`, value: `value-${loop}-${n}-${Math.random().toString(36).slice(2, 8)}` };
}

/** With FAULTS_DEBUG_DIR set, a scenario's record goes to <dir>/<name>.json (for a look afterwards). */
export function dumpRun(name: string, record: unknown): void {
  const dir = process.env.FAULTS_DEBUG_DIR;
  if (!dir) return;
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(record, (_k, v: unknown) => (v instanceof Map ? Object.fromEntries(v) : v instanceof Set ? [...v] : v), 2));
}
