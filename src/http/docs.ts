import path from 'node:path';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { getAbsoluteFSPath } from 'swagger-ui-dist';
import YAML from 'yaml';
import { apiSpecPath } from '../api-spec';
import type { Handlers } from './mount';

/** The operations that serve the spec: not served with `DOCS=0`. */
export const SPEC_OPERATIONS: ReadonlySet<string> = new Set(['getOpenApiJson', 'getOpenApiYaml']);

/**
 * `GET /openapi.json` and `/openapi.yaml`: the spec as this service serves it, its `servers` the
 * service's APP_URL (the file says `/`, which a generated client cannot use). Both texts are made
 * once, at start-up, from a copy taken before the validator annotates the document. None with
 * `DOCS=0` (the operations are not in the route table then).
 */
export function specHandlers(spec: Record<string, unknown>, appUrl: string, served: boolean): Handlers {
  if (!served) return {};
  const document = { ...structuredClone(spec), servers: [{ url: appUrl, description: 'This service (APP_URL)' }] };
  const json = JSON.stringify(document);
  const yaml = YAML.stringify(document);
  return {
    getOpenApiJson: (_req, res) => {
      res.type('application/json').send(json);
    },
    getOpenApiYaml: (_req, res) => {
      res.type('application/yaml').send(yaml);
    },
  };
}

/**
 * The documentation page at `/docs`: Swagger UI (swagger-ui-dist, served from node_modules under
 * `/docs/assets/`, no CDN) with a page and a script of ours (`public/docs/`), so that no inline
 * script is needed and the API's strict CSP holds for it too. Other paths pass on.
 */
export function docsPage(): RequestHandler {
  const dir = path.join(path.dirname(apiSpecPath()), 'public', 'docs');
  const router = express.Router({ strict: false });
  router.get('/docs', (_req, res) => res.sendFile(path.join(dir, 'index.html'), { maxAge: 0 }));
  router.get('/docs/init.js', (_req, res) => res.sendFile(path.join(dir, 'init.js'), { maxAge: 0 }));
  router.use('/docs/assets', express.static(getAbsoluteFSPath(), { index: false, fallthrough: false, maxAge: '1h' }));
  return (req: Request, res: Response, next: NextFunction) => {
    if (req.url !== '/docs' && !req.url.startsWith('/docs/') && !req.url.startsWith('/docs?')) return next();
    router(req, res, next);
  };
}
