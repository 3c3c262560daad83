import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import pg from 'pg';
import type { Response } from 'supertest';
import { auditFields, canonicalJson, type AuditEntry } from '../../src/domain/audit';
import { CHAIN_KEY_PURPOSE, checkpointSigned, linkHash, parseCheckpoint } from '../../src/domain/audit-chain';
import { KeyRing } from '../../src/keys';
import { onPostgres } from '../helpers/test-database';
import { AUDIT_KEY, bearer, countRows, createTestApp, testAppWithAdmin, unique, type TestApp } from '../helpers/test-app';

const { t, admin } = testAppWithAdmin({ env: { ALLOW_REGISTRATION: '1' } });


interface Entry {
  id: string;
  time: string;
  action: string;
  actor: { id: string; name: string } | null;
  target: { type: string; id: string; name: string } | null;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  summary: Record<string, unknown>;
}

/** Every entry a query finds, following the Link header; and the raw text of the pages. */
async function audit(query = '', limit = 1000): Promise<{ entries: Entry[]; text: string }> {
  const entries: Entry[] = [];
  let text = '';
  let next: string | undefined = `/audit?limit=${limit}${query ? `&${query}` : ''}`;
  while (next) {
    const res: Response = await t.http().get(next).set(bearer(admin.jwt));
    expect([next, res.status, res.body.details]).toEqual([next, 200, undefined]);
    entries.push(...(res.body as Entry[]));
    text += res.text;
    next = /<([^>]+)>; rel="next"/.exec(res.headers.link ?? '')?.[1];
  }
  return { entries, text };
}

const linkToken = (text: string) => /token=([A-Za-z0-9_-]+)/.exec(text)![1];

describe('GET /audit', () => {
  it('records each change with its actor, target, address and request id, and none of the secrets involved', async () => {
    const secrets: string[] = [];
    const name = unique('audited');
    const email = `${name}@example.test`;
    const password = 'first password 123';
    secrets.push(password);
    const created = await t.http().post('/user?send_mail=0').set(bearer(admin.jwt)).set('X-Request-Id', 'req-create-1').send({ name, email, password });
    const id = created.body.id as string;
    await t.http().post(`/user/${id}`).set(bearer(admin.jwt)).send({ first_name: 'Ada' }).expect(200);
    await t.http().post('/login').send({ email, password: 'not it at all' }).expect(401);
    secrets.push('not it at all');
    const login = await t.http().post('/login').set('User-Agent', 'audit-test/1.0').send({ email, password });
    const jwt = login.body.jwt_token as string;
    secrets.push(jwt);
    await t.http().post('/user/me/password').set(bearer(jwt)).send({ current_password: password, password: 'second password 456' }).expect(204);
    secrets.push('second password 456');
    const jwt2 = await t.factory.login({ email, password: 'second password 456' });
    secrets.push(jwt2);
    const token = await t.http().post('/user/me/token').set(bearer(jwt2)).send({ name: 'ci' });
    secrets.push(token.body.token);
    await t.http().delete('/user/me/token/ci').set(bearer(jwt2)).expect(204);
    await t.http().post('/user/me/settings/theme').set(bearer(jwt2)).send({ theme: 'secret-setting-value' }).expect(204);
    secrets.push('secret-setting-value');
    await t.http().delete('/user/me/settings/theme').set(bearer(jwt2)).expect(204);
    await t.http().post('/user/me').set(bearer(jwt2)).send({ email: `${name}-new@example.test`, current_password: 'second password 456' }).expect(200);
    const [confirm] = await t.mail.waitFor((m) => m.to.includes(`${name}-new@example.test`));
    secrets.push(linkToken(confirm.text));
    await t.http().post('/user/me/email/confirm').send({ token: linkToken(confirm.text) }).expect(204);
    const [notice] = await t.mail.waitFor((m) => m.to.includes(email) && m.subject.includes('is changing'));
    secrets.push(linkToken(notice.text));
    await t.http().post('/user/me/email/revert').send({ token: linkToken(notice.text) }).expect(204);
    await t.http().delete(`/user/${id}/password?send_mail=1`).set(bearer(admin.jwt)).expect(204);
    // The second reset mail: the revert mailed one too, which the admin reset killed.
    const [afterRevert, reset] = await t.mail.waitFor((m) => m.to.includes(email) && m.subject.startsWith('Reset'), 2);
    secrets.push(linkToken(afterRevert.text), linkToken(reset.text));
    await t.http().post('/password/reset/confirm').send({ token: linkToken(reset.text), password: 'third password 789' }).expect(204);
    secrets.push('third password 789');
    const jwt3 = await t.factory.login({ email, password: 'third password 789' });
    await t.http().post(`/user/${id}/revoke`).set(bearer(admin.jwt)).expect(204);
    await t.http().delete(`/user/${id}`).set(bearer(admin.jwt)).expect(204);
    await t.http().post(`/user/${id}/reactivate?send_mail=0`).set(bearer(admin.jwt)).expect(200);
    secrets.push(jwt3);

    const { entries, text } = await audit(`target=${id}`);
    for (const secret of secrets) expect(text).not.toContain(secret);
    const actions = entries.map((e) => e.action).reverse(); // oldest first
    expect(actions).toEqual([
      'user.created',
      'user.updated',
      'login.failed',
      'login.succeeded',
      'password.changed',
      'login.succeeded',
      'token.created',
      'token.deleted',
      'settings.changed',
      'settings.changed',
      'email.change_requested',
      'email.change_confirmed',
      'email.change_reverted',
      'password.admin_reset',
      'password.reset_used',
      'login.succeeded',
      'tokens.revoked',
      'user.deactivated',
      'user.reactivated',
    ]);
    const byAction = (a: string) => entries.filter((e) => e.action === a);
    const [createdEntry] = byAction('user.created');
    expect(createdEntry).toMatchObject({ actor: { id: admin.user.id, name: admin.user.name }, target: { type: 'user', id, name }, request_id: 'req-create-1' });
    expect(createdEntry.ip).toMatch(/127\.0\.0\.1/);
    expect(createdEntry.summary).toEqual({ email, is_admin: false, password_set: true, welcome_mail: false });
    expect(byAction('user.updated')[0].summary).toEqual({ changes: { first_name: { from: null, to: 'Ada' } } });
    expect(byAction('login.failed')[0]).toMatchObject({ actor: null, target: { id }, summary: { identifier: email } });
    expect(byAction('login.succeeded').at(-1)).toMatchObject({ actor: { id }, user_agent: 'audit-test/1.0' });
    await t.http().post('/login').set('User-Agent', 'x'.repeat(4000)).send({ email, password: 'wrong again' }).expect(401);
    expect((await audit(`target=${id}&action=login.failed`)).entries[0].user_agent).toBe('x'.repeat(512));
    expect(byAction('password.changed')[0]).toMatchObject({ actor: { id }, summary: { by: 'self', tokens_ended: 'login_only' } });
    expect(byAction('token.created')[0].summary).toMatchObject({ name: 'ci', scopes: ['api'] });
    expect(byAction('settings.changed').map((e) => e.summary).reverse()).toEqual([
      { op: 'set', keys: ['theme'] },
      { op: 'delete', keys: ['theme'] },
    ]);
    expect(byAction('email.change_confirmed')[0]).toMatchObject({ actor: null, summary: { from: email, to: `${name}-new@example.test` } });
    expect(byAction('email.change_reverted')[0]).toMatchObject({ actor: null, summary: { from: `${name}-new@example.test`, to: email } });
    expect(byAction('password.reset_used')[0]).toMatchObject({ actor: null, summary: { link: 'reset' } });
    expect(byAction('tokens.revoked')[0]).toMatchObject({ actor: { id: admin.user.id }, summary: { mode: 'all', login_tokens: 1, api_tokens: [] } });
    for (const e of entries) expect(e.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('records registration, verification, a reset request (from its job) and a throttled account, with the request they came from', async () => {
    const who = { name: unique('reg'), email: `${unique('reg')}@example.test`, password: 'registered password' };
    await t.http().post('/register').set('X-Request-Id', 'req-register').send(who).expect(202);
    const [mail] = await t.mail.waitFor((m) => m.to.includes(who.email));
    await t.http().post('/register/verify').send({ token: linkToken(mail.text) }).expect(204);
    await t.http().post('/password/reset').set('X-Request-Id', 'req-reset').send({ email: who.email }).expect(202);
    await t.mail.waitFor((m) => m.to.includes(who.email) && m.subject.startsWith('Reset'));
    const row = await t.knex('users').where({ email: who.email }).first();
    const { entries, text } = await audit(`target=${row.id}`);
    expect(text).not.toContain(who.password);
    expect(text).not.toContain(linkToken(mail.text));
    expect(entries.map((e) => e.action).reverse()).toEqual(['user.registered', 'user.verified', 'password.reset_requested']);
    expect(entries.find((e) => e.action === 'user.registered')).toMatchObject({ actor: null, request_id: 'req-register' });
    expect(entries.find((e) => e.action === 'password.reset_requested')).toMatchObject({ actor: null, request_id: 'req-reset' });

    const strict = await createTestApp({ env: { THROTTLE_ACCOUNT_FAILURES: '2' } });
    try {
      const u = await strict.factory.user();
      for (let i = 0; i < 3; i++) await strict.http().post('/login').send({ email: u.email, password: 'wrong password' });
      const actions = (await strict.knex('audit_log').where({ target_id: u.user.id }).orderBy('seq')).map((r) => r.action);
      expect(actions).toEqual(['login.failed', 'login.failed', 'login.throttled']);
    } finally {
      await strict.close();
    }
  });

  it('records sessions ended by logout and by DELETE /user/me/session/:id', async () => {
    const u = await t.factory.user();
    const first = await t.factory.login(u);
    const second = await t.factory.login(u);
    const sessions = (await t.http().get('/user/me/session').set(bearer(second)).expect(200)).body as { id: string; current: boolean }[];
    const other = sessions.find((x) => !x.current)!;
    await t.http().delete(`/user/me/session/${other.id}`).set(bearer(second)).expect(204);
    await t.http().post('/logout').set(bearer(second)).expect(204);
    await t.http().post('/logout').set(bearer(first)).expect(204); // already ended: nothing to record
    const ended = (await audit(`target=${u.user.id}&action=session.ended`)).entries.reverse();
    expect(ended.map((e) => [e.actor?.id, e.summary.how])).toEqual([
      [u.user.id, 'ended'],
      [u.user.id, 'logout'],
    ]);
    expect(ended[0].summary.session).toBe(other.id);
  });

  it('records group changes from REST and JSON-RPC alike', async () => {
    const member = await t.factory.user();
    const other = await t.factory.user();
    const name = unique('grp');
    const created = await t.http().post('/user_group').set(bearer(admin.jwt)).send({ name, description: 'first' }).expect(201);
    const id = created.body.id as string;
    const source = (await t.http().post('/user_group').set(bearer(admin.jwt)).send({ name: unique('src') }).expect(201)).body.id as string;
    await t.http().post(`/user_group/${id}`).set(bearer(admin.jwt)).send({ description: 'second' }).expect(200);
    await t.http().put(`/user_group/${id}/member/${member.user.id}`).set(bearer(admin.jwt)).expect(201);
    await t.http().put(`/user_group/${id}/member/${member.user.id}`).set(bearer(admin.jwt)).expect(200); // already: nothing changes
    await t.http().put(`/user_group/${id}/grant/user/${other.user.id}`).set(bearer(admin.jwt)).send({ permission: 'usergroup.write' }).expect(200);
    await t.http().put(`/user_group/${id}/grant/user_group/${source}`).set(bearer(admin.jwt)).send({ permission: 'usergroup.read' }).expect(200);
    await t.http().delete(`/user_group/${id}/grant/user/${other.user.id}`).set(bearer(admin.jwt)).expect(204);
    const apiKey = await t.factory.apiToken(admin.user);
    const rpc = await t.http().post('/_admin/api').send({ id: 1, auth_token: apiKey, method: 'remove_user_from_user_group', args: { usergroupid: id, userid: member.user.id } });
    expect(rpc.body.error).toBeNull();
    await t.http().delete(`/user_group/${id}`).set(bearer(admin.jwt)).expect(204);

    const { entries, text } = await audit(`target=${id}`);
    expect(text).not.toContain(apiKey);
    expect(entries.map((e) => e.action).reverse()).toEqual([
      'group.created',
      'group.updated',
      'group.member_added',
      'group.grant_set',
      'group.grant_set',
      'group.grant_removed',
      'group.member_removed',
      'group.deleted',
    ]);
    for (const e of entries) expect(e).toMatchObject({ actor: { id: admin.user.id }, target: { type: 'group', id, name } });
    const summaries = entries.map((e) => e.summary).reverse();
    expect(summaries[1]).toEqual({ changes: { description: { from: 'first', to: 'second' } } });
    expect(summaries[2]).toEqual({ user: { id: member.user.id, name: member.user.name } });
    expect(summaries[3]).toEqual({ to: { type: 'user', id: other.user.id, name: other.user.name }, permission: 'usergroup.write' });
    expect(summaries[4]).toMatchObject({ to: { type: 'user_group', id: source }, permission: 'usergroup.read' });
    expect(entries.find((e) => e.action === 'group.member_removed')!.request_id).toEqual(expect.any(String));
  });

  it('writes an entry in the transaction of its change: one that rolls back leaves none, even after the entry was added', async () => {
    const u = await t.factory.user();
    const before = await countRows(t.knex, 'audit_log');
    await expect(
      t.container.transact(async (s) => {
        await s.settings.set(u.user.id, 'k', 1);
        s.audit.add({ actor: null, ip: null, userAgent: null, requestId: 'rolled-back' }, { action: 'settings.changed', target: { type: 'user', id: u.user.id, name: u.user.name }, summary: { op: 'set', keys: ['k'] } });
        throw new Error('the change fails after its entry was added');
      }),
    ).rejects.toThrow('the change fails');
    expect(await countRows(t.knex, 'audit_log')).toBe(before);
    expect(await t.knex('user_settings').where({ user_id: u.user.id })).toHaveLength(0);
    // And outside a transaction no entry can be added at all.
    expect(() => t.container.stores.audit.add({ actor: null, ip: null, userAgent: null, requestId: null }, { action: 'user.updated', target: null, summary: {} })).toThrow(/transaction/);
  });

  it('writes nothing for a change that fails, and a row for a failed login by an unknown address', async () => {
    const taken = await t.factory.user();
    const before = await countRows(t.knex, 'audit_log');
    const conflict = await t.http().post('/user').set(bearer(admin.jwt)).send({ name: unique('dup'), email: taken.email });
    expect(conflict.status).toBe(409);
    expect((await t.http().post(`/user/${taken.user.id}`).set(bearer(admin.jwt)).send({ name: admin.user.name })).status).toBe(409);
    expect((await t.http().delete('/user/me/token/nothing-here').set(bearer(admin.jwt))).status).toBe(404);
    expect(await countRows(t.knex, 'audit_log')).toBe(before);
    const nobody = `nobody-${unique('x')}@example.test`;
    await t.http().post('/login').send({ email: nobody, password: 'whatever password' }).expect(401);
    const rows = await t.knex('audit_log').where({ action: 'login.failed' }).orderBy('seq', 'desc').limit(1);
    expect(rows[0]).toMatchObject({ actor_id: null, target_id: null });
    expect(rows[0].summary).toEqual({ identifier: nobody });
  });

  it('pages newest first with a Link header, and filters by actor, target, action (repeatable), since and until', async () => {
    const u = await t.factory.loggedIn();
    await new Promise((r) => setTimeout(r, 5)); // the login's entry falls before `start`
    const start = new Date().toISOString();
    for (const key of ['a', 'b', 'c']) await t.http().post(`/user/me/settings/${key}`).set(bearer(u.jwt)).send({ [key]: 1 }).expect(204);
    await t.http().post(`/user/${u.user.id}`).set(bearer(admin.jwt)).send({ last_name: 'Paged' }).expect(200);

    const mine = (await audit(`actor=${u.user.id}`, 2)).entries;
    expect(mine.map((e) => e.summary.keys)).toEqual([['c'], ['b'], ['a']]);
    const first = await t.http().get(`/audit?actor=${u.user.id}&limit=2`).set(bearer(admin.jwt)).expect(200);
    expect(first.body).toHaveLength(2);
    expect(first.headers.link).toMatch(new RegExp(`^</audit\\?actor=${u.user.id}&limit=2&cursor=[^>]+>; rel="next"$`));

    const onTarget = (await audit(`target=${u.user.id}&since=${start}`)).entries;
    expect(onTarget.map((e) => e.action)).toEqual(['user.updated', 'settings.changed', 'settings.changed', 'settings.changed']);
    const both = (await audit(`target=${u.user.id}&action=user.updated&action=login.succeeded`)).entries;
    expect(both.map((e) => e.action).sort()).toEqual(['login.succeeded', 'user.updated']);
    const byAdmin = (await audit(`target=${u.user.id}&actor=${admin.user.id}`)).entries;
    expect(byAdmin.map((e) => e.action)).toEqual(['user.updated']);
    const until = onTarget[1].time; // the newest settings change
    const window = (await audit(`target=${u.user.id}&since=${start}&until=${until}`)).entries;
    expect(window.map((e) => e.id)).toEqual(onTarget.filter((e) => e.time < until).map((e) => e.id));
    expect(window.map((e) => e.id)).not.toContain(onTarget[1].id);
    expect((await audit(`target=${u.user.id}&since=2999-01-01T00:00:00Z`)).entries).toEqual([]);
  });

  it('is for system admins only, and refuses unknown filters, bad values and foreign cursors with 400', async () => {
    const u = await t.factory.loggedIn();
    const res = await t.http().get('/audit').set(bearer(u.jwt));
    expect([res.status, res.body.code]).toEqual([403, 'forbidden']);
    expect((await t.http().get('/audit/verify').set(bearer(u.jwt))).status).toBe(403);
    expect((await t.http().get('/audit')).status).toBe(401);
    for (const q of ['who=me', 'action=user.exploded', 'actor=not-a-uuid', 'since=yesterday', 'until=2027-02-30T00:00:00Z', 'limit=0', 'cursor=bm9wZQ']) {
      const bad = await t.http().get(`/audit?${q}`).set(bearer(admin.jwt));
      expect([q, bad.status, bad.body.code]).toEqual([q, 400, 'validation_failed']);
    }
  });
});

describe('AUDIT_LOG=0', () => {
  it('writes no entries (it exists only to measure what they cost)', async () => {
    const off = await createTestApp({ env: { AUDIT_LOG: '0' } });
    try {
      const u = await off.factory.loggedIn();
      await off.http().post('/user/me/settings/x').set(bearer(u.jwt)).send({ x: 1 }).expect(204);
      await off.http().post('/login').send({ email: u.email, password: 'wrong password' }).expect(401);
      expect(await countRows(off.knex, 'audit_log')).toBe(0);
    } finally {
      await off.close();
    }
  });
});

/** The log's entries in the chain's order (those chained). */
async function inChainOrder(knex: Knex): Promise<(Record<string, unknown> & { seq: string; id: string })[]> {
  const { rows } = await knex.raw<{ rows: (Record<string, unknown> & { seq: string; id: string })[] }>(
    'select a.* from audit_log a join audit_chain c on c.seq = a.seq order by c.pos',
  );
  return rows;
}

type Row = Record<string, unknown> & { seq: string; id: string };

/** An audit_log row as the domain's entry (what a link covers). */
function entryOf(r: Row): Omit<AuditEntry, 'seq'> {
  return {
    id: r.id,
    time: r.time as Date,
    action: r.action as AuditEntry['action'],
    actor: r.actor_id ? { id: r.actor_id as string, name: (r.actor_name as string) ?? '' } : null,
    target: r.target_type && r.target_id ? { type: r.target_type as 'user' | 'group', id: r.target_id as string, name: (r.target_name as string) ?? '' } : null,
    ip: r.ip as string | null,
    userAgent: r.user_agent as string | null,
    requestId: r.request_id as string | null,
    summary: r.summary as Record<string, unknown>,
  };
}

/** Removes entries and their links, as someone with write access to the database would. */
async function removeWithLinks(knex: Knex, rows: Row[]): Promise<void> {
  const seqs = rows.map((r) => r.seq);
  await knex('audit_chain').whereIn('seq', seqs).delete();
  await knex('audit_log').whereIn('seq', seqs).delete();
}

/** `n` settings changes (`<prefix>0`, `<prefix>1`, ...) by the holder of `jwt`: an audit entry each. */
async function changeSettings(app: TestApp, jwt: string, prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await app.http().post(`/user/me/settings/${prefix}${i}`).set(bearer(jwt)).send({ [`${prefix}${i}`]: i }).expect(204);
}

/** `GET /audit/verify` as the admin holding `jwt`: its answer. */
const verifier = (app: TestApp, jwt: string) => async () => (await app.http().get('/audit/verify').set(bearer(jwt)).expect(200)).body;

/** The key the test apps chain with, as the service derives it. */
const chainKeys = () => KeyRing.of('AUDIT_KEY', [AUDIT_KEY]).derive(CHAIN_KEY_PURPOSE);

describe('GET /audit/verify', () => {
  it('finds the chain whole, then the first entry altered, removed, or put in behind the chain', async () => {
    const own = await createTestApp();
    try {
      const boss = await own.factory.loggedIn({ admin: true });
      const u = await own.factory.loggedIn();
      // Concurrent changes (on Postgres, from several connections) still make one chain.
      await Promise.all(Array.from({ length: 20 }, (_, i) => own.http().post(`/user/me/settings/k${i}`).set(bearer(u.jwt)).send({ [`k${i}`]: i }).expect(204)));
      const verify = verifier(own, boss.jwt);
      const total = await countRows(own.knex, 'audit_log');
      expect(await verify()).toEqual({ ok: true, rows: total, pending: 0, checkpoint: { position: total, time: expect.any(String) } });
      expect(await countRows(own.knex, 'audit_chain')).toBe(total); // verify chained every entry committed
      const positions = (await own.knex('audit_chain').select('pos').orderBy('pos')).map((r) => Number(r.pos));
      expect(positions).toEqual(Array.from({ length: total }, (_, i) => i + 1));

      const rows = await inChainOrder(own.knex);
      const victim = rows[10];
      await own.knex('audit_log').where({ seq: victim.seq }).update({ summary: { op: 'set', keys: ['forged'] } });
      expect(await verify()).toMatchObject({ ok: false, reason: 'altered', broken_at: victim.id, rows: 10, pending: 0, detail: expect.stringContaining('position 11') });
      await own.knex('audit_log').where({ seq: victim.seq }).update({ summary: victim.summary });
      expect((await verify()).ok).toBe(true);

      // An entry put in behind the chain (an old writer's id) is never chained: verify names it.
      const forged = { ...rows[3], seq: undefined, id: crypto.randomUUID(), xid: '1' };
      await own.knex('audit_log').insert(forged);
      expect(await verify()).toMatchObject({ ok: false, reason: 'passed_over', broken_at: forged.id, rows: total, pending: 0 });
      await own.knex('audit_log').where({ id: forged.id }).delete();
      expect((await verify()).ok).toBe(true);

      // An entry removed, its link kept: the link still names it.
      await own.knex('audit_log').where({ seq: rows[2].seq }).delete();
      expect(await verify()).toMatchObject({ ok: false, reason: 'entry_removed', broken_at: rows[2].id, rows: 2 });
      // Removed with its link: the positions skip.
      await own.knex('audit_chain').where({ seq: rows[2].seq }).delete();
      expect(await verify()).toMatchObject({ ok: false, reason: 'gap', broken_at: rows[3].id, rows: 2 });
    } finally {
      await own.close();
    }
  });

  it('finds an entry rewritten with every later link recomputed, unkeyed (SHA-256) or with a guessed key', async () => {
    const own = await createTestApp();
    try {
      const boss = await own.factory.loggedIn({ admin: true });
      const u = await own.factory.loggedIn();
      await changeSettings(own, u.jwt, 'r', 6);
      const verify = verifier(own, boss.jwt);
      expect((await verify()).ok).toBe(true);
      const rows = await inChainOrder(own.knex);
      const k = 3;
      await own.knex('audit_log').where({ seq: rows[k].seq }).update({ summary: { op: 'set', keys: ['rewritten'] } });
      const rewritten = await inChainOrder(own.knex);
      /** Every link from the rewritten entry on, made again by `hash` over the previous link and the entry. */
      const relink = async (hash: (prev: string, r: Row, pos: number) => string) => {
        let prev = (await own.knex('audit_chain').where({ seq: rows[k - 1].seq }).first()).hash as string;
        for (let i = k; i < rewritten.length; i++) {
          const next = hash(prev, rewritten[i], i + 1);
          await own.knex('audit_chain').where({ seq: rewritten[i].seq }).update({ prev_hash: prev, hash: next });
          prev = next;
        }
      };
      // The chain as it was before the key: SHA-256 over the previous link and the entry.
      await relink((prev, r) => crypto.createHash('sha256').update(prev + canonicalJson(auditFields(entryOf(r))), 'utf8').digest('hex'));
      expect(await verify()).toMatchObject({ ok: false, reason: 'altered', broken_at: rows[k].id, rows: k });
      // The service's own construction, with a key that is not AUDIT_KEY.
      const guessed = KeyRing.of('AUDIT_KEY', ['a guess at the key: 32 characters or more']).derive(CHAIN_KEY_PURPOSE);
      const links = await own.knex('audit_chain').select('seq', 'prev_max_time').orderBy('pos');
      const prevMaxTime = new Map(links.map((l) => [String(l.seq), l.prev_max_time as Date | null]));
      await relink((prev, r, pos) => linkHash(guessed.current.key, { pos, prevHash: prev, prevMaxTime: prevMaxTime.get(r.seq) ?? null }, entryOf(r)));
      expect(await verify()).toMatchObject({ ok: false, reason: 'altered', broken_at: rows[k].id, rows: k });
    } finally {
      await own.close();
    }
  });

  it('finds the newest entries removed with their links against the last checkpoint, also once new entries are chained after them', async () => {
    const own = await createTestApp();
    try {
      const boss = await own.factory.loggedIn({ admin: true });
      const u = await own.factory.loggedIn();
      await changeSettings(own, u.jwt, 'n', 6);
      const verify = verifier(own, boss.jwt);
      const whole = await verify();
      expect(whole).toMatchObject({ ok: true, checkpoint: { position: whole.rows } });
      const rows = await inChainOrder(own.knex);
      await removeWithLinks(own.knex, rows.slice(-3));
      expect(await verify()).toMatchObject({ ok: false, reason: 'truncated', rows: rows.length - 3, checkpoint: { position: rows.length } });
      // New entries chained where the removed ones were: the chain now differs at the checkpoint.
      await changeSettings(own, u.jwt, 'm', 4);
      const after = await verify();
      expect(after).toMatchObject({ ok: false, reason: 'checkpoint_mismatch', rows: rows.length - 1, checkpoint: { position: rows.length } });
      expect((await own.knex('audit_chain').where({ pos: rows.length }).first()).id).toBe(after.broken_at);
    } finally {
      await own.close();
    }
  });

  it('writes signed checkpoints of the head to the log, to AUDIT_CHECKPOINT_FILE and to /metrics; a new instance reads the file and finds the chain cut meanwhile', async () => {
    const lines: string[] = [];
    const own = await createTestApp({ env: { LOG_LEVEL: 'info' }, logDestination: { write: (l) => void lines.push(l) } });
    let second: TestApp | undefined;
    try {
      const boss = await own.factory.loggedIn({ admin: true });
      const u = await own.factory.loggedIn();
      await changeSettings(own, u.jwt, 'c', 4);
      const verified = (await own.http().get('/audit/verify').set(bearer(boss.jwt)).expect(200)).body;
      expect(verified.ok).toBe(true);
      const head = await own.knex('audit_chain').orderBy('pos', 'desc').first();
      expect(Number(head.pos)).toBe(verified.rows);
      const metrics = (await own.http().get('/metrics').expect(200)).text;
      expect(metrics).toMatch(new RegExp(`^audit_chain_head_position ${verified.rows}$`, 'm'));
      expect(metrics).toMatch(new RegExp(`^audit_chain_checkpoint_position ${verified.rows}$`, 'm'));

      await own.container.auditChainer.stop(); // a last pass; the newest checkpoint written whatever its age
      const file = path.join(own.dataDir, 'audit-checkpoint.json');
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      const kept = JSON.parse(fs.readFileSync(file, 'utf8'));
      expect(kept).toEqual({ position: verified.rows, hash: head.hash, time: expect.any(String), key_id: chainKeys().current.id, mac: expect.stringMatching(/^[0-9a-f]{64}$/) });
      expect(checkpointSigned(chainKeys(), parseCheckpoint(kept)!)).toBe(true);
      expect(checkpointSigned(chainKeys(), parseCheckpoint({ ...kept, position: kept.position + 1 })!)).toBe(false);
      const logged = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'audit checkpoint');
      expect(logged.at(-1).audit_checkpoint).toEqual(kept);

      // While no instance runs, the newest entries go with their links; the next one started finds it from the file.
      const rows = await inChainOrder(own.knex);
      await removeWithLinks(own.knex, rows.slice(-2));
      second = await createTestApp({ sameDatabaseAs: own, env: { AUDIT_CHECKPOINT_FILE: file } });
      const res = await second.http().get('/audit/verify').set(bearer(boss.jwt)).expect(200);
      expect(res.body).toMatchObject({ ok: false, reason: 'truncated', rows: rows.length - 2, checkpoint: { position: rows.length, time: kept.time } });
    } finally {
      await second?.close();
      await own.close();
    }
  });

  it('finds the oldest entries removed, unless retention would have removed them; retention itself keeps the chain whole', async () => {
    const own = await createTestApp();
    try {
      let boss = await own.factory.loggedIn({ admin: true });
      const u = await own.factory.loggedIn();
      await changeSettings(own, u.jwt, 'o', 5);
      const old = await countRows(own.knex, 'audit_log');
      own.clock.advance(400 * 86_400_000); // a year and more later (AUDIT_RETENTION_DAYS: 365)
      boss = { ...boss, jwt: await own.factory.login(boss) };
      const v = await own.factory.loggedIn();
      await changeSettings(own, v.jwt, 'y', 5);
      const verify = verifier(own, boss.jwt);
      const total = (await verify()).rows;
      expect(total).toBe(await countRows(own.knex, 'audit_log'));

      await own.container.housekeeping.stop();
      try {
        await own.container.housekeeping.runOnce();
      } finally {
        own.container.housekeeping.start();
      }
      expect(await countRows(own.knex, 'audit_log')).toBe(total - old);
      expect(await countRows(own.knex, 'audit_chain')).toBe(total - old);
      expect(await verify()).toMatchObject({ ok: true, rows: total - old, pending: 0 });

      // The oldest entries kept are a moment old, not a year: removing them is found.
      const rows = await inChainOrder(own.knex);
      await removeWithLinks(own.knex, rows.slice(0, 2));
      const cut = await verify();
      expect(cut).toMatchObject({ ok: false, reason: 'start_cut', broken_at: rows[2].id, rows: 0 });
      expect(cut.detail).toMatch(/^the chain starts at position \d+, but the entries before it \(up to \S+\) were not due for removal/);
    } finally {
      await own.close();
    }
  });

  it('keeps links made before a key rotation verifiable, and names a link whose key AUDIT_KEY no longer holds', async () => {
    const first = await createTestApp();
    let rotated: TestApp | undefined;
    let dropped: TestApp | undefined;
    try {
      const boss = await first.factory.loggedIn({ admin: true });
      await first.http().post('/user/me/settings/before').set(bearer(boss.jwt)).send({ before: 1 }).expect(204);
      await first.container.auditChainer.stop();
      const newKey = 'the next audit key: 32 characters or more';
      rotated = await createTestApp({ sameDatabaseAs: first, env: { AUDIT_KEY: `${newKey},${AUDIT_KEY}` } });
      await rotated.http().post('/user/me/settings/after').set(bearer(boss.jwt)).send({ after: 1 }).expect(204);
      const whole = (await rotated.http().get('/audit/verify').set(bearer(boss.jwt)).expect(200)).body;
      expect(whole).toMatchObject({ ok: true, rows: await countRows(first.knex, 'audit_log') });
      const keyIds = (await first.knex('audit_chain').select('key_id').orderBy('pos')).map((r) => r.key_id);
      const ids = KeyRing.of('AUDIT_KEY', [newKey, AUDIT_KEY]).derive(CHAIN_KEY_PURPOSE).all.map((k) => k.id);
      expect(new Set(keyIds)).toEqual(new Set(ids)); // old links by the old key, new ones by the new
      expect(keyIds.at(-1)).toBe(ids[0]);

      await rotated.container.auditChainer.stop();
      dropped = await createTestApp({ sameDatabaseAs: first, env: { AUDIT_KEY: newKey } });
      const [firstLink] = await first.knex('audit_chain').orderBy('pos').limit(1);
      expect((await dropped.http().get('/audit/verify').set(bearer(boss.jwt)).expect(200)).body).toMatchObject({ ok: false, reason: 'unknown_key', broken_at: firstLink.id, rows: 0 });
    } finally {
      await dropped?.close();
      await rotated?.close();
      await first.close();
    }
  });

  it('says ok: false when an entry older than a few seconds is still not chained', async () => {
    const admin2 = await t.factory.loggedIn({ admin: true });
    const verify = verifier(t, admin2.jwt);
    expect((await verify()).ok).toBe(true);
    // Written by a transaction id the chain will not reach: it stays unchained.
    const stuck = crypto.randomUUID();
    await t.knex.raw(`insert into audit_log (id, time, action, summary, xid) values (?, now() - interval '1 minute', 'settings.changed', '{"op":"set","keys":["stuck"]}', '999999999999'::xid8)`, [stuck]);
    try {
      expect(await verify()).toMatchObject({ ok: false, reason: 'unchained', broken_at: stuck, pending: 1 });
    } finally {
      await t.knex('audit_log').where({ id: stuck }).delete();
    }
    expect((await verify()).ok).toBe(true);
  });

  it('chains a committed entry shortly after its commit, without being asked', async () => {
    // The chainer's poll out of reach: only the kick after the commit can chain the entry.
    const own = await createTestApp({ auditChainPollMs: 3_600_000 });
    try {
      const u = await own.factory.loggedIn();
      await own.http().post('/user/me/settings/chained').set(bearer(u.jwt)).send({ chained: 1 }).expect(204);
      const [entry] = await own.knex('audit_log').where({ actor_id: u.user.id, action: 'settings.changed' });
      const link = await chainedWithin(own.knex, entry.seq, 20_000);
      expect(link).toMatchObject({ id: entry.id, key_id: chainKeys().current.id, hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    } finally {
      await own.close();
    }
  });
});

/** The entry's link, polled for until `ms` have passed (undefined: not chained by then). */
async function chainedWithin(knex: Knex, seq: string, ms: number): Promise<Record<string, unknown> | undefined> {
  const deadline = Date.now() + ms;
  let link: Record<string, unknown> | undefined;
  while (!link && Date.now() < deadline) {
    link = await knex('audit_chain').where({ seq }).first();
    if (!link) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return link;
}

// Only a server has a second connection to hold a transaction open on while requests go on, and
// a second database.
if (onPostgres) {
  describe('the audit chain and transactions still open', () => {
    it('waits for an older transaction of this database to end, then chains its entry before the later ones: none is left behind; held longer than a few seconds, verify says so', async () => {
      const own = await createTestApp();
      const early = new pg.Client({ connectionString: own.databaseUrl });
      await early.connect();
      try {
        const boss = await own.factory.loggedIn({ admin: true });
        const verify = verifier(own, boss.jwt);
        expect(await verify()).toMatchObject({ ok: true, pending: 0 });

        // A transaction that began (and took its id) before the next change, and commits after it.
        await early.query('begin');
        await early.query('select pg_current_xact_id()');
        const u = await own.factory.loggedIn(); // entries written and committed after it began
        const later = await own.knex('audit_log').where({ target_id: u.user.id }).orderBy('seq');
        expect(later.length).toBeGreaterThan(0);
        const held = await verify();
        expect(held).toMatchObject({ ok: true, pending: later.length });
        expect(await own.knex('audit_chain').whereIn('seq', later.map((e) => e.seq))).toHaveLength(0);
        own.clock.advance(10_000); // the held entries are now more than a few seconds old
        expect(await verify()).toMatchObject({ ok: false, reason: 'unchained', broken_at: later[0].id, pending: later.length });

        const lateId = crypto.randomUUID();
        await early.query(
          `insert into audit_log (id, time, action, summary) values ($1, now() - interval '1 minute', 'settings.changed', '{"op":"set","keys":["late"]}')`,
          [lateId],
        );
        await early.query('commit');

        expect(await verify()).toMatchObject({ ok: true, pending: 0 });
        const chained = (await inChainOrder(own.knex)).map((e) => e.id);
        expect(chained.indexOf(lateId)).toBeGreaterThanOrEqual(0);
        expect(chained.indexOf(lateId)).toBeLessThan(chained.indexOf(later[0].id));
        expect(chained.slice(-later.length)).toEqual(later.map((e) => e.id));
      } finally {
        await early.end();
        await own.close();
      }
    });

    it("is not held by an idle transaction in another database of the server: an entry is chained at once, and altering it afterwards is found", async () => {
      const elsewhere = new pg.Client({ connectionString: process.env.DATABASE_URL }); // the run's database, not this file's
      await elsewhere.connect();
      try {
        expect(new URL(process.env.DATABASE_URL!).pathname).not.toBe(new URL(t.databaseUrl!).pathname);
        await elsewhere.query('begin');
        await elsewhere.query('select pg_current_xact_id()'); // holds an id, as a writer there would, and idles
        const u = await t.factory.loggedIn();
        await t.http().post('/user/me/settings/elsewhere').set(bearer(u.jwt)).send({ elsewhere: 1 }).expect(204);
        const [entry] = await t.knex('audit_log').where({ actor_id: u.user.id, action: 'settings.changed' });
        expect(await chainedWithin(t.knex, entry.seq, 3000)).toMatchObject({ id: entry.id });
        const verify = verifier(t, admin.jwt);
        expect(await verify()).toMatchObject({ ok: true, pending: 0 });
        // Forged after its chaining: found.
        await t.knex('audit_log').where({ seq: entry.seq }).update({ summary: { op: 'set', keys: ['forged'] } });
        try {
          expect(await verify()).toMatchObject({ ok: false, reason: 'altered', broken_at: entry.id });
        } finally {
          await t.knex('audit_log').where({ seq: entry.seq }).update({ summary: entry.summary });
        }
        expect((await verify()).ok).toBe(true);
      } finally {
        await elsewhere.query('rollback').catch(() => undefined);
        await elsewhere.end();
      }
    });
  });
}
