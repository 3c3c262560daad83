import type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { WEBHOOK_EVENT_TYPES } from '../../src/domain/webhook-events';
import { enrolled, firstStep } from '../helpers/mfa';
import { SoftAuthenticator } from '../helpers/soft-authenticator';
import { bearer, testAppWithAdmin, unique } from '../helpers/test-app';
import { WebhookReceiver, type ReceivedWebhook } from '../helpers/webhook-receiver';
import { webhookPayloadProblem } from '../helpers/webhook-schema';

// The service itself makes each kind of event through its real API (REST, JSON-RPC, the links it
// mails), and one endpoint subscribed to "*" gets them: every body received must match its exact
// payload schema in openapi.yaml (the receiver checks each against the webhooks entry of its
// type; `data` admits no field the schema does not name). Local receivers: the relaxing flags on.
const { t, admin } = testAppWithAdmin({ env: { WEBHOOK_ALLOW_HTTP: '1', WEBHOOK_ALLOW_PRIVATE: '1', ALLOW_REGISTRATION: '1' }, webhookPollMs: 50 });
const receiver = new WebhookReceiver();
const path = `/${unique('all')}`;
let webhookId: string;

beforeAll(async () => {
  await receiver.start();
  const res = await t.http().post('/webhook').set(bearer(admin.jwt)).send({ url: receiver.url(path), events: ['*'] });
  if (res.status !== 201) throw new Error(`${res.status} ${JSON.stringify(res.body)}`);
  webhookId = res.body.id;
});
afterAll(() => receiver.stop());

type Body = { type: string; timestamp: string; data: Record<string, any> };

/** The event of `type` about `id` (the user or group it names), once delivered to the endpoint. */
async function event(type: string, id: string, match: (data: Record<string, any>) => boolean = () => true): Promise<Body> {
  const about = (r: ReceivedWebhook) => r.path === path && r.json?.type === type && (r.json.data.user?.id === id || r.json.data.group?.id === id) && match(r.json.data);
  const [got] = await receiver.waitFor(1, { filter: about });
  return got!.json as Body;
}

/** A user made by the admin through the API (a `user.created` event). */
async function createUser(body: Record<string, unknown> = {}): Promise<{ id: string; name: string; email: string; password: string }> {
  const name = unique('ev');
  const who = { name, email: `${name}@example.test`, password: `pw-${unique('x')}-long`, ...body };
  const res = await t.http().post('/user?send_mail=0').set(bearer(admin.jwt)).send(who);
  if (res.status !== 201) throw new Error(`${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.id, name, email: who.email, password: who.password };
}

async function login(u: { email: string; password: string }): Promise<string> {
  const res = await t.http().post('/login').send({ email: u.email, password: u.password });
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.jwt_token;
}

const actorAdmin = () => ({ id: admin.user.id, name: admin.user.name });
const linkToken = (text: string, page: string) => new RegExp(`/${page}\\?token=([A-Za-z0-9_-]+)`).exec(text)![1]!;

describe('every event type the API makes, as delivered, matches its exact payload schema', () => {
  it('users and tokens: user.created, user.updated, token.created, token.deleted, password.changed (self, admin), tokens.revoked, password.admin_reset, user.deactivated, user.reactivated', async () => {
    const u = await createUser();
    expect((await event('user.created', u.id)).data).toEqual({ user: { id: u.id, name: u.name }, actor: actorAdmin(), email: u.email, is_admin: false, password_set: true, welcome_mail: false });

    await t.http().post(`/user/${u.id}?send_mail=0`).set(bearer(admin.jwt)).send({ first_name: 'Ada', last_name: 'Lovelace', is_admin: true }).expect(200);
    expect((await event('user.updated', u.id)).data.changes).toEqual({ first_name: { from: null, to: 'Ada' }, last_name: { from: null, to: 'Lovelace' }, is_admin: { from: false, to: true } });
    await t.http().post(`/user/${u.id}?send_mail=0`).set(bearer(admin.jwt)).send({ is_admin: false }).expect(200);

    // Made by an admin, the user must change the password first (a forced change).
    const forced = await login(u);
    const newPassword = `pw-${unique('y')}-long`;
    await t.http().post('/user/me/password').set(bearer(forced)).send({ password: newPassword, current_password: u.password }).expect(204);
    expect((await event('password.changed', u.id, (d) => d.by === 'self')).data).toMatchObject({ by: 'self', tokens_ended: 'login_only', was_forced: true, actor: { id: u.id, name: u.name } });

    const jwt = await login({ email: u.email, password: newPassword });
    await t.http().post('/user/me/token').set(bearer(jwt)).send({ name: 'kept', scopes: ['api:read'] }).expect(201);
    await t.http().post('/user/me/token').set(bearer(jwt)).send({ name: 'gone / 💻' }).expect(201);
    expect((await event('token.created', u.id, (d) => d.name === 'kept')).data).toMatchObject({ name: 'kept', scopes: ['api:read'], actor: { id: u.id, name: u.name } });
    await t.http().delete(`/user/me/token/${encodeURIComponent('gone / 💻')}`).set(bearer(jwt)).expect(204);
    expect((await event('token.deleted', u.id)).data).toMatchObject({ name: 'gone / 💻' });

    // JSON-RPC's update_user with a password: a system admin sets it (and a field with it).
    const minted = await t.http().post('/user/me/token').set(bearer(admin.jwt)).send({ name: unique('rpc') }).expect(201);
    const rpc = await t.http().post('/_admin/api').send({ id: 1, auth_token: minted.body.token, method: 'update_user', args: { userid: u.id, lastname: 'Byron', password: 'set by an admin 1' } });
    expect(rpc.body.error).toBeNull();
    expect((await event('password.changed', u.id, (d) => d.by === 'admin')).data).toMatchObject({ by: 'admin', tokens_ended: 'login_only' });
    expect((await event('user.updated', u.id, (d) => 'last_name' in d.changes && d.changes.last_name.to === 'Byron')).data.changes).toEqual({ last_name: { from: 'Lovelace', to: 'Byron' } });

    await login({ email: u.email, password: 'set by an admin 1' });
    await t.http().post(`/user/${u.id}/revoke?send_mail=0`).set(bearer(admin.jwt)).expect(204);
    expect((await event('tokens.revoked', u.id)).data).toMatchObject({ mode: 'all', login_tokens: 1, api_tokens: ['kept'] });

    await t.http().delete(`/user/${u.id}/password?send_mail=0`).set(bearer(admin.jwt)).expect(204);
    expect((await event('password.admin_reset', u.id)).data).toMatchObject({ tokens_ended: 'login_only', link_mailed: false });

    await t.http().delete(`/user/${u.id}`).set(bearer(admin.jwt)).expect(204);
    expect((await event('user.deactivated', u.id)).data).toMatchObject({ email: u.email });
    await t.http().post(`/user/${u.id}/reactivate?send_mail=0`).set(bearer(admin.jwt)).expect(200);
    expect((await event('user.reactivated', u.id)).data).toMatchObject({ welcome_mail: false });
  });

  it('links: user.registered, user.verified, password.reset_used, email.change_confirmed, email.change_reverted', async () => {
    const name = unique('reg');
    const who = { name, email: `${name}@example.test`, password: 'registration password 1' };
    await t.http().post('/register').send(who).expect(202);
    const [verify] = await t.mail.waitFor((m) => m.to.includes(who.email));
    const id = (await t.knex('users').where({ email: who.email }).first()).id as string;
    expect((await event('user.registered', id)).data).toEqual({ user: { id, name }, actor: null, email: who.email });
    await t.http().post('/register/verify').send({ token: linkToken(verify!.text, 'verify-email') }).expect(204);
    expect((await event('user.verified', id)).data).toMatchObject({ email: who.email });

    await t.http().post('/password/reset').send({ email: who.email }).expect(202);
    const [reset] = await t.mail.waitFor((m) => m.to.includes(who.email) && m.subject === 'Reset your Accounts password');
    await t.http().post('/password/reset/confirm').send({ token: linkToken(reset!.text, '[a-z-]+'), password: 'the owner password' }).expect(204);
    expect((await event('password.reset_used', id)).data).toMatchObject({ link: 'reset', tokens_ended: 'login_only', actor: null });

    const jwt = await login({ email: who.email, password: 'the owner password' });
    const moved = `${unique('moved')}@example.test`;
    await t.http().post('/user/me').set(bearer(jwt)).send({ email: moved, current_password: 'the owner password' }).expect(200);
    const [confirm] = await t.mail.waitFor((m) => m.to.includes(moved));
    const [notice] = await t.mail.waitFor((m) => m.to.includes(who.email) && m.subject === 'Your Accounts email address is changing');
    await t.http().post('/user/me/email/confirm').send({ token: linkToken(confirm!.text, 'confirm-email') }).expect(204);
    expect((await event('email.change_confirmed', id)).data).toMatchObject({ from: who.email, to: moved });
    await t.http().post('/user/me/email/revert').send({ token: linkToken(notice!.text, 'revert-email') }).expect(204);
    expect((await event('email.change_reverted', id)).data).toMatchObject({ from: moved, to: who.email, cancelled_pending: null, tokens_ended: 'all' });
  });

  it('groups: group.created, group.updated, group.member_added, group.member_removed, group.grant_set, group.grant_removed (a user, a group), group.deleted', async () => {
    const member = await createUser();
    const g = (await t.http().post('/user_group').set(bearer(admin.jwt)).send({ name: unique('grp'), description: 'first' }).expect(201)).body;
    const source = (await t.http().post('/user_group').set(bearer(admin.jwt)).send({ name: unique('src'), active: false }).expect(201)).body;
    expect((await event('group.created', g.id)).data).toEqual({ group: { id: g.id, name: g.name }, actor: actorAdmin(), owner: actorAdmin(), active: true, description: 'first' });
    await event('group.created', source.id);

    await t.http().post(`/user_group/${g.id}`).set(bearer(admin.jwt)).send({ description: 'second', active: false, owner: member.email }).expect(200);
    expect((await event('group.updated', g.id)).data.changes).toEqual({ description: { from: 'first', to: 'second' }, active: { from: true, to: false }, owner: { from: actorAdmin(), to: { id: member.id, name: member.name } } });

    await t.http().put(`/user_group/${g.id}/member/${member.id}`).set(bearer(admin.jwt)).expect(201);
    expect((await event('group.member_added', g.id)).data.user).toEqual({ id: member.id, name: member.name });
    await t.http().delete(`/user_group/${g.id}/member/${member.id}`).set(bearer(admin.jwt)).expect(204);
    expect((await event('group.member_removed', g.id)).data.user).toEqual({ id: member.id, name: member.name });

    await t.http().put(`/user_group/${g.id}/grant/user/${member.id}`).set(bearer(admin.jwt)).send({ permission: 'usergroup.write' }).expect(200);
    await t.http().put(`/user_group/${g.id}/grant/user_group/${source.id}`).set(bearer(admin.jwt)).send({ permission: 'usergroup.read' }).expect(200);
    expect((await event('group.grant_set', g.id, (d) => d.to.type === 'user')).data).toMatchObject({ to: { type: 'user', id: member.id, name: member.name }, permission: 'usergroup.write' });
    expect((await event('group.grant_set', g.id, (d) => d.to.type === 'user_group')).data).toMatchObject({ to: { type: 'user_group', id: source.id, name: source.name }, permission: 'usergroup.read' });
    await t.http().delete(`/user_group/${g.id}/grant/user/${member.id}`).set(bearer(admin.jwt)).expect(204);
    await t.http().delete(`/user_group/${g.id}/grant/user_group/${source.id}`).set(bearer(admin.jwt)).expect(204);
    await event('group.grant_removed', g.id, (d) => d.to.type === 'user');
    await event('group.grant_removed', g.id, (d) => d.to.type === 'user_group');

    await t.http().delete(`/user_group/${g.id}`).set(bearer(admin.jwt)).expect(204);
    expect((await event('group.deleted', g.id)).data).toMatchObject({ owner: { id: member.id, name: member.name } });
  });

  it('an authenticator app: mfa.factor_added, mfa.factor_verified, mfa.recovery_codes_created (first, replaced), mfa.factor_renamed, mfa.recovery_code_used, mfa.factor_removed, mfa.reset', async () => {
    const u = await enrolled(t);
    expect((await event('mfa.factor_added', u.user.id)).data).toMatchObject({ factor: u.factorId, type: 'totp' });
    expect((await event('mfa.factor_verified', u.user.id)).data).toMatchObject({ factor: u.factorId, type: 'totp', first: true, sessions_ended: 0 });
    expect((await event('mfa.recovery_codes_created', u.user.id)).data).toMatchObject({ count: 10 });

    await t.http().patch(`/user/me/factor/${u.factorId}`).set(bearer(u.jwt)).send({ name: 'Work phone' }).expect(200);
    expect((await event('mfa.factor_renamed', u.user.id)).data).toMatchObject({ factor: u.factorId, name: 'Work phone', previous: 'phone' });

    const codes = (await t.http().post('/user/me/recovery_codes').set(bearer(u.jwt)).send({ current_password: u.password }).expect(201)).body.codes as string[];
    expect((await event('mfa.recovery_codes_created', u.user.id, (d) => d.replaced === true)).data).toMatchObject({ count: 10, replaced: true });
    const { jwt: pending } = await firstStep(t, u);
    await t.http().post('/login/mfa').set(bearer(pending)).send({ code: codes[0] }).expect(200);
    expect((await event('mfa.recovery_code_used', u.user.id)).data).toMatchObject({ remaining: 9 });

    await t.http().delete(`/user/me/factor/${u.factorId}`).set(bearer(u.jwt)).expect(204);
    expect((await event('mfa.factor_removed', u.user.id)).data).toMatchObject({ factor: u.factorId, type: 'totp', name: 'Work phone', verified: true, mfa_off: true });

    const lost = await enrolled(t);
    await t.http().delete(`/user/${lost.user.id}/factor`).set(bearer(admin.jwt)).expect(204);
    expect((await event('mfa.reset', lost.user.id)).data).toMatchObject({ factors: [{ id: lost.factorId, type: 'totp', name: 'phone', verified: true }], recovery_codes: 10 });
  });

  it('a passkey: mfa.factor_added, mfa.factor_verified (webauthn), mfa.passkey_counter_rejected', async () => {
    // The test app's relying party, from its APP_URL.
    const device = new SoftAuthenticator({ rpId: 'accounts.example.test', origin: 'https://accounts.example.test' });
    const u = await t.factory.loggedIn();
    const added = await t.http().post('/user/me/factor').set(bearer(u.jwt)).send({ type: 'webauthn', name: 'key', current_password: u.password }).expect(201);
    const factorId = added.body.id as string;
    await t.http().post(`/user/me/factor/${factorId}/verify`).set(bearer(u.jwt)).send({ credential: device.create(added.body.options as PublicKeyCredentialCreationOptionsJSON) }).expect(200);
    expect((await event('mfa.factor_verified', u.user.id)).data).toMatchObject({ factor: factorId, type: 'webauthn', name: 'key', first: true });
    const options = async (jwt: string) => (await t.http().post('/login/mfa/options').set(bearer(jwt)).expect(200)).body as PublicKeyCredentialRequestOptionsJSON;
    const first = await firstStep(t, u);
    await t.http().post('/login/mfa').set(bearer(first.jwt)).send({ webauthn: device.get(await options(first.jwt)) }).expect(200);
    const second = await firstStep(t, u);
    await t.http().post('/login/mfa').set(bearer(second.jwt)).send({ webauthn: device.get(await options(second.jwt), { counter: 0 }) }).expect(401);
    expect((await event('mfa.passkey_counter_rejected', u.user.id)).data).toMatchObject({ factor: factorId, presented: 0 });
    await event('mfa.factor_added', u.user.id, (d) => d.type === 'webauthn');
  });

  it('the endpoint itself: webhook.test', async () => {
    await t.http().post(`/webhook/${webhookId}/test`).set(bearer(admin.jwt)).expect(202);
    await receiver.waitFor(1, { filter: (r) => r.path === path && r.json?.type === 'webhook.test' });
  });

  it('received every event type, each body matching its schema', () => {
    const bodies = receiver.to(path).map((r) => r.json as Body);
    for (const b of bodies) expect([b.type, webhookPayloadProblem(b)]).toEqual([b.type, undefined]);
    expect(receiver.offSpec).toEqual([]);
    const seen = new Set(bodies.map((b) => b.type));
    expect(WEBHOOK_EVENT_TYPES.filter((type) => !seen.has(type))).toEqual([]);
  });
});
