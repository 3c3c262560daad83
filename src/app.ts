import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { Config } from './config';
import type { DatabaseAvailability } from './db/availability';
import type { Clock } from './domain/types';
import type { RateLimitStore } from './stores/rate-limit-store';
import type { Services } from './container';
import { NotFoundError, ValidationError } from './domain/errors';
import { authenticate } from './http/authenticate';
import { errorHandler } from './http/error-handler';
import { groupRoutes } from './http/group-routes';
import { healthRoutes } from './http/health-routes';
import { meRoutes } from './http/me-routes';
import { passwordRoutes } from './http/password-routes';
import { requestLogger } from './http/request-logger';
import { revokeRoutes } from './http/revoke-routes';
import { rpcBodyReader, rpcRoutes } from './http/rpc-routes';
import { sessionRoutes } from './http/session-routes';
import { settingsRoutes } from './http/settings-routes';
import { textRule, verifyUtf8 } from './http/text-rule';
import { ipThrottle } from './http/throttle';
import { tokenRoutes } from './http/token-routes';
import { userRoutes } from './http/user-routes';
import { isRfc3339DateTime } from './domain/timestamps';

export interface AppDeps {
  config: Pick<Config, 'bodyLimit' | 'trustProxy' | 'cookieSecure' | 'validateResponses' | 'throttleIpPerMinute'>;
  services: Services;
  db: Knex;
  log: Logger;
  apiSpec: Record<string, unknown>;
  /** Logs database outages once each; without it an outage is still a 503, just not tracked. */
  availability?: DatabaseAvailability;
  /** Where the per-IP throttles count (shared by every instance). */
  rateLimits: RateLimitStore;
  clock: Clock;
}

type Operation = { requestBody?: unknown; parameters?: unknown[] };
type ValidatedRequest = Request & { openapi?: { schema?: Operation; openApiRoute?: string } };

function hasBody(req: Request): boolean {
  return Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

/** After validation, one step (each middleware costs every request): a route without a request body in the spec takes none. */
function afterValidation(req: ValidatedRequest, _res: Response, next: NextFunction): void {
  if (hasBody(req) && req.openapi?.schema && !req.openapi.schema.requestBody) {
    return next(new ValidationError('this route takes no request body', [{ path: '/body', message: 'must be empty' }]));
  }
  next();
}

/**
 * `HEAD` is answered wherever `GET` is: routed, authorised and validated as the `GET` it mirrors.
 * Node decided when the request arrived that its response has no body, so only the headers go out.
 */
function headAsGet(req: Request, _res: Response, next: NextFunction): void {
  if (req.method === 'HEAD') {
    req.method = 'GET';
    req.isHead = true;
  }
  next();
}

declare module 'express-serve-static-core' {
  interface Request {
    /** A HEAD request, routed as GET by headAsGet. */
    isHead?: boolean;
  }
}

/**
 * The validator's middlewares with its (disabled) security step replaced by ours, so security
 * still runs after the route is matched and before the request is validated. Fails at start if
 * the validator's layout ever changes, rather than running unauthenticated.
 */
function withSecurity(validator: RequestHandler[], security: RequestHandler[]): RequestHandler[] {
  const slot = validator.findIndex((mw) => mw.name === 'securityMiddleware');
  if (slot < 1 || validator[slot - 1].name !== 'metadataMiddleware') {
    throw new Error('express-openapi-validator: no security step after route matching to replace');
  }
  return [...validator.slice(0, slot), ...security, ...validator.slice(slot + 1)];
}

/**
 * The validator's request step, skipped when it has nothing to check: an operation with no
 * parameters (its own or its path's) and no request body, called with no query string and no
 * body. That is most authenticated calls (GET /user/me, POST /refresh_token, ...), and the step
 * costs every request a content-type parse, a parameter mutator and two schema runs for nothing.
 * Anything else (a query string, a body, a parameter) is validated as before.
 */
function skipWhenNothingToValidate(validator: RequestHandler[], apiSpec: { paths?: Record<string, { parameters?: unknown[] }> }): RequestHandler[] {
  const slot = validator.findIndex((mw) => mw.name === 'requestMiddleware');
  if (slot < 0) throw new Error('express-openapi-validator: no request validation step');
  const validate = validator[slot];
  const parameterless = new WeakMap<Operation, boolean>();
  const isParameterless = (operation: Operation, route: string | undefined): boolean => {
    let known = parameterless.get(operation);
    if (known === undefined) {
      const pathParameters = route === undefined ? undefined : apiSpec.paths?.[route]?.parameters;
      known = route !== undefined && !operation.requestBody && !operation.parameters?.length && !pathParameters?.length;
      parameterless.set(operation, known);
    }
    return known;
  };
  const requestMiddleware: RequestHandler = (req, res, next) => {
    const { schema, openApiRoute } = (req as ValidatedRequest).openapi ?? {};
    if (schema && isParameterless(schema, openApiRoute) && !req.url.includes('?') && !hasBody(req)) return next();
    return validate(req, res, next);
  };
  return [...validator.slice(0, slot), requestMiddleware, ...validator.slice(slot + 1)];
}

export function createApp({ config, services, db, log, apiSpec, availability, rateLimits, clock }: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', config.trustProxy);

  app.use(requestLogger(log));
  app.use(headAsGet);
  app.use(rpcBodyReader(config.bodyLimit));
  app.use(express.json({ limit: config.bodyLimit, verify: verifyUtf8 }));
  const validator = OpenApiValidator.middleware({
    apiSpec: apiSpec as never,
    validateRequests: { allowUnknownQueryParameters: false },
    validateResponses: config.validateResponses,
    validateSecurity: false, // enforced by authenticate, in the same place
    validateFormats: true,
    ajvFormats: { mode: 'fast' },
    fileUploader: false, // the spec has no multipart bodies; saves a step on every request
    formats: { 'date-time': isRfc3339DateTime },
  });
  app.use(skipWhenNothingToValidate(withSecurity(validator, [authenticate(services.auth, apiSpec), textRule]), apiSpec));
  app.use(afterValidation);

  // GET /user/me is the hottest route: first, so it skips walking the other routers. It only
  // has exact /user/me routes, so it shadows nothing; it must stay before /user/:user.
  app.use(meRoutes(services.users, services.groups));
  app.use(healthRoutes(db, availability));
  app.use(sessionRoutes(services.auth, { secure: config.cookieSecure }, ipThrottle('login', config.throttleIpPerMinute, rateLimits, clock)));
  app.use(passwordRoutes(services.passwords, ipThrottle('password_reset', config.throttleIpPerMinute, rateLimits, clock)));
  app.use(tokenRoutes(services.tokens, services.users));
  app.use(settingsRoutes(services.settings, services.users));
  app.use(revokeRoutes(services.tokens));
  app.use(groupRoutes(services.groups));
  app.use(userRoutes(services.users, services.groups));
  app.use(rpcRoutes(services.rpc, services.auth, log));

  app.use((_req, _res, next) => next(new NotFoundError('Route Not Found')));
  app.use(errorHandler(log, availability));
  return app;
}
