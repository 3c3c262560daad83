'use strict';
/**
 * The floor (/work/shared/bench/floor-server.mjs): what a DB-checked token service costs at least
 * on this machine. It is run as it is, never rewritten: copied at bench time, byte for byte, into
 * a temp dir whose `node_modules` is a symlink to the project's (it needs express, jsonwebtoken,
 * pg and bcrypt). It gets a database of its own, which it creates and seeds itself
 * (SEED_USERS users, one API token each, written to TOKENS_FILE); the bench drops it at the end.
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const lib = require('./lib');

const DEFAULT_SOURCE = '/work/shared/bench/floor-server.mjs';

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

async function startFloor({ users, cpu, pgCpu, nodeArgs = [] }) {
  const source = process.env.BENCH_FLOOR || DEFAULT_SOURCE;
  if (!fs.existsSync(source)) {
    throw new Error(`the floor server ${source} is missing: user_me and user_list compare the service against it (BENCH_FLOOR names another copy)`);
  }
  const dir = lib.tmpDir('acct-bench-floor-');
  const script = path.join(dir, 'floor-server.mjs');
  fs.copyFileSync(source, script);
  const digest = sha256(source);
  if (sha256(script) !== digest) throw new Error(`the copy of ${source} in ${dir} differs from it`);
  fs.symlinkSync(path.join(lib.ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');

  const dbName = `acct_bench_floor_${process.pid}`;
  lib.registerDatabase(dbName); // the floor creates it; we drop it
  const port = await lib.freePort();
  const tokensFile = path.join(dir, 'tokens.json');
  const appName = 'bench-floor';
  const child = lib.startChild(
    'floor',
    script,
    {
      FLOOR_DATABASE_URL: lib.databaseUrl(dbName, appName),
      PORT: String(port),
      SEED_USERS: String(users),
      BCRYPT_COST: '4', // only its seed hash and the dummy hash: no login is measured against the floor
      TOKENS_FILE: tokensFile,
      FLOOR_JWT_SECRET: '', // its built-in bench secret
      FLOOR_TOUCH: '0',
      FLOOR_RESEED: '',
    },
    { nodeArgs, cpu, cwd: dir },
  );
  const base = `http://${lib.HOST}:${port}`;
  // It has no readiness route; it writes the tokens file, then listens. Unauthenticated: 401.
  await lib.waitReady(child, base, { probe: '/user/me', status: 401, timeoutMs: 180_000 });
  const tokens = JSON.parse(fs.readFileSync(tokensFile, 'utf8'));
  if (tokens.tokens.length + tokens.admin_tokens.length !== users || tokens.admin_tokens.length < 1) {
    throw new Error(`the floor wrote ${tokens.tokens.length} user and ${tokens.admin_tokens.length} admin tokens, expected ${users} in all`);
  }
  return { name: 'floor', child, base, pid: child.proc.pid, appName, dbName, pgCpu, tokens, source, sha256: digest };
}

/** The user id a JWT names (its `sub`), read without checking it. */
const subjectOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8')).sub;

module.exports = { startFloor, subjectOf };
