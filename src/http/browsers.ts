import cors from 'cors';
import type { RequestHandler } from 'express';
import helmet from 'helmet';

/**
 * One Content-Security-Policy for the API's answers and the pages it serves (the docs, the
 * console) alike: everything from this origin only, no inline script or style, no frames, no
 * plugins. Pages load their scripts and styles as files.
 */
export const CONTENT_SECURITY_POLICY = {
  useDefaults: false,
  directives: {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", 'data:'],
    fontSrc: ["'self'"],
    connectSrc: ["'self'"],
    objectSrc: ["'none'"],
    baseUri: ["'none'"],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
  },
};

/** helmet's security headers on every answer, with CONTENT_SECURITY_POLICY. */
export function securityHeaders(): RequestHandler {
  return helmet({ contentSecurityPolicy: CONTENT_SECURITY_POLICY, crossOriginEmbedderPolicy: false });
}

/**
 * CORS for the browser origins of CORS_ORIGINS (exact matches; credentials allowed, so a page
 * there can use the session cookie). A preflight from another origin, or any request when none
 * is configured, gets no CORS header. The headers a client reads from answers are exposed: the
 * next page's `Link`, `X-Request-Id`, `Retry-After`.
 */
export function crossOrigin(origins: readonly string[]): RequestHandler | undefined {
  if (origins.length === 0) return undefined;
  const allowed = new Set(origins);
  return cors({
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    credentials: true,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type', 'X-Requested-With', 'X-Request-Id'],
    exposedHeaders: ['Link', 'X-Request-Id', 'Retry-After', 'WWW-Authenticate'],
    maxAge: 600,
  }) as RequestHandler;
}
