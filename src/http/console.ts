import fs from 'node:fs';
import path from 'node:path';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { parse as parseCookies } from 'cookie';
import { apiSpecPath } from '../api-spec';
import { CONSOLE_PAGES, CONSOLE_PATH } from '../console-paths';
import { SESSION_COOKIE } from './authenticate';

/**
 * The web console's pages (src/console-paths.ts, which the page's router reads too): every page of
 * it answers with the same document (the page routes itself), and its scripts and style sheets
 * live under `/assets/`. No path of the API starts with one of these (test/http/console.test.ts
 * checks against openapi.yaml).
 */
export { CONSOLE_PAGES };
export const CONSOLE_ASSETS = '/assets';
const ASSET_NAME = /^\/[A-Za-z0-9_-]+\.[a-z0-9]+$/;

/** Where `npm run build` puts the console (console/build.mjs). */
export function consoleDir(): string {
  return path.join(path.dirname(apiSpecPath()), 'dist', 'console');
}

/**
 * Serves the console built in `dir`, on GET and HEAD of its paths; anything else passes on to the
 * API. Undefined when the console is not built (the API alone is served then).
 *
 * The document is `no-cache` and says in `<meta>` tags (the CSP allows no inline script) whether
 * registration is open and whether the request carried a session cookie, so a signed-out visitor's
 * page asks nothing of the API before they sign in. Assets are named by their content and cached
 * for a year.
 */
export function consolePages(options: { dir?: string; registration: boolean }): RequestHandler | undefined {
  const dir = options.dir ?? consoleDir();
  const file = path.join(dir, 'index.html');
  if (!fs.existsSync(file)) return undefined;
  const template = fs.readFileSync(file, 'utf8').replaceAll('{{registration}}', options.registration ? 'on' : 'off');
  const withSession = template.replace('</title>', '</title>\n<meta name="session" content="on">');
  const assets = express.static(path.join(dir, 'assets'), { index: false, fallthrough: false, immutable: true, maxAge: '365d', etag: false, redirect: false });

  return (req: Request, res: Response, next: NextFunction) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    const q = req.url.indexOf('?');
    const pathname = q === -1 ? req.url : req.url.slice(0, q);
    if (pathname.startsWith(`${CONSOLE_ASSETS}/`)) {
      // Only a plain file name (no `..`, no sub-directory) is looked up; anything else is the API's 404.
      if (!ASSET_NAME.test(pathname.slice(CONSOLE_ASSETS.length))) return next();
      req.url = req.url.slice(CONSOLE_ASSETS.length);
      return assets(req, res, (err?: unknown) => {
        req.url = `${CONSOLE_ASSETS}${req.url}`;
        next(err);
      });
    }
    if (!CONSOLE_PATH.test(pathname)) return next();
    const cookie = req.headers.cookie ? parseCookies(req.headers.cookie)[SESSION_COOKIE] : undefined;
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('Vary', 'Cookie');
    res.send(cookie ? withSession : template);
  };
}
