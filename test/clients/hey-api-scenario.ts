// @ts-nocheck: the client this imports exists only where test/clients/generated-clients.test.ts
// generates it; that test removes this line and type-checks the script there (strict).
//
// A client's day with @hey-api/openapi-ts (its fetch client). Run with BASE_URL, ADMIN_EMAIL,
// ADMIN_PASSWORD and RUN (a unique suffix); prints what it saw as one JSON line.
import assert from 'node:assert/strict';
import { createClient } from './hey-api/client/index.js';
import { createMyToken, createUser, deleteMyToken, getMe, getMyToken, listUsers, login } from './hey-api/sdk.gen.js';
import type { ErrorBody, Login, NewToken, NewUser, NewUserCreated, NewUserGroup, Scope, UserListItem } from './hey-api/types.gen.js';
import { adminEmail, baseUrl, env, nextLink, run } from './scenario-env.js';

// Optional stays optional: defaults may be left out of a request body.
export const plainUser: NewUser = { name: 'ada', email: 'ada@example.com' };
export const plainToken: NewToken = { name: 'laptop' };
export const plainGroup: NewUserGroup = { name: 'operators' };
export const plainLogin: Login = { user: 'ada@example.com', password: 'secret' };
// The login body is a union: a password alone names nobody.
// @ts-expect-error exactly one of email, user_id or user
export const nobody: Login = { password: 'secret' };

/** A client that presents `token` as a bearer token (and not also as the session cookie). */
const bearer = (token: string) => createClient({ baseUrl, auth: (scheme) => (scheme.scheme === 'bearer' ? token : undefined) });

// Log in (no set_session: it is optional).
const session = await login({ client: createClient({ baseUrl }), body: { email: adminEmail, password: env('ADMIN_PASSWORD') } });
if (!session.data) throw new Error(`login: ${session.response.status} ${JSON.stringify(session.error)}`);
const admin = bearer(session.data.jwt_token);

// Create a user (is_admin left to its default).
const created = await createUser({
  client: admin,
  query: { send_mail: '0' },
  body: { name: `hey-api-${run}`, email: `hey-api-${run}@example.com` },
});
if (!created.data) throw new Error(`create user: ${created.response.status} ${JSON.stringify(created.error)}`);
const createdUser: NewUserCreated = created.data;

// Page through the users, one a page, by the Link header.
const listed: string[] = [];
let pages = 0;
let cursor: string | undefined;
for (;;) {
  const page = await listUsers({ client: admin, query: { limit: 1, ...(cursor ? { cursor } : {}) } });
  if (!page.data) throw new Error(`list users: ${page.response.status} ${JSON.stringify(page.error)}`);
  pages += 1;
  listed.push(...page.data.map((u: UserListItem) => u.id));
  const next = nextLink(page.response.headers.get('Link'));
  if (!next) break;
  cursor = next.searchParams.get('cursor') ?? undefined;
  assert.ok(cursor, 'the next link carries a cursor');
  assert.ok(pages < 1000, 'the pages end');
}

// An API token whose name has a slash and an emoji (scopes left to their default).
const tokenName = `ci / deploys \u{1F680} ${run}`;
const minted = await createMyToken({ client: admin, body: { name: tokenName } });
if (!minted.data) throw new Error(`create token: ${minted.response.status} ${JSON.stringify(minted.error)}`);
const scopes: Scope[] = minted.data.scopes;

// Use it.
const withToken = bearer(minted.data.token);
const me = await getMe({ client: withToken });
if (!me.data) throw new Error(`me with the token: ${me.response.status} ${JSON.stringify(me.error)}`);
const shown = await getMyToken({ client: admin, path: { name: tokenName } });
if (!shown.data) throw new Error(`get token: ${shown.response.status} ${JSON.stringify(shown.error)}`);

// Delete it; the token is refused afterwards, and the error's code says why.
const deleted = await deleteMyToken({ client: admin, path: { name: tokenName } });
const refused = await getMe({ client: withToken });
const code: ErrorBody['code'] | undefined = refused.error?.code;

console.log(
  JSON.stringify({
    createdUserId: createdUser.id,
    listed,
    pages,
    tokenName: shown.data.name,
    scopes,
    meWithToken: me.data.email,
    deleteStatus: deleted.response.status,
    refusedStatus: refused.response.status,
    code,
  }),
);
