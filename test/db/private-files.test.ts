import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeMailPrivate, makePrivate } from '../../src/db/private-files';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accounts-private-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const mode = (file: string) => fs.lstatSync(file).mode & 0o7777;

describe('makePrivate', () => {
  it('takes group and other permissions off a tree (directories 0700, files 0600), follows no link, and counts what it changed', () => {
    const data = path.join(dir, 'data');
    const outside = path.join(dir, 'outside.txt');
    fs.mkdirSync(path.join(data, 'pgdata', 'pg_wal'), { recursive: true });
    fs.writeFileSync(path.join(data, 'pgdata', 'pg_wal', '000000010000000000000001'), 'wal');
    fs.writeFileSync(path.join(data, 'pgdata', 'PG_VERSION'), '17');
    fs.writeFileSync(path.join(data, 'jwt-secret'), 'secret');
    fs.writeFileSync(outside, 'not ours');
    fs.symlinkSync(outside, path.join(data, 'link'));
    for (const d of [data, path.join(data, 'pgdata'), path.join(data, 'pgdata', 'pg_wal')]) fs.chmodSync(d, 0o2777);
    fs.chmodSync(path.join(data, 'pgdata', 'pg_wal', '000000010000000000000001'), 0o666);
    fs.chmodSync(path.join(data, 'pgdata', 'PG_VERSION'), 0o644);
    fs.chmodSync(path.join(data, 'jwt-secret'), 0o600); // already private: not counted
    fs.chmodSync(outside, 0o644);

    expect(makePrivate(data)).toBe(5);
    expect([data, path.join(data, 'pgdata'), path.join(data, 'pgdata', 'pg_wal')].map(mode)).toEqual([0o700, 0o700, 0o700]);
    expect(['pgdata/pg_wal/000000010000000000000001', 'pgdata/PG_VERSION', 'jwt-secret'].map((f) => mode(path.join(data, f)))).toEqual([0o600, 0o600, 0o600]);
    expect(mode(outside)).toBe(0o644);
    expect(makePrivate(data)).toBe(0);
  });

  it('keeps an owner-only mode as it is, and does nothing for a directory that is not there', () => {
    fs.writeFileSync(path.join(dir, 'read-only'), 'x', { mode: 0o400 });
    fs.chmodSync(dir, 0o700);
    expect(makePrivate(dir)).toBe(0);
    expect(mode(path.join(dir, 'read-only'))).toBe(0o400);
    expect(makePrivate(path.join(dir, 'missing'))).toBe(0);
  });
});

describe('makeMailPrivate', () => {
  it('makes the mail files of an outbox elsewhere private, and leaves the directory and anything else in it alone', () => {
    fs.chmodSync(dir, 0o755);
    fs.writeFileSync(path.join(dir, 'a.eml'), 'mail');
    fs.writeFileSync(path.join(dir, '.b.eml.tmp'), 'mail');
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not mail');
    for (const f of ['a.eml', '.b.eml.tmp', 'notes.txt']) fs.chmodSync(path.join(dir, f), 0o644);
    expect(makeMailPrivate(dir)).toBe(2);
    expect(['a.eml', '.b.eml.tmp', 'notes.txt', '.'].map((f) => mode(path.join(dir, f)))).toEqual([0o600, 0o600, 0o644, 0o755]);
  });
});
