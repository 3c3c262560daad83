'use strict';
/**
 * The floor (bench/floor-server.mjs, the team's floor kept byte for byte as
 * /work/shared/bench/floor-server.mjs has it): what a DB-checked token service costs at least on
 * this machine. It is run as it is, never rewritten, from where it lies (it needs express,
 * jsonwebtoken, pg and bcrypt: the project's). It gets a database of its own, which it creates
 * and seeds itself (SEED_USERS users, one API token each, written to TOKENS_FILE); the bench drops
 * it at the end.
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const lib = require('./lib');

const VENDORED = path.join(__dirname, 'floor-server.mjs');
/** The team's copy, beside the repository where it has one; a vendored copy that differs from it is pointed out. */
const TEAM_COPY = path.resolve(lib.ROOT, '../shared/bench/floor-server.mjs');

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

async function startFloor({ users, cpu, pgCpu, nodeArgs = [] }) {
  const script = path.resolve(process.env.BENCH_FLOOR || VENDORED);
  if (!fs.existsSync(script)) throw new Error(`the floor server ${script} is missing: user_me and user_list compare the service against it`);
  const digest = sha256(script);
  if (script === VENDORED && fs.existsSync(TEAM_COPY) && sha256(TEAM_COPY) !== digest) {
    console.log(`warning: ${TEAM_COPY} differs from bench/floor-server.mjs (run here); copy it over to measure against the team's current floor`);
  }
  const dir = lib.tmpDir('acct-bench-floor-');

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
    { nodeArgs, cpu },
  );
  const base = `http://${lib.HOST}:${port}`;
  // It has no readiness route; it writes the tokens file, then listens. Unauthenticated: 401.
  await lib.waitReady(child, base, { probe: '/user/me', status: 401, timeoutMs: 180_000 });
  const tokens = JSON.parse(fs.readFileSync(tokensFile, 'utf8'));
  if (tokens.tokens.length + tokens.admin_tokens.length !== users || tokens.admin_tokens.length < 1) {
    throw new Error(`the floor wrote ${tokens.tokens.length} user and ${tokens.admin_tokens.length} admin tokens, expected ${users} in all`);
  }
  return { name: 'floor', child, base, pid: child.proc.pid, appName, dbName, pgCpu, tokens, source: path.relative(lib.ROOT, script), sha256: digest };
}

/** The user id a JWT names (its `sub`), read without checking it. */
const subjectOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8')).sub;

module.exports = { startFloor, subjectOf };
