import fs from 'node:fs';
import path from 'node:path';
import { cliFixture } from '../helpers/cli';

/**
 * `accounts admin audit export [FILE]` and `accounts admin audit verify FILE [--checkpoint FILE]`:
 * the chain written out with its links and a signed checkpoint, and checked without a database
 * (AUDIT_KEY from the environment on Postgres, the key the embedded default keeps in DATA_DIR
 * otherwise). On this run's Postgres (a fresh database) or an embedded PGlite in a temporary
 * DATA_DIR.
 */
const fixture = cliFixture('accounts-cli-audit-');
const cli = fixture.run;

type Line = { link?: { position: number; id: string }; entry?: { id: string; action: string; summary: Record<string, unknown> } | null; checkpoint?: { position: number; time: string } };

const readLines = (file: string): Line[] =>
  fs
    .readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);

/** A copy of an export with its lines changed by `edit`. */
function tampered(file: string, name: string, edit: (lines: Line[]) => Line[]): string {
  const out = path.join(fixture.dataDir, name);
  fs.writeFileSync(out, edit(readLines(file)).map((l) => JSON.stringify(l)).join('\n') + '\n');
  return out;
}

/** A refusal: status 1, one line on stderr, nothing on stdout. */
function expectBroken(res: { code: number; out: string; err: string }, line: RegExp): void {
  expect(res.code).toBe(1);
  expect(res.out).toBe('');
  expect(res.err.split('\n')).toHaveLength(2); // one line and its newline
  expect(res.err).toMatch(line);
}

describe('accounts admin audit', () => {
  let first: string;
  beforeAll(async () => {
    expect((await cli(['migrate'])).code).toBe(0);
    for (const name of ['ann', 'bob', 'cyd']) expect((await cli(['create-user', '--email', `${name}@example.test`, '--name', name])).code).toBe(0);
    first = path.join(fixture.dataDir, 'first.jsonl');
  }, 120_000);

  it('exports the chain as JSON lines, each entry with its link and last a signed checkpoint, and verifies it without a database', async () => {
    const res = await cli(['admin', 'audit', 'export', first]);
    expect(res).toEqual({ code: 0, out: `exported 3 audit entries (positions 1 to 3) to ${first}\n`, err: '' });
    expect(fs.statSync(first).mode & 0o777).toBe(0o600);
    const lines = readLines(first);
    expect(lines.map((l) => l.link?.position ?? 'checkpoint')).toEqual([1, 2, 3, 'checkpoint']);
    expect(lines.slice(0, 3).map((l) => l.entry?.action)).toEqual(['user.created', 'user.created', 'user.created']);
    expect(lines[3].checkpoint).toMatchObject({ position: 3, key_id: expect.any(String), mac: expect.stringMatching(/^[0-9a-f]{64}$/) });

    const ok = await cli(['admin', 'audit', 'verify', first]);
    expect(ok).toEqual({ code: 0, out: `audit log whole: 3 entries, positions 1 to 3; matches the checkpoints of ${lines[3].checkpoint!.time} (position 3)\n`, err: '' });
    // Without a database: the same check with DATABASE_URL pointing nowhere.
    const offline = await cli(['admin', 'audit', 'verify', first], '', fixture.env.DATABASE_URL ? { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' } : {});
    expect(offline.code).toBe(0);
  }, 120_000);

  it.each<[string, (lines: Line[]) => Line[], RegExp]>([
    [
      'an entry altered',
      (lines) => lines.map((l, i) => (i === 1 ? { ...l, entry: { ...l.entry!, summary: { ...l.entry!.summary, email: 'mallory@example.test' } } } : l)),
      /^accounts: audit log broken \(altered\) at entry [0-9a-f-]{36}: the entry at position 2 is not the one its link was made over; 1 entries before it check out\n$/,
    ],
    ['the newest entry and the checkpoint cut off', (lines) => lines.slice(0, 2), /^accounts: audit log broken \(truncated\): the file ends without the export's checkpoint: it was cut short; 0 entries before it check out\n$/],
    ['the newest entry cut out, the checkpoint kept', (lines) => [...lines.slice(0, 2), lines[3]], /^accounts: audit log broken \(truncated\): the chain ends at position 2, but the checkpoint of \S+ has position 3; 2 entries before it check out\n$/],
    ['the oldest entry cut off', (lines) => lines.slice(1), /^accounts: audit log broken \(start_cut\) at entry [0-9a-f-]{36}: the chain starts at position 2, but the entries before it \(up to \S+\) were not due for removal \(before \S+\); 0 entries before it check out\n$/],
    ['a line that is not JSON', (lines) => [lines[0], 'nonsense' as unknown as Line, ...lines.slice(1)], /^accounts: audit log broken \(altered\): line 2 is not a link of an audit export; 1 entries before it check out\n$/],
  ])('finds %s, with exit status 1 and one line saying where and why', async (name, edit, line) => {
    const file = tampered(first, `${name.replace(/\W+/g, '-')}.jsonl`, edit);
    expectBroken(await cli(['admin', 'audit', 'verify', file]), line);
  });

  it('names a link made with a key that AUDIT_KEY does not hold', async () => {
    const res = await cli(['admin', 'audit', 'verify', first], '', { AUDIT_KEY: 'another key of thirty-two characters or more' });
    expectBroken(res, /^accounts: audit log broken \(unknown_key\) at entry [0-9a-f-]{36}: the link at position 1 was made with key [0-9a-f]{16}, which AUDIT_KEY does not hold; 0 entries before it check out\n$/);
  });

  it('checks an export against a checkpoint the service wrote later (its file, or its log line): an export cut short of it is found', async () => {
    // The export's chaining pass left its checkpoint in DATA_DIR, as the server does.
    const kept = path.join(fixture.dataDir, 'audit-checkpoint.json');
    expect(JSON.parse(fs.readFileSync(kept, 'utf8'))).toMatchObject({ position: 3 });
    expect((await cli(['create-user', '--email', 'dee@example.test', '--name', 'dee'])).code).toBe(0);
    const second = path.join(fixture.dataDir, 'second.jsonl');
    expect((await cli(['admin', 'audit', 'export', second])).code).toBe(0);
    const checkpoint = JSON.parse(fs.readFileSync(kept, 'utf8'));
    expect(checkpoint).toMatchObject({ position: 4 });

    expect((await cli(['admin', 'audit', 'verify', second, '--checkpoint', kept])).out).toMatch(/^audit log whole: 4 entries, positions 1 to 4; matches the checkpoints of \S+ \(position 4\) and \S+ \(position 4\)\n$/);
    expectBroken(await cli(['admin', 'audit', 'verify', first, '--checkpoint', kept]), /^accounts: audit log broken \(truncated\): the chain ends at position 3, but the checkpoint of \S+ has position 4; 3 entries before it check out\n$/);
    // The log line the service wrote is a checkpoint too.
    const logged = path.join(fixture.dataDir, 'shipped.log');
    fs.writeFileSync(logged, `${JSON.stringify({ level: 30, msg: 'audit checkpoint', audit_checkpoint: checkpoint })}\n`);
    expect((await cli(['admin', 'audit', 'verify', second, '--checkpoint', logged])).code).toBe(0);
    // One that was not signed with the key is no checkpoint at all.
    const forged = path.join(fixture.dataDir, 'forged.json');
    fs.writeFileSync(forged, JSON.stringify({ ...checkpoint, position: 3 }));
    expectBroken(await cli(['admin', 'audit', 'verify', first, '--checkpoint', forged]), /^accounts: audit log broken \(checkpoint_invalid\): the checkpoint at position 3 \(\S+\) is not signed with a configured AUDIT_KEY; 3 entries before it check out\n$/);
  }, 120_000);

  it.each([
    [['audit'], 'accounts: audit needs export or verify'],
    [['audit', 'import'], 'accounts: audit: unknown task "import" (export or verify)'],
    [['audit', 'verify'], 'accounts: audit verify needs the FILE an export wrote'],
    [['audit', 'export', 'a', 'b'], 'accounts: audit export: unexpected argument "b"'],
    [['audit', 'export', '--checkpoint', 'x'], 'accounts: audit export: --checkpoint goes with audit verify'],
  ])('refuses %j as bad usage', async (args, line) => {
    const res = await cli(['admin', ...args]);
    expect(res.code).toBe(2);
    expect(res.err.split('\n')[0]).toBe(line);
  });
});
