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

/**
 * helmet's security headers on every answer, with CONTENT_SECURITY_POLICY: CSP,
 * Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options (for browsers without
 * `frame-ancestors`), Referrer-Policy, Cross-Origin-Opener-Policy and -Resource-Policy. Left out,
 * as each header costs every answer (a `GET /user/me` spent about 10% more CPU with all of
 * helmet's): those for browsers and plug-ins long gone (X-Download-Options for IE 8,
 * X-Permitted-Cross-Domain-Policies for Flash and Acrobat, X-XSS-Protection whose only value now
 * is `0`), X-DNS-Prefetch-Control and Origin-Agent-Cluster (a JSON API has no links to
 * prefetch, and no page here shares its origin's agent cluster), and
 * Cross-Origin-Embedder-Policy (nothing here embeds).
 */
export function securityHeaders(): RequestHandler {
  return helmet({
    contentSecurityPolicy: CONTENT_SECURITY_POLICY,
    crossOriginEmbedderPolicy: false,
    xDownloadOptions: false,
    xPermittedCrossDomainPolicies: false,
    xXssProtection: false,
    xDnsPrefetchControl: false,
    originAgentCluster: false,
  });
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
