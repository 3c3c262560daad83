import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';

/**
 * docs/webhooks.md's "How to verify a signature in a receiver", as written: each code block after
 * `<!-- run by test/webhooks/docs-snippets.test.ts: <name> -->` is run (JavaScript by node,
 * Python by python3) with a small driver appended, against deliveries signed the way the service
 * signs them: it must accept a good one and a rotation's two signatures, and reject a tampered
 * body, another endpoint's secret, an old timestamp and a missing signature. The Go snippet is
 * not run (no Go on these machines).
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
  accept: boolean;
}

const newSecret = () => `whsec_${crypto.randomBytes(32).toString('base64')}`;

/** A delivery as the service sends it: webhook-id, webhook-timestamp, webhook-signature over the body's bytes. */
function signed(secrets: string[], body: string, at = new Date(), id = `msg_${crypto.randomUUID()}`) {
  const signature = secrets.map((s) => new Webhook(s).sign(id, at, body)).join(' ');
  return { headers: { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signature }, body };
}

function cases(): Case[] {
  const secret = newSecret();
  const old = newSecret();
  // Non-ASCII in the body: the signature covers bytes, not characters.
  const body = JSON.stringify({ type: 'user.updated', timestamp: new Date().toISOString(), data: { user: { id: crypto.randomUUID(), name: 'zoë' }, actor: null, changes: ['first_name'] } });
  const good = signed([secret], body);
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const rotation = signed([secret, old], body);
  const stale = signed([secret], body, new Date(Date.now() - 10 * 60_000));
  return [
    { name: 'a good delivery', secret, ...good, body: b64(good.body), accept: true },
    { name: 'a tampered body', secret, headers: good.headers, body: b64(good.body.replace('zoë', 'eve')), accept: false },
    { name: 'a tampered webhook-id', secret, headers: { ...good.headers, 'webhook-id': 'msg_other' }, body: b64(good.body), accept: false },
    { name: "another endpoint's secret", secret: newSecret(), ...good, body: b64(good.body), accept: false },
    { name: 'a timestamp ten minutes old (signed then)', secret, ...stale, body: b64(stale.body), accept: false },
    { name: 'no signature', secret, headers: { ...good.headers, 'webhook-signature': '' }, body: b64(good.body), accept: false },
    { name: "a rotation's two signatures, receiver with the new secret", secret, ...rotation, body: b64(rotation.body), accept: true },
    { name: "a rotation's two signatures, receiver with the old secret", secret: old, ...rotation, body: b64(rotation.body), accept: true },
  ];
}

function run(name: string, input: Case[]): { ok: boolean; type?: string; error?: string }[] {
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
    const input = cases();
    const outcomes = run(name, input);
    expect(input.map((c, i) => ({ case: c.name, accepted: outcomes[i]!.ok, ...(outcomes[i]!.ok ? { type: outcomes[i]!.type } : {}) }))).toEqual(
      input.map((c) => ({ case: c.name, accepted: c.accept, ...(c.accept ? { type: 'user.updated' } : {}) })),
    );
  });
});
