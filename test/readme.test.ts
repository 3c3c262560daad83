import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer } from './helpers/server-process';

/**
 * The README's curl session, then the two-factor example (docs/two-factor.md) and the JSON-RPC
 * example (docs/json-rpc.md), as written: the sh blocks after `<!-- run by test/readme.test.ts -->`
 * in those pages, in that order, run top to bottom as one script by bash against a fresh server
 * (the embedded database, mail as .eml files in ./data/outbox of the directory the session runs
 * in). Every `curl` fails on an error status (`--fail-with-body`), and the script stops at the
 * first failure (`set -euo pipefail`).
 */
const root = path.join(__dirname, '..');

/** The pages whose marked blocks make the session, in the order they run, and how many each has. */
const PAGES: ReadonlyArray<[page: string, blocks: number]> = [
  ['README.md', 1], // the curl session
  ['docs/two-factor.md', 1], // two-factor sign-in, as grace who registered in the session
  ['docs/json-rpc.md', 1], // RhodeCode's JSON-RPC: ada out of the session's group and back in
];

const read = (page: string) => fs.readFileSync(path.join(root, page), 'utf8');

/** Every sh block marked for this test in one page, in its order. */
function blocksOf(page: string): string[] {
  return read(page).split('<!-- run by test/readme.test.ts -->').slice(1).map((after) => {
    const block = /^\s*```sh\n([\s\S]*?)```/.exec(after);
    if (!block) throw new Error(`a marker of this test in ${page} is not followed by an sh block`);
    return block[1];
  });
}

describe('the README', () => {
  it('runs its curl session, then the two-factor and JSON-RPC examples of docs/, against a fresh server', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-readme-'));
    const server = await startServer({
      DATA_DIR: path.join(dir, 'data'),
      PORT: '0',
      BCRYPT_COST: '4',
      ADMIN_EMAIL: 'admin@example.com',
      ADMIN_PASSWORD: 'correct horse battery',
      ALLOW_REGISTRATION: '1',
      MAIL_POLL_INTERVAL_MS: '100',
    });
    try {
      const blocks = PAGES.map(([page, count]) => {
        const found = blocksOf(page);
        expect([page, found.length]).toEqual([page, count]);
        return found.join('\n');
      });
      const script = blocks.join('\n').replaceAll('localhost:3000', `localhost:${server.port}`);
      const prelude = 'set -euo pipefail\ncurl() { command curl --fail-with-body --show-error "$@"; }\n';
      // The two-factor block computes an app's code with otpauth from the checkout, as a reader there would.
      const env = { ...process.env, NODE_PATH: path.join(root, 'node_modules') };
      const run = spawnSync('bash', ['-c', prelude + script], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 });
      const said = `exit ${run.status}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
      expect(said).toMatch(/^exit 0\n/);
      // The steps answered what the README says they do.
      expect(run.stdout).toContain('"name":"ada"');
      expect(run.stdout).toMatch(/"permission":"usergroup\.write"/);
      expect(run.stdout).toMatch(/"ok":true,"rows":\d+,"pending":0/);
      expect(run.stdout).toContain('"pending_email":"me@example.org"');
      // Two-factor sign-in: confirmed, asked for at the next login, a recovery code spent, then reset.
      expect(run.stdout).toMatch(/"type":"totp","name":"phone".*"verified":true/);
      expect(run.stdout).toMatch(/\{"mfa_required":true,"factors":\[\{"id":"[0-9a-f-]{36}","type":"totp","name":"phone"\}\]\}/);
      expect(run.stdout).toContain('{"remaining":9}');
      expect(run.stdout).toContain('{"mfa_required":null}');
      // The JSON-RPC example's answers, as its page shows them.
      const shown = [...read('docs/json-rpc.md').matchAll(/^# (\{"id":\d+,"result".*)$/gm)].map((m) => m[1]);
      expect(shown).toHaveLength(2);
      for (const answer of shown) expect(run.stdout).toContain(answer);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('marks a block that fails when a step fails (the check is not empty)', () => {
    const run = spawnSync('bash', ['-c', 'set -euo pipefail\ncurl() { command curl --fail-with-body --show-error "$@"; }\ncurl -s localhost:9/nothing'], { encoding: 'utf8' });
    expect(run.status).not.toBe(0);
  });
});
