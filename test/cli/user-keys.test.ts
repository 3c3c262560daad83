import fs from 'node:fs';
import { userCliFixture } from '../helpers/user-cli';

/** `accounts user key generate|list|revoke` without a terminal, against a real server (see userCliFixture). */
const cli = userCliFixture('accounts-user-keys-');

const GRACE = { name: 'grace', email: 'grace@example.test', password: 'grace has a long password' };
const LOCAL = 'grace local secret';

let config: string;

/** Runs a task as grace, with the local password of her stored key on standard input. */
function asGrace(args: string[]) {
  return cli.run(['user', ...args], { config, stdin: `${LOCAL}\n` });
}

async function generate(name: string, permissions: string[] = []): Promise<{ name: string; scopes: string[]; token: string }> {
  const res = await asGrace(['key', 'generate', '--key-name', name, ...permissions.flatMap((p) => ['--permission', p]), '--json']);
  expect(res).toMatchObject({ code: 0, err: '' });
  return JSON.parse(res.out);
}

beforeAll(async () => {
  await cli.account(GRACE.name, GRACE.email, GRACE.password);
  config = cli.configHome();
  const auth = await cli.run(['user', 'auth', '--email', GRACE.email, '--key-name', 'workstation'], { config, stdin: `${GRACE.password}\n${LOCAL}\n` });
  expect(auth.code).toBe(0);
}, 120_000);

describe('accounts user key generate', () => {
  it('prints a new key once, api:write by default: the token alone on stdout', async () => {
    const res = await asGrace(['key', 'generate', '--key-name', 'deploys']);
    expect(res.code).toBe(0);
    expect(res.out).toMatch(/^eyJ[\w-]+\.[\w-]+\.[\w-]+\n$/);
    expect(res.err).toMatch(/^Key "deploys" \(api:write\), expires \d{4}-\d\d-\d\dT[\d:.]+Z\. It is shown this once:\n$/);
    const keys = await cli.call('GET', '/user/me/token', res.out.trim());
    expect(keys.body).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'deploys', scopes: ['api:write'] })]));
  }, 60_000);

  it('with --permission api:read makes a key that reads but cannot write', async () => {
    const key = await generate('reader', ['api:read']);
    expect(key.scopes).toEqual(['api:read']);
    expect((await cli.call('GET', '/user/me', key.token)).status).toBe(200);
    const write = await cli.call('DELETE', '/user/me/token/deploys', key.token);
    expect(write).toMatchObject({ status: 403, body: { code: 'forbidden' } });
    // The CLI run with that key says so in one line: the API's error and code, exit 1.
    const refused = await cli.run(['user', 'key', 'revoke', 'deploys'], { config: cli.configHome(), env: { ACCOUNTS_KEY: key.token } });
    expect(refused).toMatchObject({ code: 1, out: '' });
    expect(refused.err).toMatch(/^accounts: [^\n]+ \(forbidden\)\n$/);
  }, 60_000);

  it('takes repeated permissions, and a name with a slash and an emoji', async () => {
    const key = await generate('ci / \u{1F680}', ['api:read', 'api:write']);
    expect(key).toMatchObject({ name: 'ci / \u{1F680}', scopes: ['api:read', 'api:write'] });
  }, 60_000);

  it('refuses a name in use with the API error and code', async () => {
    const res = await asGrace(['key', 'generate', '--key-name', 'deploys']);
    expect(res).toMatchObject({ code: 1, out: '' });
    expect(res.err).toMatch(/^accounts: [^\n]+ \(conflict\)\n$/);
  }, 60_000);
});

describe('accounts user key list', () => {
  it('lists the keys with their scopes, times and IP, the stored one marked', async () => {
    const res = await asGrace(['key', 'list']);
    expect(res).toMatchObject({ code: 0, err: '' });
    const lines = res.out.trimEnd().split('\n');
    expect(lines[0].trim().split(/\s{2,}/).map((c) => c.trim())).toEqual(['NAME', 'SCOPES', 'CREATED', 'LAST USED', 'LAST IP', 'EXPIRES']);
    const stored = lines.find((l) => /^\*\s+workstation\s/.test(l));
    expect(stored).toMatch(/^\*\s+workstation\s+api\s+\d{4}-\S+Z\s+\d{4}-\S+Z\s+127\.0\.0\.1\s+\d{4}-\S+Z$/);
    expect(lines.find((l) => /^\s+reader\s/.test(l))).toMatch(/^\s+reader\s+api:read\s/);
    expect(lines.filter((l) => l.startsWith('*'))).toHaveLength(2); // the stored key, and the legend
    expect(lines.at(-1)).toBe(`* the key stored on this machine for ${cli.url}`);
  }, 60_000);

  it('--json: the API list, each with "stored"', async () => {
    const res = await asGrace(['key', 'list', '--json']);
    expect(res.code).toBe(0);
    const keys = JSON.parse(res.out) as { name: string; stored: boolean; scopes: string[]; last_ipaddr: string | null }[];
    expect(keys.filter((k) => k.stored).map((k) => k.name)).toEqual(['workstation']);
    expect(keys.map((k) => k.name)).toEqual(expect.arrayContaining(['workstation', 'deploys', 'reader']));
    for (const key of keys) expect(Object.keys(key).sort()).toEqual(['created', 'expires', 'last_ipaddr', 'last_used', 'name', 'scopes', 'stored']);
  }, 60_000);
});

describe('accounts user key revoke', () => {
  it('deletes one key: refused from the next request on; the others work', async () => {
    const doomed = await generate('doomed');
    const kept = await generate('kept');
    const res = await asGrace(['key', 'revoke', 'doomed']);
    expect(res).toMatchObject({ code: 0, err: '', out: `Deleted key "doomed" on ${cli.url}.\n` });
    expect(await cli.call('GET', '/user/me', doomed.token)).toMatchObject({ status: 401, body: { code: 'unauthenticated' } });
    expect((await cli.call('GET', '/user/me', kept.token)).status).toBe(200);
    const again = await asGrace(['key', 'revoke', 'doomed']);
    expect(again).toMatchObject({ code: 1, out: '' });
    expect(again.err).toMatch(/^accounts: [^\n]+ \(not_found\)\n$/);
  }, 60_000);

  it('--all deletes every key, the stored one included (and says so): all refused on the next request', async () => {
    const other = await generate('other');
    const res = await asGrace(['key', 'revoke', '--all']);
    expect(res).toMatchObject({ code: 0, err: '' });
    expect(res.out).toBe(`Deleted every API key of yours on ${cli.url}, the one stored on this machine ("workstation") included: it is removed here too. Run \`accounts user auth\` for a new one.\n`);
    expect((await cli.call('GET', '/user/me', other.token)).status).toBe(401);
    const file = JSON.parse(fs.readFileSync(cli.keyFile(config), 'utf8'));
    expect(file.keys[cli.url]).toBeUndefined();
    // Nothing is left: a fresh login sees no API key at all.
    const login = await cli.login(GRACE.email, GRACE.password);
    expect((await cli.call('GET', '/user/me/token', login)).body).toEqual([]);
    const whoami = await cli.run(['user', 'whoami'], { config });
    expect(whoami).toMatchObject({ code: 1, err: `accounts: no key stored for ${cli.url}: run \`accounts user auth\` (or set ACCOUNTS_KEY)\n` });
  }, 60_000);
});
