'use strict';
/**
 * hostile_input: what strangers' bodies cost everyone else (issue 18, "no work for strangers").
 * `GET /user/me` at a light fixed rate (BENCH_LIGHT_CONNECTIONS connections, BENCH_LIGHT_RATE
 * requests/s, as user_me_under_login) on the service alone, then the same load beside hostile
 * senders, each kind on BENCH_HOSTILE_CONNECTIONS (2) connections of their own, back to back (a
 * new request, on a new connection, as soon as the last one is answered or cut; or
 * BENCH_HOSTILE_PAUSE_MS after it, to compare versions at the same hostile rate):
 *
 *   big    POST /user/me/settings without a token, a 5 MB JSON body sent at once
 *   bomb   POST /user/me/settings without a token, and POST /login, with `Content-Encoding: gzip`:
 *          about 5 kB that inflate to 5 MB of JSON
 *   slow   POST /user/me/settings without a token announcing 5 MB and trickling it (1 kB every
 *          100 ms), and POST /login announcing a 1 kB body and trickling it (a byte every 100 ms)
 *
 * The senders run in a child process of their own (this file, run as a script), so that writing
 * their bodies does not hold up the event loop that times GET /user/me; it inherits the bench
 * process's core. The figures: p50 and p99 of GET /user/me alone and beside them, and their
 * ratios; the hostile requests' answers by status (`cut`: the connection ended without one); the
 * service's CPU cores used in each part, and its CPU per hostile request (beyond the light load's).
 * No target: the issue's "keeps its latency beside them" is the ratio.
 */
const { fork } = require('node:child_process');
const net = require('node:net');
const zlib = require('node:zlib');
const lib = require('./lib');

const { HOST, round2, round3, sleep, load, summarize, table, heading } = lib;

const FIVE_MB = 5_000_000;
const json5mb = () => Buffer.concat([Buffer.from('{"k": "'), Buffer.alloc(FIVE_MB - 9, 0x61), Buffer.from('"}')]);
const bomb = () => zlib.gzipSync(Buffer.concat([Buffer.from('{"k": "'), Buffer.alloc(FIVE_MB - 9, 0x20), Buffer.from('"}')]), { level: 9 });

function config() {
  return {
    connections: lib.int('BENCH_HOSTILE_CONNECTIONS', 2),
    pauseMs: lib.int('BENCH_HOSTILE_PAUSE_MS', 0, 0),
    lightConnections: lib.int('BENCH_LIGHT_CONNECTIONS', 4),
    lightRate: lib.int('BENCH_LIGHT_RATE', 100),
    seconds: lib.num('BENCH_SECONDS', 10),
    warmupSeconds: lib.num('BENCH_WARMUP_SECONDS', 3),
  };
}

/**
 * One hostile sender: requests back to back on new connections until `stop.now`. `head` is the
 * request up to its blank line; then `body` at once, or `trickle` bytes every `everyMs`.
 * Counts the answers by status, and connections that ended without one (`cut`).
 */
async function sender(port, { head, body, trickle, everyMs }, stop, counts, pauseMs) {
  while (!stop.now) {
    await new Promise((resolve) => {
      const socket = net.connect(port, HOST);
      let answered = false;
      let timer;
      const done = (what) => {
        if (answered) return;
        answered = true;
        clearInterval(timer);
        counts[what] = (counts[what] ?? 0) + 1;
        socket.destroy();
        resolve();
      };
      socket.on('connect', () => {
        socket.write(head);
        if (body) socket.write(body);
        if (trickle) {
          timer = setInterval(() => {
            if (stop.now) return done('stopped');
            socket.write(trickle);
          }, everyMs);
        }
      });
      socket.on('data', (chunk) => {
        const status = /^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'));
        done(status ? status[1] : 'other');
      });
      socket.on('error', () => done('cut'));
      socket.on('close', () => done('cut'));
      const watch = setInterval(() => {
        if (stop.now) {
          clearInterval(watch);
          done('stopped');
        }
      }, 200);
      socket.on('close', () => clearInterval(watch));
    });
    if (pauseMs) await sleep(pauseMs);
  }
}

function kinds() {
  const big = json5mb();
  const gz = bomb();
  const post = (path, headers) => `POST ${path} HTTP/1.1\r\nHost: ${HOST}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return {
    big: [{ head: post('/user/me/settings', { 'Content-Type': 'application/json', 'Content-Length': big.length }), body: big }],
    bomb: [
      { head: post('/user/me/settings', { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', 'Content-Length': gz.length }), body: gz },
      { head: post('/login', { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', 'Content-Length': gz.length }), body: gz },
    ],
    slow: [
      { head: post('/user/me/settings', { 'Content-Type': 'application/json', 'Content-Length': FIVE_MB }), trickle: Buffer.alloc(1024, 0x20), everyMs: 100 },
      { head: post('/login', { 'Content-Type': 'application/json', 'Content-Length': 1000 }), trickle: Buffer.alloc(1, 0x20), everyMs: 100 },
    ],
    bombSize: gz.length,
  };
}

async function scenario(ctx, tokens) {
  const cfg = config();
  heading('hostile_input', `GET /user/me at ${cfg.lightRate} req/s, alone and beside hostile senders (5 MB bodies, gzip bombs, slow senders)`);
  const port = Number(new URL(ctx.base).port);
  const requests = tokens.map((t) => ({ method: 'GET', path: '/user/me', headers: { authorization: `Bearer ${t}` } }));
  const light = { requests, connections: cfg.lightConnections, overallRate: cfg.lightRate };
  const k = kinds();
  console.log(
    `light load: ${cfg.lightConnections} connections, ${cfg.lightRate} req/s; hostile: ${cfg.connections} connections per sender ` +
      `(big 1 sender, bomb 2, slow 2: ${5 * cfg.connections} connections), ${cfg.pauseMs ? `${cfg.pauseMs} ms between requests` : 'back to back'}, bomb ${k.bombSize} bytes of gzip; ` +
      `${cfg.warmupSeconds} s warm-up + ${cfg.seconds} s measured, alone then beside; ${ctx.pinningNote}`,
  );

  const alone = summarize([await load(ctx.service, { ...light, warmupSeconds: cfg.warmupSeconds, seconds: cfg.seconds })]);
  const aloneCpu = alone.cpuCores;

  const child = fork(__filename, [], { env: { ...process.env, HOSTILE_PORT: String(port), HOSTILE_CONNECTIONS: String(cfg.connections), HOSTILE_PAUSE_MS: String(cfg.pauseMs) }, stdio: 'inherit' });
  const counted = new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`the hostile senders exited (${code}) before reporting`)));
  });
  counted.catch(() => undefined); // awaited below
  await sleep(cfg.warmupSeconds * 1000);
  let beside;
  let counts;
  try {
    beside = summarize([await load(ctx.service, { ...light, seconds: cfg.seconds })]);
  } finally {
    child.send('stop');
    counts = await counted;
  }
  const ratios = { p50: round3(beside.p50Ms / alone.p50Ms), p99: round3(beside.p99Ms / alone.p99Ms) };
  const hostileRequests = Object.values(counts).reduce((n, c) => n + Object.entries(c).reduce((m, [what, x]) => m + (what === 'stopped' ? 0 : x), 0), 0);
  const sendersSeconds = cfg.warmupSeconds + cfg.seconds;
  // The service's CPU beyond the light load's, per hostile request (the senders ran warm-up and measured part; the CPU is of the measured part).
  const cpuUs = (x) => x.cpuUsPerRequest * x.requests; // of the measured part: cfg.seconds
  const cpuUsPerHostileRequest = Math.max(0, Math.round((cpuUs(beside) - (cpuUs(alone) * beside.seconds) / alone.seconds) / (hostileRequests * (beside.seconds / sendersSeconds))));
  console.log();
  table([
    ['GET /user/me', 'req/s', 'p50 ms', 'p99 ms', 'service CPU cores'],
    ['alone', alone.rps, alone.p50Ms, alone.p99Ms, aloneCpu],
    ['beside hostile senders', beside.rps, beside.p50Ms, beside.p99Ms, beside.cpuCores],
    ['ratio', '', `${ratios.p50}x`, `${ratios.p99}x`, ''],
  ]);
  console.log();
  table([
    ['hostile sender', 'answers (by status; cut: none before the connection ended)', 'requests/s'],
    ...Object.entries(counts).map(([name, c]) => {
      const { stopped: _stopped, ...answers } = c;
      const n = Object.values(answers).reduce((a, b) => a + b, 0);
      return [name, JSON.stringify(answers), round2(n / sendersSeconds)];
    }),
  ]);
  console.log(`service CPU per hostile request (beyond the light load's): ${cpuUsPerHostileRequest} µs`);
  return { config: cfg, bombBytes: k.bombSize, alone, beside, ratios, hostileAnswers: counts, cpuUsPerHostileRequest, pass: {} };
}

/** As a child process: the senders, until the parent says `stop`; then their counts to the parent. */
async function runSenders() {
  const port = Number(process.env.HOSTILE_PORT);
  const connections = Number(process.env.HOSTILE_CONNECTIONS);
  const pauseMs = Number(process.env.HOSTILE_PAUSE_MS);
  const k = kinds();
  const stop = { now: false };
  const counts = {};
  const senders = [];
  for (const name of ['big', 'bomb', 'slow']) {
    counts[name] = {};
    for (const kind of k[name]) for (let i = 0; i < connections; i++) senders.push(sender(port, kind, stop, counts[name], pauseMs));
  }
  process.once('message', () => {
    stop.now = true;
  });
  process.once('disconnect', () => process.exit(1)); // the bench went away
  await Promise.all(senders);
  process.send(counts, () => process.exit(0));
}

if (require.main === module) runSenders();

function summaryRows(r) {
  return [['hostile_input', `GET /user/me p50 ${r.beside.p50Ms} ms beside hostile senders = ${r.ratios.p50}x alone (${r.alone.p50Ms} ms); p99 ${r.ratios.p99}x`, 'none', 'info']];
}

module.exports = { scenario, summaryRows, config };
