import http from 'node:http';
import type { Socket } from 'node:net';

/**
 * Every property that Express, its router, the libraries of the request path and this service
 * set on a request during its life. Express gives each request and response a new prototype
 * (`Object.setPrototypeOf(req, app.request)`), and from then on V8 adds a property to them by
 * its slow path: about 2 µs a property on this machine (measured: five added after the prototype
 * change, 10 µs; the same five declared when the object is made and then set, 0.2 µs). Declared
 * here, they exist before Express changes the prototype, and setting them later costs a store.
 * Bench 2026-12-07 (load 18): without it user_me 1.88x the floor's CPU a request, with it 1.38x (worse in each of 3 rounds; 0.54x against 0.69x its req/s).
 */
export const REQUEST_FIELDS = [
  // Express, its router, body-parser, parseurl (which caches the parsed URL on the request)
  'res',
  'next',
  'baseUrl',
  'originalUrl',
  'params',
  'route',
  'body',
  '_parsedUrl',
  // express-openapi-validator, express-rate-limit, pino-http (at log level info)
  'openapi',
  'rateLimit',
  'log',
  'allLogs',
  // this service (see the `declare module` blocks of http/)
  'id',
  'isHead',
  'operation',
  'pathParams',
  'callerLookup',
  'caller',
  'invalidInput',
  'bodyNotUtf8',
] as const;

/** Express sets `locals`; `statusCode` and `statusMessage` have their defaults on Node's prototype, so the first set adds them. */
export const RESPONSE_FIELDS = ['locals', 'log', 'allLogs'] as const;

/** A request with REQUEST_FIELDS declared (undefined until set, as they would be absent), and when it arrived. */
export class ServiceRequest extends http.IncomingMessage {
  /** `performance.now()` when its headers had been read. */
  readonly arrived = performance.now();
  /**
   * It asked `Expect: 100-continue` and the server has not said `100 Continue` yet: the client
   * waits to send its body until the body is about to be read (see read-body.ts).
   */
  awaitingContinue = false;

  constructor(socket: Socket) {
    super(socket);
    const self = this as unknown as Record<string, unknown>;
    for (const field of REQUEST_FIELDS) self[field] = undefined;
  }
}

/** A response with RESPONSE_FIELDS declared, and Node's defaults of `statusCode` and `statusMessage` as its own. */
export class ServiceResponse<Request extends http.IncomingMessage = http.IncomingMessage> extends http.ServerResponse<Request> {
  constructor(req: Request) {
    super(req);
    const self = this as unknown as Record<string, unknown>;
    for (const field of RESPONSE_FIELDS) self[field] = undefined;
    this.statusCode = 200;
    this.statusMessage = undefined as unknown as string;
  }
}

/** The accessor (getter or setter) `name` has on `object` or its prototypes, if any. */
function accessorOn(object: object | null, name: string): boolean {
  for (let o = object; o; o = Object.getPrototypeOf(o) as object | null) {
    const d = Object.getOwnPropertyDescriptor(o, name);
    if (d) return d.get !== undefined || d.set !== undefined;
  }
  return false;
}

/**
 * Fails, naming it, if a declared field is an accessor on the prototypes Express gives requests
 * or responses (`app.request`, `app.response`): an own property would hide it. Run at start-up,
 * so a library upgrade that turns one into a getter stops the service rather than breaking it.
 */
export function assertFieldsAreData(app: { request: object; response: object }): void {
  const hidden = [
    ...REQUEST_FIELDS.filter((f) => accessorOn(app.request, f)).map((f) => `request.${f}`),
    ...RESPONSE_FIELDS.filter((f) => accessorOn(app.response, f)).map((f) => `response.${f}`),
    ...['statusCode', 'statusMessage'].filter((f) => accessorOn(app.response, f)).map((f) => `response.${f}`),
  ];
  if (hidden.length) throw new Error(`declared request/response fields would hide accessors: ${hidden.join(', ')}`);
}
