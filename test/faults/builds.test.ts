import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { migrations } from '../../migrations';
import { startCluster, type Cluster } from '../helpers/pg-cluster';
import { baseEnv, call, killAllServices, login, startService, stopService, tempDir, type Outcome, type Service } from './harness';

/**
 * A way back (issue 21, item 6), with the builds themselves rather than their migrations alone
 * (test/db/migrations.test.ts does those): on one database, in turn,
 *
 * - the **previous build**: main as it was before this build's newest migration landed (the
 *   first-parent commit before it, taken from git, run from its own sources on our
 *   node_modules);
 * - **this build**, which upgrades the schema, serves the previous build's data, and is rolled
 *   back with its own `accounts admin migrate down --to <the previous build's newest>`, after
 *   which the previous build serves everything again and this build upgrades once more;
 * - a **newer build** (this build plus one additive migration, a table and a column with a
 *   default), after which this build, redeployed as a rollback, runs on the newer schema as it is.
 *
 * Every step checks what an operator would: the admin signs in, an API token minted by the
 * first build still works, every user and setting written by any build is there, and the audit
 * chain verifies whole.
 */

const root = path.join(__dirname, '..', '..');
const newest = migrations[migrations.length - 1].name;
const FUTURE_MIGRATION = '20991231000000_add_future_things';

interface Build {
  label: string;
  dir: string;
}

const here: Build = { label: 'this build', dir: root };

function git(...args: string[]): string {
  return execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
}

/** The sources of main before the newest migration landed, with our node_modules. */
function previousBuild(): Build & { newestMigration: string; commit: string } {
  const landed = git('log', '--first-parent', '--format=%H', '--', `migrations/${newest}.ts`).split('\n').filter(Boolean).at(-1);
  if (!landed) throw new Error(`git history has no commit adding migrations/${newest}.ts: this test needs the repository's history (not a shallow clone)`);
  const commit = git('rev-parse', `${landed}^1`);
  const dir = tempDir('previous-build');
  execFileSync('bash', ['-c', `git archive --format=tar ${commit} | tar -x -C "${dir}"`], { cwd: root });
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  const own = fs
    .readdirSync(path.join(dir, 'migrations'))
    .filter((f) => /^\d{14}_.*\.ts$/.test(f))
    .map((f) => f.replace(/\.ts$/, ''))
    .sort();
  return { label: `the previous build (${commit.slice(0, 8)})`, dir, newestMigration: own.at(-1)!, commit };
}

/** This build's sources plus one more migration that only adds. */
function newerBuild(): Build {
  const dir = tempDir('newer-build');
  for (const entry of ['src', 'migrations', 'openapi.yaml', 'package.json', 'tsconfig.json']) {
    fs.cpSync(path.join(root, entry), path.join(dir, entry), { recursive: true });
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  fs.writeFileSync(
    path.join(dir, 'migrations', `${FUTURE_MIGRATION}.ts`),
    `import type { Knex } from 'knex';
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('future_things', (t) => {
    t.bigIncrements('id');
    t.text('what').notNullable();
  });
  await knex('future_things').insert({ what: 'kept by the newer build' });
  await knex.schema.alterTable('users', (t) => {
    t.text('future_note').notNullable().defaultTo('none');
  });
}
export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => t.dropColumn('future_note'));
  await knex.schema.dropTable('future_things');
}
`,
  );
  const index = path.join(dir, 'migrations', 'index.ts');
  const text = fs.readFileSync(index, 'utf8');
  const end = text.lastIndexOf('];');
  fs.writeFileSync(
    index,
    `import * as addFutureThings from './${FUTURE_MIGRATION}';\n${text.slice(0, end)}  { name: '${FUTURE_MIGRATION}', migration: addFutureThings },\n${text.slice(end)}`,
  );
  return { label: 'a newer build', dir };
}

/** This build's CLI, as `npx accounts` runs it, against the same database. */
function cli(env: NodeJS.ProcessEnv, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

const agent = new http.Agent({ keepAlive: false });

function expectStatus(res: Outcome, status: number, what: string): void {
  if (res.status !== status) throw new Error(`${what}: expected ${status}, got ${res.status ?? res.error} ${res.body ?? ''}`);
}

/** What every build must see, and each adds a user of its own. */
async function serves(service: Service, build: Build, state: { apiToken?: string; users: string[] }, newUser: string): Promise<void> {
  const port = service.port;
  const jwt = await login(port, agent);
  if (!state.apiToken) {
    const minted = await call({ port, agent, token: jwt, method: 'POST', path: '/user/me/token', body: { name: 'ops' } });
    expectStatus(minted, 201, `${build.label}: minting an API token`);
    state.apiToken = (minted.json as { token: string }).token;
    expectStatus(await call({ port, agent, token: jwt, method: 'POST', path: '/user/me/settings/theme', body: { theme: 'dark' } }), 204, `${build.label}: a setting`);
  }
  const me = await call({ port, agent, token: state.apiToken, method: 'GET', path: '/user/me' });
  expectStatus(me, 200, `${build.label}: the first build's API token`);
  const setting = await call({ port, agent, token: state.apiToken, method: 'GET', path: '/user/me/settings/theme' });
  expectStatus(setting, 200, `${build.label}: the first build's setting`);
  expect(setting.json).toEqual({ theme: 'dark' });

  const created = await call({ port, agent, token: jwt, method: 'POST', path: '/user?send_mail=0', body: { name: newUser, email: `${newUser}@builds.example.test` } });
  expectStatus(created, 201, `${build.label}: creating ${newUser}`);
  state.users.push(newUser);
  const list = await call({ port, agent, token: state.apiToken, method: 'GET', path: '/user?limit=100' });
  expectStatus(list, 200, `${build.label}: the user list`);
  const names = (list.json as { name: string }[]).map((u) => u.name);
  expect(names).toEqual(expect.arrayContaining(state.users));

  const verify = await call({ port, agent, token: jwt, method: 'GET', path: '/audit/verify' });
  expectStatus(verify, 200, `${build.label}: audit verify`);
  expect(verify.json).toMatchObject({ ok: true });
}

function logged(service: Service, msg: string): unknown[] {
  return service.lines.filter((l) => l.json?.msg === msg).map((l) => l.json);
}

afterAll(killAllServices);

describe.each(['embedded', 'postgres'] as const)('previous, this and a newer build on one %s database', (kind) => {
  let cluster: Cluster | undefined;
  let env: NodeJS.ProcessEnv;
  const made: string[] = [];

  beforeAll(async () => {
    const dataDir = tempDir(`builds-${kind}`);
    made.push(dataDir);
    if (kind === 'postgres') cluster = await startCluster();
    env = baseEnv({ DATA_DIR: dataDir, ...(cluster ? { DATABASE_URL: cluster.url } : {}) });
  }, 60_000);

  afterAll(async () => {
    await killAllServices();
    await cluster?.destroy();
    for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('upgrade, roll back with migrate down, upgrade again, and run on a newer build\'s schema', async () => {
    const previous = previousBuild();
    const newer = newerBuild();
    made.push(previous.dir, newer.dir);
    const after = migrations.map((m) => m.name).slice(migrations.findIndex((m) => m.name === previous.newestMigration) + 1);
    expect(after).toContain(newest);
    const state: { apiToken?: string; users: string[] } = { users: [] };

    // The previous build on an empty database.
    let service = await startService({ ...env }, 90_000, previous.dir);
    await serves(service, previous, state, 'made-by-previous');
    expect(await stopService(service)).toMatchObject({ code: 0 });

    // This build upgrades it and serves what the previous one wrote.
    service = await startService({ ...env }, 90_000, here.dir);
    expect(logged(service, 'applied migrations')).toEqual([expect.objectContaining({ migrations: after })]);
    await serves(service, here, state, 'made-by-this-after-upgrade');
    expect(await stopService(service)).toMatchObject({ code: 0 });

    // The rollback: this build's CLI takes the schema back, and the previous build serves it all.
    const down = await cli(env, ['admin', 'migrate', 'down', '--to', previous.newestMigration]);
    expect(down).toEqual({ code: 0, err: '', out: `rolled back ${[...after].reverse().join(', ')}\n` });
    service = await startService({ ...env }, 90_000, previous.dir);
    await serves(service, previous, state, 'made-by-previous-after-rollback');
    expect(await stopService(service)).toMatchObject({ code: 0 });

    // Upgraded again.
    service = await startService({ ...env }, 90_000, here.dir);
    expect(logged(service, 'applied migrations')).toEqual([expect.objectContaining({ migrations: after })]);
    await serves(service, here, state, 'made-by-this-again');
    expect(await stopService(service)).toMatchObject({ code: 0 });

    // A newer build adds a table and a column; this build, redeployed, runs on its schema as it is.
    service = await startService({ ...env }, 90_000, newer.dir);
    expect(logged(service, 'applied migrations')).toEqual([expect.objectContaining({ migrations: [FUTURE_MIGRATION] })]);
    await serves(service, newer, state, 'made-by-newer');
    expect(await stopService(service)).toMatchObject({ code: 0 });

    service = await startService({ ...env }, 90_000, here.dir);
    expect(logged(service, 'the database has migrations of a newer build: running on it as it is')).toEqual([expect.objectContaining({ migrations: [FUTURE_MIGRATION] })]);
    expect(logged(service, 'applied migrations')).toEqual([]);
    await serves(service, here, state, 'made-by-this-on-newer-schema');
    expect(await stopService(service)).toMatchObject({ code: 0 });
    const status = await cli(env, ['admin', 'migrate', 'status']);
    expect(status.out.trimEnd().split('\n').at(-1)).toBe(`applied  ${FUTURE_MIGRATION}  (a newer build's)`);

    // And the newer build, back again, finds what this build wrote on its schema.
    service = await startService({ ...env }, 90_000, newer.dir);
    expect(logged(service, 'applied migrations')).toEqual([]);
    await serves(service, newer, state, 'made-by-newer-again');
    expect(await stopService(service)).toMatchObject({ code: 0 });
  }, 600_000);
});
