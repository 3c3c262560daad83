import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createTestApp, unique, type TestApp, type TestUser } from '../helpers/test-app';

/**
 * Clients generated from openapi.yaml as their users would generate them (openapi-typescript +
 * openapi-fetch, and @hey-api/openapi-ts with its fetch client), each with a scenario script of
 * this folder that is type-checked against it (tsc, strict) and then run against the app: log in,
 * create a user, page through the users by the Link header, mint an API token named with a `/`
 * and an emoji, use it, delete it, and read the code of the error that follows. Everything runs
 * from local packages: nothing is fetched.
 */
const root = path.resolve(__dirname, '../..');
const bin = (name: string) => path.join(root, 'node_modules/.bin', name);
const run = promisify(execFile);
const SCENARIOS = ['openapi-fetch-scenario.ts', 'hey-api-scenario.ts'];

/** This process's environment without jest's NODE_OPTIONS and an enclosing npm run's variables. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'NODE_OPTIONS'));
  return { ...env, NO_COLOR: '1', ...extra };
}

async function sh(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = childEnv()): Promise<string> {
  try {
    return (await run(command, args, { cwd, env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${path.basename(command)} ${args.join(' ')} failed:\n${e.stdout ?? ''}\n${e.stderr ?? ''}\n${e.message}`);
  }
}

let t: TestApp;
let admin: TestUser;
let dir: string;
let typecheck: Promise<string>;

beforeAll(async () => {
  t = await createTestApp();
  admin = await t.factory.user({ admin: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'generated-clients-'));
  // The scripts resolve openapi-fetch, tsx's loader and @types/node from the project's packages.
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ private: true, type: 'module' }));
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        lib: ['ES2022', 'DOM', 'DOM.Iterable'],
        types: ['node'],
        strict: true,
        noUnusedLocals: true,
        noUnusedParameters: true,
        noImplicitReturns: true,
        noEmit: true,
        skipLibCheck: true,
      },
      files: SCENARIOS,
    }),
  );
  const spec = path.join(root, 'openapi.yaml');
  // The generators' commands, as docs/api.md ("Generated clients") gives them.
  await Promise.all([
    sh(bin('openapi-typescript'), [spec, '--default-non-nullable', 'false', '-o', path.join(dir, 'openapi-typescript/schema.d.ts')], dir),
    sh(bin('openapi-ts'), ['-i', spec, '-o', path.join(dir, 'hey-api'), '-c', '@hey-api/client-fetch', '--no-log-file', '-s'], dir),
  ]);
  fs.copyFileSync(path.join(__dirname, 'scenario-env.ts'), path.join(dir, 'scenario-env.ts'));
  for (const name of SCENARIOS) {
    const source = fs.readFileSync(path.join(__dirname, name), 'utf8');
    const checked = source.replace(/^\/\/ @ts-nocheck:.*\n/, '');
    expect(checked).not.toContain('@ts-nocheck');
    fs.writeFileSync(path.join(dir, name), checked);
  }
  // One tsc over both scripts and what they import; awaited by the test that needs it.
  typecheck = sh(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], dir);
  typecheck.catch(() => undefined);
}, 180_000);

afterAll(async () => {
  await typecheck?.catch(() => undefined);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  await t?.close();
});

describe('clients generated from openapi.yaml', () => {
  it('have natural types: defaults optional in request bodies, the login body a union of its three forms', () => {
    const schema = fs.readFileSync(path.join(dir, 'openapi-typescript/schema.d.ts'), 'utf8');
    const block = (name: string) => schema.match(new RegExp(`\\n {8}${name}: \\{\\n([\\s\\S]*?)\\n {8}\\}[;& ]`))?.[1] ?? `(${name} missing)`;
    expect(block('NewUser')).toMatch(/\bis_admin\?: boolean;/);
    expect(block('NewToken')).toMatch(/\bscopes\?: /);
    expect(block('NewUserGroup')).toMatch(/\bactive\?: boolean;/);
    expect(block('Login')).toMatch(/\bset_session\?: boolean;/);
    expect(schema).not.toMatch(/\bunknown \| unknown\b/);
    // That each form is required, and that a password alone is refused, the scenarios' types show (tsc).

    const types = fs.readFileSync(path.join(dir, 'hey-api/types.gen.ts'), 'utf8');
    expect(types).toMatch(/\nexport type Login = \(\{\n\s+email: string;\n\} \| \{\n\s+user_id: string;\n\} \| \{\n\s+user: string;\n\}\) & \{/);
    expect(types).not.toMatch(/\bunknown &/);
    expect(types).toMatch(/\nexport type ErrorBody = \{/);
  });

  it('name no type after a global (hey-api exports every schema by name: `Error` would shadow the built-in)', () => {
    const types = fs.readFileSync(path.join(dir, 'hey-api/types.gen.ts'), 'utf8');
    const exported = [...types.matchAll(/^export (?:type|interface|enum|const) (\w+)/gm)].map((m) => m[1]!);
    expect(exported.length).toBeGreaterThan(50);
    const typeOnlyGlobals = ['Record', 'Partial', 'Required', 'Readonly', 'Pick', 'Omit', 'Exclude', 'Extract', 'NonNullable', 'ReturnType', 'Parameters', 'InstanceType', 'Awaited', 'PropertyKey', 'PromiseLike', 'ArrayLike', 'Iterable', 'Iterator', 'RequestInit', 'HeadersInit', 'BodyInit'];
    expect(exported.filter((name) => name in globalThis || typeOnlyGlobals.includes(name))).toEqual([]);
  });

  it('type-check their scenario scripts (tsc, strict; optional fields left out, a login without a user refused)', async () => {
    await expect(typecheck).resolves.toBe('');
  }, 120_000);

  it.each(SCENARIOS)('run %s against the service: log in, create a user, page by Link, a token named with / and an emoji used and deleted, an error code read', async (name) => {
    const runId = unique('c');
    const out = await sh(bin('tsx'), [path.join(dir, name)], dir, childEnv({ BASE_URL: t.baseUrl, ADMIN_EMAIL: admin.email, ADMIN_PASSWORD: admin.password, RUN: runId }));
    const seen = JSON.parse(out.trim().split('\n').pop()!);

    // The user was created, and the pages (one user each) listed every active user once.
    const created = await t.knex('users').where({ id: seen.createdUserId }).first();
    expect(created).toMatchObject({ email: `${name.split('-scenario')[0]}-${runId}@example.com`, is_admin: false });
    const active = (await t.knex('users').whereNull('deactivated').select('id')).map((u: { id: string }) => u.id);
    expect([...seen.listed].sort()).toEqual([...active].sort());
    expect(seen.pages).toBe(active.length);
    expect(seen.listed).toContain(seen.createdUserId);

    // The token: named with its slash and emoji intact, default scopes, usable, then deleted and refused.
    expect(seen.tokenName).toBe(`ci / deploys \u{1F680} ${runId}`);
    expect(seen.scopes).toEqual(['api']);
    expect(seen.meWithToken).toBe(admin.email);
    expect(seen.deleteStatus).toBe(204);
    expect(await t.knex('user_tokens').where({ name: seen.tokenName }).where('expires', '>', t.knex.fn.now()).first()).toBeUndefined();
    expect(seen.refusedStatus).toBe(401);
    expect(seen.code).toBe('unauthenticated');
  }, 120_000);
});
