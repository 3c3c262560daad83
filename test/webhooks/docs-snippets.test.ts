import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bearer, testAppWithAdmin } from '../helpers/test-app';
import { WebhookReceiver, type ReceivedWebhook } from '../helpers/webhook-receiver';

/**
 * docs/webhooks.md's "How to verify a signature in a receiver", as written: each code block after
 * `<!-- run by test/webhooks/docs-snippets.test.ts: <name> -->` is run (JavaScript by node,
 * Python by python3) with a small driver appended, against deliveries the service made and signed
 * (its sender, to a receiver in this process): it must accept a change's event and a rotation's
 * two signatures (with either secret), and reject a tampered body or id, another endpoint's
 * secret, a timestamp signed ten minutes ago (the test clock set back) and a missing signature.
 * The Go snippet is not run (no Go on these machines).
 */
const root = path.join(__dirname, '..', '..');
const page = fs.readFileSync(path.join(root, 'docs/webhooks.md'), 'utf8');

function snippets(): Map<string, { lang: string; code: string }> {
  const found = new Map<string, { lang: string; code: string }>();
  for (const m of page.matchAll(/<!-- run by test\/webhooks\/docs-snippets\.test\.ts: ([\w-]+) -->\s*```(\w+)\n([\s\S]*?)```/g)) {
    found.set(m[1]!, { lang: m[2]!, code: m[3]! });
  }
  return found;
}

/** Reads the cases (JSON on stdin), verifies each, prints one JSON array of outcomes. */
const drivers: Record<string, string> = {
  js: `
;(() => {
  const cases = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
  const out = cases.map((c) => {
    try {
      const event = verifyWebhook(c.secret, c.headers, Buffer.from(c.body, 'base64'));
      return { ok: true, type: event.type };
    } catch (err) {
      return { ok: false, error: String(err.message) };
    }
  });
  console.log(JSON.stringify(out));
})();
`,
  python: `
import sys as _sys

def _run():
    out = []
    for c in json.load(_sys.stdin):
        try:
            event = verify_webhook(c["secret"], c["headers"], base64.b64decode(c["body"]))
            out.append({"ok": True, "type": event["type"]})
        except Exception as err:
            out.append({"ok": False, "error": str(err)})
    print(json.dumps(out))

_run()
`,
};

interface Case {
  name: string;
  secret: string;
  headers: Record<string, string>;
  /** base64 of the raw body. */
  body: string;
  /** The event's type when the snippet must accept it; undefined: it must reject it. */
  accept?: string;
}

const { t, admin } = testAppWithAdmin({ env: { WEBHOOK_ALLOW_HTTP: '1', WEBHOOK_ALLOW_PRIVATE: '1' }, webhookPollMs: 50 });
const receiver = new WebhookReceiver();
let input: Case[] = [];

/** What a receiver is handed: the headers the service sent, the body's bytes. */
function delivery(r: ReceivedWebhook): { headers: Record<string, string>; body: string; type: string } {
  const headers: Record<string, string> = {};
  for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature', 'content-type']) headers[name] = String(r.headers[name] ?? '');
  return { headers, body: Buffer.from(r.raw, 'utf8').toString('base64'), type: (r.json as { type: string }).type };
}

/** Deliveries the service made and signed: a change's event, one signed ten minutes ago, and one during a rotation. */
beforeAll(async () => {
  await receiver.start();
  const made = await t.http().post('/webhook').set(bearer(admin.jwt)).send({ url: receiver.url('/docs'), events: ['*'] }).expect(201);
  const { id, secret: old } = made.body as { id: string; secret: string };
  const next = async (trigger: () => Promise<unknown>) => {
    const before = receiver.to('/docs').length;
    await trigger();
    return (await receiver.waitFor(before + 1, { filter: (r) => r.path === '/docs' }))[before]!;
  };
  // A change with non-ASCII in it: the signature covers bytes, not characters.
  const changed = await next(() => t.http().post('/user/me').set(bearer(admin.jwt)).send({ first_name: 'Zoë' }).expect(200));
  t.clock.advance(-10 * 60_000);
  const stale = await next(() => t.http().post(`/webhook/${id}/test`).set(bearer(admin.jwt)).expect(202));
  t.clock.advance(10 * 60_000);
  const secret = ((await t.http().post(`/webhook/${id}/secret`).set(bearer(admin.jwt)).expect(200)).body as { secret: string }).secret;
  const rotating = await next(() => t.http().post(`/webhook/${id}/test`).set(bearer(admin.jwt)).expect(202));

  const good = delivery(changed);
  expect([good.type, JSON.parse(changed.raw).data.user.name]).toEqual(['user.updated', admin.user.name]);
  expect(changed.raw).toContain('Zoë');
  const rotation = delivery(rotating);
  expect(rotation.headers['webhook-signature']).toMatch(/^v1,\S+ v1,\S+$/);
  const otherSecret = `whsec_${crypto.randomBytes(32).toString('base64')}`;
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  input = [
    { name: 'a good delivery', secret: old, ...good, accept: 'user.updated' },
    { name: 'a tampered body', secret: old, headers: good.headers, body: b64(changed.raw.replace('Zoë', 'Eve')) },
    { name: 'a tampered webhook-id', secret: old, headers: { ...good.headers, 'webhook-id': 'msg_other' }, body: good.body },
    { name: "another endpoint's secret", secret: otherSecret, ...good },
    { name: 'a timestamp ten minutes old (signed then)', secret: old, ...delivery(stale) },
    { name: 'no signature', secret: old, headers: { ...good.headers, 'webhook-signature': '' }, body: good.body },
    { name: "a rotation's two signatures, receiver with the new secret", secret, ...rotation, accept: 'webhook.test' },
    { name: "a rotation's two signatures, receiver with the old secret", secret: old, ...rotation, accept: 'webhook.test' },
  ];
});
afterAll(() => receiver.stop());

function run(name: string): { ok: boolean; type?: string; error?: string }[] {
  const snippet = snippets().get(name);
  if (!snippet) throw new Error(`docs/webhooks.md has no snippet marked ${name}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-docs-webhooks-'));
  try {
    const js = snippet.lang === 'js';
    const file = path.join(dir, js ? 'verify.js' : 'verify.py');
    fs.writeFileSync(file, snippet.code + drivers[js ? 'js' : 'python']);
    // require('standardwebhooks') from the checkout, as a reader's project would have it installed.
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_PATH: path.join(root, 'node_modules') };
    const child = spawnSync(js ? process.execPath : 'python3', [file], { input: JSON.stringify(input), env, encoding: 'utf8', timeout: 30_000 });
    if (child.status !== 0) throw new Error(`${name} exited ${child.status}:\n${child.stderr}\n${child.stdout}`);
    return JSON.parse(child.stdout.trim().split('\n').pop()!);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('docs/webhooks.md: verifying a signature in a receiver', () => {
  it('marks three snippets to run (two JavaScript, one Python) and has the Go one beside them', () => {
    expect([...snippets()].map(([name, s]) => `${name}:${s.lang}`)).toEqual(['js-standardwebhooks:js', 'js-node-crypto:js', 'python:python']);
    expect(page).toMatch(/```go\n[\s\S]*func VerifyWebhook\(/);
    expect(page).toContain('The Go snippet is NOT run by the tests');
  });

  it.each(['js-standardwebhooks', 'js-node-crypto', 'python'])('%s accepts good deliveries and rejects bad ones', (name) => {
    const outcomes = run(name);
    expect(input.map((c, i) => ({ case: c.name, accepted: outcomes[i]!.ok ? outcomes[i]!.type : false }))).toEqual(input.map((c) => ({ case: c.name, accepted: c.accept ?? false })));
  });
});
