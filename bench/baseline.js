'use strict';
/**
 * The benchmark's baseline: the least a server can do to answer GET /user/me. Express 5,
 * jsonwebtoken with a KeyObject (HS256 only) and a pg Pool of the service's default size, all
 * connections opened at start, running the one query the service's hot path runs
 * (KnexTokenStore.findLive, rendered by the service's code in dist/, which `npm run bench` builds
 * first). Nothing else: no logging, no validation, no last_used write.
 *
 * Env: DATABASE_URL, JWT_SECRET, PORT, HOST (default 127.0.0.1), POOL_SIZE (default 10).
 */
const crypto = require('node:crypto');
const express = require('express');
const jwt = require('jsonwebtoken');
const { Pool } = require('pg');

// The service's own hot-path query, rendered by its own code (so the two cannot drift apart).
// Run here as a plain unnamed statement, as a minimal server would.
const { findLiveStatement } = require('../dist/src/stores/token-store');
const FIND_LIVE = findLiveStatement(require('knex')({ client: 'pg' })).text;

const iso = (d) => (d ? d.toISOString() : null);

async function main() {
  const poolSize = Number(process.env.POOL_SIZE || 10);
  const key = crypto.createSecretKey(Buffer.from(process.env.JWT_SECRET, 'utf8'));
  const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: poolSize, idleTimeoutMillis: 0 });
  const clients = await Promise.all(Array.from({ length: poolSize }, () => pool.connect()));
  for (const c of clients) c.release();

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/readyz', (_req, res) => res.json({ status: 'ok' }));

  app.get('/user/me', async (req, res) => {
    const match = /^Bearer +(\S+)$/i.exec(req.headers.authorization ?? '');
    let claims;
    try {
      claims = match ? jwt.verify(match[1], key, { algorithms: ['HS256'] }) : undefined;
    } catch {
      claims = undefined;
    }
    if (!claims || typeof claims.sub !== 'string' || typeof claims.jti !== 'string') {
      return res.status(401).json({ error: 'Unauthorized' });
    }
    const { rows } = await pool.query(FIND_LIVE, [claims.jti, claims.sub, new Date(), 1]);
    const u = rows[0];
    if (!u) return res.status(401).json({ error: 'Unauthorized' });
    // The bench's users are in no group; a member would need the service's second query.
    if (u.in_groups) return res.status(501).json({ error: 'group members are not part of the baseline' });
    res.set('Cache-Control', 'no-store');
    res.json({
      id: u.id,
      name: u.name,
      email: u.email,
      first_name: u.first_name,
      last_name: u.last_name,
      created: iso(u.created),
      last_login: iso(u.last_login),
      last_seen: iso(u.last_seen),
      force_password_change: u.force_password_change,
      is_admin: u.is_admin,
      groups: [],
    });
  });

  const server = app.listen(Number(process.env.PORT), process.env.HOST || '127.0.0.1', (err) => {
    if (err) throw err;
  });
  const stop = () => server.close(() => pool.end().then(() => process.exit(0)));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`baseline start-up failed: ${err.stack}\n`);
  process.exit(1);
});
