import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from './config';
import type { Services } from './container';
import type { DatabaseAvailability } from './db/availability';
import { NotFoundError, ValidationError } from './domain/errors';
import { isRfc3339DateTime } from './domain/timestamps';
import type { Clock } from './domain/types';
import { crossOrigin, securityHeaders } from './http/browsers';
import { consolePages } from './http/console';
import { docsPage, SPEC_OPERATIONS, specHandlers } from './http/docs';
import { errorHandler } from './http/error-handler';
import { metricsHandlers } from './http/handlers/metrics';
import { auditHandlers } from './http/handlers/audit';
import { groupHandlers } from './http/handlers/groups';
import { healthHandlers } from './http/handlers/health';
import { meHandlers } from './http/handlers/me';
import { passwordHandlers } from './http/handlers/passwords';
import { REGISTRATION_OPERATIONS, registrationHandlers } from './http/handlers/registration';
import { rpcHandlers } from './http/handlers/rpc';
import { mfaHandlers } from './http/handlers/mfa';
import { sessionHandlers } from './http/handlers/session';
import { settingsHandlers } from './http/handlers/settings';
import { tokenHandlers } from './http/handlers/tokens';
import { userHandlers } from './http/handlers/users';
import { chain, dispatch } from './http/mount';
import { enforcePolicy } from './http/policy';
import { hasBody, parseLimit, readBody } from './http/read-body';
import { assertFieldsAreData } from './http/request-objects';
import { requestLogger } from './http/request-logger';
import { RouteTable, type Spec } from './http/route-table';
import { textRule } from './http/text-rule';
import { ipThrottle } from './http/throttle';
import type { Metrics } from './metrics';
import { RpcApi } from './rpc/api';
import type { RateLimitStore } from './stores/rate-limit-store';

export interface AppDeps {
  config: Pick<Config, 'bodyLimit' | 'trustProxy' | 'cookieSecure' | 'validateResponses' | 'throttleIpPerMinute' | 'allowRegistration' | 'corsOrigins' | 'metricsToken' | 'docs' | 'appUrl' | 'consoleDir' | 'requireMfaForAdmins'>;
  services: Services;
  db: Knex;
  log: Logger;
  apiSpec: Record<string, unknown>;
  /** Logs database outages once each; without it an outage is still a 503, just not tracked. */
  availability?: DatabaseAvailability;
  /** Where the per-IP throttles count (shared by every instance). */
  rateLimits: RateLimitStore;
  clock: Clock;
  /** What `GET /metrics` shows (the server counts the answers in it: see countAnswers). */
  metrics: Metrics;
}

declare module 'express-serve-static-core' {
  interface Request {
    /** A HEAD request, routed as the GET it mirrors. */
    isHead?: boolean;
  }
}

/**
 * Matches the request against the route table (once; nothing else routes). `HEAD` is answered
 * wherever `GET` is: matched, authorised and validated as the `GET` it mirrors (Node decided when
 * the request arrived that its answer has no body). No operation: `404 Route Not Found`.
 */
function route(table: RouteTable): RequestHandler {
  return (req, _res, next) => {
    if (req.method === 'HEAD') {
      req.method = 'GET';
      req.isHead = true;
    }
    let matched;
    try {
      matched = table.match(req.method, req.path);
    } catch {
      return next(new ValidationError('the path has a malformed percent-encoding', [{ path: '/path', message: 'is not valid percent-encoding' }]));
    }
    if (!matched) return next(new NotFoundError('Route Not Found'));
    req.operation = matched.operation;
    req.pathParams = matched.params;
    next();
  };
}

/**
 * express-openapi-validator (its public middleware, whole) checks the request's parameters and
 * body against the operation, and in tests every response. An operation with no input, called
 * with no query string and no body, has nothing to check: the validator is skipped then (unless
 * responses are validated), which is most authenticated reads (GET /user/me).
 */
function validate(validator: RequestHandler[], validateResponses: boolean): RequestHandler {
  const run = chain(validator);
  return (req: Request, res: Response, next: NextFunction) => {
    const operation = req.operation!;
    if (operation.body === 'none' && hasBody(req)) {
      return next(new ValidationError('this route takes no request body', [{ path: '/body', message: 'must be empty' }]));
    }
    if (!validateResponses && !operation.hasInput && !req.url.includes('?')) return next();
    run(req, res, next);
  };
}

/**
 * The service as an Express app: the route table and the handlers come from openapi.yaml (by
 * operationId), and a request goes through, in order: request id → security headers → CORS (when
 * CORS_ORIGINS is set) → the docs page (`/docs`, unless DOCS=0) → the web console (its
 * pages and `/assets/`, once built) → route → policy (who may call) → body → text rule → validation →
 * handler; any failure to the one error handler. The policy comes before the body: a caller the
 * operation does not accept is answered before a byte of the body is read (http/read-body.ts).
 */
export function createApp({ config, services, db, log, apiSpec, availability, rateLimits, clock, metrics }: AppDeps): express.Express {
  const notServed = new Set([...(config.allowRegistration ? [] : REGISTRATION_OPERATIONS), ...(config.docs ? [] : SPEC_OPERATIONS)]);
  const table = new RouteTable(apiSpec as unknown as Spec, notServed);
  const rpc = new RpcApi(services, (apiSpec as unknown as Spec).paths['/_admin/api']?.post?.['x-rpc-methods' as never]);
  const handlers = dispatch(table, [
    sessionHandlers(
      services.auth,
      services.tokens,
      { secure: config.cookieSecure },
      ipThrottle('login', config.throttleIpPerMinute, rateLimits, clock),
      ipThrottle('login_mfa', config.throttleIpPerMinute, rateLimits, clock),
    ),
    mfaHandlers(services.mfa, services.users),
    meHandlers(services.users, services.groups, services.emailChanges),
    userHandlers(services.users, services.groups),
    passwordHandlers(services.passwords, services.users, ipThrottle('password_reset', config.throttleIpPerMinute, rateLimits, clock)),
    tokenHandlers(services.tokens, services.users),
    settingsHandlers(services.settings, services.users),
    groupHandlers(services.groups),
    auditHandlers(services.audit),
    registrationHandlers(services.registration, config.allowRegistration, ipThrottle('register', config.throttleIpPerMinute, rateLimits, clock)),
    healthHandlers(db, availability),
    specHandlers(apiSpec, config.appUrl, config.docs),
    metricsHandlers(metrics),
    rpcHandlers(rpc, services.auth, log),
  ]);
  const validator = OpenApiValidator.middleware({
    apiSpec: apiSpec as never,
    validateRequests: { allowUnknownQueryParameters: false },
    validateResponses: config.validateResponses,
    validateSecurity: false, // the policy (http/policy.ts) authenticates and authorises, before validation
    validateFormats: true,
    ajvFormats: { mode: 'fast' },
    fileUploader: false, // the spec has no multipart bodies
    formats: { 'date-time': isRfc3339DateTime },
  });

  const cors = crossOrigin(config.corsOrigins);
  const webConsole = consolePages({ dir: config.consoleDir, registration: config.allowRegistration });

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', config.trustProxy);
  // One Express layer for the whole way (each layer costs every request a path match), then the
  // one error handler.
  app.use(
    chain([
      requestLogger(log, table.queryNames) as RequestHandler,
      securityHeaders(),
      ...(cors ? [cors] : []),
      ...(config.docs ? [docsPage()] : []),
      ...(webConsole ? [webConsole] : []),
      route(table),
      enforcePolicy(services.auth, { requireMfaForAdmins: config.requireMfaForAdmins }, config.metricsToken) as RequestHandler,
      readBody(parseLimit(config.bodyLimit)),
      textRule,
      validate(validator, config.validateResponses),
      handlers,
    ]),
  );
  app.use(errorHandler(log, availability));
  assertFieldsAreData(app);
  return app;
}
