import express, { type RequestHandler } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import type { Logger } from 'pino';
import type { Config } from './config';
import type { Services } from './container';
import type { DatabaseAvailability } from './db/availability';
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
import { webhookHandlers } from './http/handlers/webhooks';
import { chain, dispatch } from './http/mount';
import { enforcePolicy } from './http/policy';
import { parseLimit, readBody } from './http/read-body';
import { assertFieldsAreData } from './http/request-objects';
import { requestLogger } from './http/request-logger';
import { route } from './http/route';
import { RouteTable, type Spec } from './http/route-table';
import { textRule } from './http/text-rule';
import { validate } from './http/validate';
import { ipThrottle } from './http/throttle';
import type { Metrics } from './metrics';
import { RpcApi } from './rpc/api';
import type { MaintenanceStore } from './stores/maintenance-store';
import type { RateLimitStore } from './stores/rate-limit-store';

export interface AppDeps {
  config: Pick<Config, 'bodyLimit' | 'trustProxy' | 'cookieSecure' | 'validateResponses' | 'throttleIpPerMinute' | 'allowRegistration' | 'corsOrigins' | 'metricsToken' | 'docs' | 'appUrl' | 'consoleDir' | 'requireMfaForAdmins'>;
  services: Services;
  /** The database's own probe (`/readyz`). */
  maintenance: MaintenanceStore;
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

/**
 * The service as an Express app: the route table and the handlers come from openapi.yaml (by
 * operationId), and a request goes through, in order: request id → security headers → CORS (when
 * CORS_ORIGINS is set) → route → policy (who may call) → body → text rule → validation →
 * handler; a path no operation has goes from route to the docs page (`/docs`, unless DOCS=0),
 * then the web console (its pages and `/assets/`, once built), then 404. Any failure goes to the
 * one error handler. The policy comes before the body: a caller the
 * operation does not accept is answered before a byte of the body is read (http/read-body.ts).
 */
export function createApp({ config, services, maintenance, log, apiSpec, availability, rateLimits, clock, metrics }: AppDeps): express.Express {
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
    webhookHandlers(services.webhooks),
    registrationHandlers(services.registration, config.allowRegistration, ipThrottle('register', config.throttleIpPerMinute, rateLimits, clock)),
    healthHandlers(maintenance, availability),
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
      route(table, [...(config.docs ? [docsPage()] : []), ...(webConsole ? [webConsole] : [])]),
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
