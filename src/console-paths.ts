/**
 * The web console's paths, in one place for the server and the page: src/http/console.ts answers
 * every path under one of these with the console's document, and console/main.tsx routes them
 * (each route here has its component there, or the console does not compile). A link to any other
 * path (`/docs`) loads as an ordinary page.
 *
 * It lives in src/ (not console/) so that the server's build (tsc into dist/src) keeps it apart
 * from the console's (esbuild into dist/console); esbuild bundles it into the page. Plain data: it
 * imports nothing, so it type-checks under both the server's and the console's tsconfig.
 */
export const CONSOLE_ROUTES = [
  '/',
  '/sign-in',
  '/sign-up',
  '/forgot-password',
  '/reset-password',
  '/verify-email',
  '/confirm-email',
  '/revert-email',
  '/account',
  '/account/password',
  '/account/security',
  '/account/tokens',
  '/account/sessions',
  '/account/settings',
  '/admin',
  '/admin/users',
  '/admin/users/:id',
  '/admin/groups',
  '/admin/groups/:id',
  '/admin/audit',
  '/admin/webhooks',
  '/admin/webhooks/:id',
] as const;

export type ConsoleRoute = (typeof CONSOLE_ROUTES)[number];

/**
 * The first segments of the routes: the console answers on each and on every path under it (so
 * `/account/nothing-here` shows the console's own "Page not found"), and on `/`. The mailed links
 * (`/reset-password`, `/verify-email`, `/confirm-email`, `/revert-email`) are among them.
 */
export const CONSOLE_PAGES: readonly string[] = [...new Set(CONSOLE_ROUTES.filter((r) => r !== '/').map((r) => `/${r.split('/')[1]}`))];

/**
 * Whether a path (or a link: a query may follow) is the console's: `/` and `/account/tokens?x`
 * are, `/docs` and `/accounts` are not. The page's router takes it as its scope.
 */
export const CONSOLE_PATH = new RegExp(`^/(?:${CONSOLE_PAGES.map((p) => p.slice(1).replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')).join('|')})?(?:[/?#]|$)`);
