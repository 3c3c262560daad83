// @ts-nocheck: the client this imports exists only where test/clients/generated-clients.test.ts
// generates it; that test removes this line and type-checks the script there (strict).
//
// A client's day with openapi-typescript + openapi-fetch. Run with BASE_URL, ADMIN_EMAIL,
// ADMIN_PASSWORD and RUN (a unique suffix); prints what it saw as one JSON line.
import assert from 'node:assert/strict';
import createClient from 'openapi-fetch';
import type { components, paths } from './openapi-typescript/schema.js';
import { adminEmail, baseUrl, env, nextLink, run } from './scenario-env.js';

type Schemas = components['schemas'];

// Optional stays optional: defaults may be left out of a request body.
export const plainUser: Schemas['NewUser'] = { name: 'ada', email: 'ada@example.com' };
export const plainToken: Schemas['NewToken'] = { name: 'laptop' };
export const plainGroup: Schemas['NewUserGroup'] = { name: 'operators' };
export const plainLogin: Schemas['Login'] = { user: 'ada@example.com', password: 'secret' };
// The login body is a union: a password alone names nobody.
// @ts-expect-error exactly one of email, user_id or user
export const nobody: Schemas['Login'] = { password: 'secret' };

const anonymous = createClient<paths>({ baseUrl });

// Log in (no set_session: it is optional).
const login = await anonymous.POST('/login', { body: { email: adminEmail, password: env('ADMIN_PASSWORD') } });
if (!login.data) throw new Error(`login: ${login.response.status} ${JSON.stringify(login.error)}`);
const admin = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${login.data.jwt_token}` } });

// Create a user (is_admin left to its default).
const created = await admin.POST('/user', {
  params: { query: { send_mail: '0' } },
  body: { name: `openapi-fetch-${run}`, email: `openapi-fetch-${run}@example.com` },
});
if (!created.data) throw new Error(`create user: ${created.response.status} ${JSON.stringify(created.error)}`);
const createdUser: Schemas['NewUserCreated'] = created.data;

// Page through the users, one a page, by the Link header.
const listed: string[] = [];
let pages = 0;
let cursor: string | undefined;
for (;;) {
  const page = await admin.GET('/user', { params: { query: { limit: 1, ...(cursor ? { cursor } : {}) } } });
  if (!page.data) throw new Error(`list users: ${page.response.status} ${JSON.stringify(page.error)}`);
  pages += 1;
  listed.push(...page.data.map((u: Schemas['UserListItem']) => u.id));
  const next = nextLink(page.response.headers.get('Link'));
  if (!next) break;
  cursor = next.searchParams.get('cursor') ?? undefined;
  assert.ok(cursor, 'the next link carries a cursor');
  assert.ok(pages < 1000, 'the pages end');
}

// An API token whose name has a slash and an emoji (scopes left to their default).
const tokenName = `ci / deploys \u{1F680} ${run}`;
const minted = await admin.POST('/user/me/token', { body: { name: tokenName } });
if (!minted.data) throw new Error(`create token: ${minted.response.status} ${JSON.stringify(minted.error)}`);
const scopes: Schemas['Scope'][] = minted.data.scopes;

// Use it.
const withToken = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${minted.data.token}` } });
const me = await withToken.GET('/user/me');
if (!me.data) throw new Error(`me with the token: ${me.response.status} ${JSON.stringify(me.error)}`);
const shown = await admin.GET('/user/me/token/{name}', { params: { path: { name: tokenName } } });
if (!shown.data) throw new Error(`get token: ${shown.response.status} ${JSON.stringify(shown.error)}`);

// Delete it; the token is refused afterwards, and the error's code says why.
const deleted = await admin.DELETE('/user/me/token/{name}', { params: { path: { name: tokenName } } });
const refused = await withToken.GET('/user/me');
const code: Schemas['ErrorBody']['code'] | undefined = refused.error?.code;

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
