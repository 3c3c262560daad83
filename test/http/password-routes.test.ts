import { createTestApp, type TestApp } from '../helpers/test-app';

let t: TestApp;
let adminJwt: string;
beforeAll(async () => {
  t = await createTestApp();
  adminJwt = (await t.factory.loggedIn({ admin: true })).jwt;
});
afterAll(async () => {
  await t.close();
});

/** Creates a user through the API and returns the token of their welcome link. */
async function invited(): Promise<{ id: string; email: string; token: string }> {
  const name = `inv${Math.random().toString(36).slice(2, 10)}`;
  const email = `${name}@example.test`;
  const res = await t.http().post('/user').set('Authorization', `Bearer ${adminJwt}`).send({ name, email }).expect(201);
  const [mail] = await t.mail.waitFor((m) => m.to.includes(email));
  return { id: res.body.id, email, token: /token=([A-Za-z0-9_-]+)/.exec(mail.text)![1] };
}

describe('POST /password/reset/confirm', () => {
  it('sets the password, clears force_password_change, ends login tokens, and works once', async () => {
    const u = await invited();
    // Give the user a password and a login session first, to see them end.
    await t.knex('users').where({ id: u.id }).update({ password_hash: await t.container.hasher.hash('old password 123') });
    const session = await t.factory.login({ email: u.email, password: 'old password 123' });
    const api = await t.factory.apiToken((await t.container.stores.users.findById(u.id))!);
    const res = await t.http().post('/password/reset/confirm').send({ token: u.token, password: 'new password 456' });
    expect(res.status).toBe(204);
    const row = await t.knex('users').where({ id: u.id }).first();
    expect(row.force_password_change).toBe(false);
    expect((await t.http().get('/me').set('Authorization', `Bearer ${session}`)).status).toBe(401);
    expect((await t.http().get('/me').set('Authorization', `Bearer ${api}`)).status).toBe(204);
    expect((await t.http().post('/login').send({ email: u.email, password: 'old password 123' })).status).toBe(401);
    expect((await t.http().post('/login').send({ email: u.email, password: 'new password 456' })).status).toBe(200);
    const again = await t.http().post('/password/reset/confirm').send({ token: u.token, password: 'third password 789' });
    expect(again.status).toBe(400);
    expect(again.body.code).toBe('invalid_token');
    expect((await t.http().post('/login').send({ email: u.email, password: 'new password 456' })).status).toBe(200);
  });

  it('refuses unknown and expired tokens with invalid_token', async () => {
    const unknown = await t.http().post('/password/reset/confirm').send({ token: 'x'.repeat(43), password: 'some password 1' });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatchObject({ code: 'invalid_token' });
    const u = await invited();
    t.clock.advance(7 * 86_400_000 + 1000);
    try {
      const expired = await t.http().post('/password/reset/confirm').send({ token: u.token, password: 'some password 1' });
      expect(expired.status).toBe(400);
      expect(expired.body.code).toBe('invalid_token');
      expect((await t.knex('users').where({ id: u.id }).first()).password_hash).toBeNull();
    } finally {
      t.clock.advance(-(7 * 86_400_000 + 1000));
    }
  });

  it('refuses a weak password with weak_password and leaves the link usable', async () => {
    const u = await invited();
    for (const password of ['short', 'x'.repeat(257), '\u{1F600}'.repeat(65)]) {
      const res = await t.http().post('/password/reset/confirm').send({ token: u.token, password });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('weak_password');
    }
    expect((await t.http().post('/password/reset/confirm').send({ token: u.token, password: '\u{1F600}'.repeat(8) })).status).toBe(204);
    expect((await t.http().post('/login').send({ email: u.email, password: '\u{1F600}'.repeat(8) })).status).toBe(200);
  });

  it('uses every byte of a long password (beyond bcrypt\'s 72)', async () => {
    const u = await invited();
    const long = `${'a'.repeat(100)}1`;
    await t.http().post('/password/reset/confirm').send({ token: u.token, password: long }).expect(204);
    expect((await t.http().post('/login').send({ email: u.email, password: `${'a'.repeat(100)}2` })).status).toBe(401);
    expect((await t.http().post('/login').send({ email: u.email, password: long })).status).toBe(200);
  });

  it('lets one of several concurrent uses of a link succeed', async () => {
    const u = await invited();
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => t.http().post('/password/reset/confirm').send({ token: u.token, password: `concurrent password ${i}` })),
    );
    expect(results.filter((r) => r.status === 204)).toHaveLength(1);
    expect(results.filter((r) => r.status === 400 && r.body.code === 'invalid_token')).toHaveLength(7);
  });

  it('dies when the user is deactivated', async () => {
    const u = await invited();
    await t.http().delete(`/user/${u.id}`).set('Authorization', `Bearer ${adminJwt}`).expect(204);
    const res = await t.http().post('/password/reset/confirm').send({ token: u.token, password: 'some password 1' });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('invalid_token');
  });

  it('validates the body', async () => {
    for (const body of [{}, { token: 'x' }, { password: 'some password' }, { token: 1, password: 'some password' }, { token: 'x', password: 'some password', extra: 1 }]) {
      const res = await t.http().post('/password/reset/confirm').send(body);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
  });
});
