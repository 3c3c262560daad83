import os from 'node:os';
import { UsageError } from '../parse-command';
import { ApiRefusal, createApiClient, send, UnreachableError, type ApiClient } from './api-client';
import { CliFailure, Interrupted } from './cli-failure';
import { configDir, KeyStore, openKey, sealKey, type KeyEntry } from './key-store';
import { emailProblem, keyNameProblem, mfaCodeProblem, parseUserTask, userNameProblem, type UserTask } from './parse-user-task';
import { Terminal, type TerminalIo } from './terminal';

export const DEFAULT_URL = 'http://localhost:3000';

export interface UserCliIo extends TerminalIo {
  env: NodeJS.ProcessEnv;
}

/**
 * Runs `accounts user ...` (argv without `user`); resolves to the exit status: 0 done, 1 refused
 * by the server (its `error` and `code`) or failed, 2 bad usage, 130 interrupted. Every error is
 * one line on stderr, never a stack.
 */
export async function runUserCli(argv: string[], io: UserCliIo): Promise<number> {
  try {
    const task = parseUserTask(argv);
    if (task.task === 'help') {
      io.stdout.write(`${task.text}\n`);
      return 0;
    }
    const url = serverUrl(task.url ?? io.env.ACCOUNTS_URL ?? DEFAULT_URL);
    const store = KeyStore.in(configDir(io.env));
    await runTask(task, { url, io, store, term: new Terminal(io) });
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`accounts: ${oneLine(err.message)}\n`);
      return 2;
    }
    if (err instanceof Interrupted) return 130;
    if (err instanceof ApiRefusal || err instanceof UnreachableError || err instanceof CliFailure) {
      io.stderr.write(`accounts: ${oneLine(err.message)}\n`);
      return 1;
    }
    io.stderr.write(`accounts: failed: ${oneLine(err instanceof Error ? err.message : String(err))}\n`);
    return 1;
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** The server's URL as the key store's index and the client's base: http(s), no trailing slash. */
function serverUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`user: --url ${JSON.stringify(value)} is not a URL such as ${DEFAULT_URL}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`user: --url ${JSON.stringify(value)} is not an http or https URL`);
  if (url.search || url.hash || url.username || url.password) throw new UsageError(`user: --url ${JSON.stringify(value)} has a query, fragment or credentials`);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

interface Context {
  url: string;
  io: UserCliIo;
  store: KeyStore;
  term: Terminal;
}

/** The key to present: ACCOUNTS_KEY, or the stored one (asking for the local password when it is sealed). */
interface Credentials {
  token: string;
  entry: KeyEntry | undefined;
}

function sealContext(url: string, keyName: string): string {
  return `accounts CLI key for ${url}, named ${keyName}`;
}

async function credentials(ctx: Context, { storedOnly = false } = {}): Promise<Credentials> {
  const entry = ctx.store.get(ctx.url);
  const fromEnv = ctx.io.env.ACCOUNTS_KEY;
  if (fromEnv && !storedOnly) return { token: fromEnv, entry };
  if (!entry) throw new CliFailure(`no key stored for ${ctx.url}: run \`accounts user auth\` (or set ACCOUNTS_KEY)`);
  return { token: await unseal(ctx, entry), entry };
}

async function unseal(ctx: Context, entry: KeyEntry, prompt = 'Local password: '): Promise<string> {
  if (entry.token !== undefined) return entry.token;
  if (!entry.sealed) throw new CliFailure(`the entry for ${ctx.url} in ${ctx.store.file} holds no key`);
  const local = await ctx.term.ask({ prompt, what: 'local password', hidden: true });
  return openKey(entry.sealed, local, sealContext(ctx.url, entry.key_name), ctx.url);
}

/** Seals the token under a local password asked for now (twice); an empty one stores it in clear, with a warning. */
async function storeKey(ctx: Context, keyName: string, token: string, user: string | undefined, localPassword: string): Promise<void> {
  const entry: KeyEntry = { key_name: keyName, ...(user ? { user } : {}), stored: new Date().toISOString() };
  if (localPassword === '') {
    entry.token = token;
    ctx.io.stderr.write(`accounts: warning: the key is stored unencrypted in ${ctx.store.file}: whoever can read that file can use it\n`);
  } else {
    entry.sealed = await ctx.term.spin('Encrypting the key', sealKey(token, localPassword, sealContext(ctx.url, keyName)));
  }
  ctx.store.put(ctx.url, entry);
}

function askLocalPassword(ctx: Context, prompt: string): Promise<string> {
  return ctx.term.ask({ prompt, what: 'local password', hidden: true, confirm: true, allowEmpty: true });
}

/** `base`, or `base-2`, `base-3`, ... whichever no key of the user has yet. */
async function freeKeyName(ctx: Context, client: ApiClient, base: string): Promise<string> {
  const keys = await ctx.term.spin('Listing your keys', send(ctx.url, client.GET('/user/me/token')));
  const taken = new Set(keys.map((k) => k.name));
  for (let n = 1; ; n++) {
    const name = n === 1 ? base : `${base}-${n}`;
    if (!taken.has(name)) return name;
  }
}

/**
 * The second sign-in step (POST /login/mfa) with the pending login's token: the code from --otp,
 * else asked for on a terminal ("Two-factor code:", as Hex asks), never read from a pipe. Resolves
 * to the new login token; the pending one has then ended. A refused code is one line, exit 1.
 */
async function secondStep(ctx: Context, pending: ApiClient, email: string, otp: string | undefined, factors: readonly { type: string }[]): Promise<string> {
  // A passkey needs a browser (or a security key the browser drives): here only its account's recovery codes serve.
  const passkeysOnly = factors.length > 0 && factors.every((f) => f.type === 'webauthn');
  if (otp === undefined && !ctx.term.interactive) {
    throw new UsageError(
      passkeysOnly
        ? `${email} signs in with a passkey, which the command line cannot use: give one of your recovery codes with --otp CODE`
        : `${email} has two-factor sign-in: give the code with --otp CODE (it is asked for on a terminal only)`,
    );
  }
  if (otp === undefined && passkeysOnly) ctx.io.stderr.write(`${email} signs in with a passkey, which the command line cannot use: give one of your recovery codes.\n`);
  const code = otp ?? (await ctx.term.ask({ prompt: passkeysOnly ? 'Recovery code: ' : 'Two-factor code: ', what: 'two-factor code', check: mfaCodeProblem }));
  try {
    const done = await ctx.term.spin('Checking the code', send(ctx.url, pending.POST('/login/mfa', { body: { code } })));
    return done.jwt_token;
  } catch (err) {
    if (err instanceof ApiRefusal && err.code === 'mfa_failed') throw new CliFailure('wrong two-factor code, or one already used: run auth again with a new code (mfa_failed)');
    if (err instanceof ApiRefusal && err.code === 'rate_limited') {
      const wait = err.retryAfter === undefined ? 'later' : `in ${err.retryAfter} s`;
      throw new CliFailure(`too many wrong two-factor codes: try again ${wait} (rate_limited)`);
    }
    throw err;
  }
}

/** This host's name, as a key name (cut to fit the 100 characters a key name may have). */
function hostKeyName(): string {
  const host = [...(os.hostname() || 'accounts-cli')].slice(0, 90).join('');
  return keyNameProblem(host) ? 'accounts-cli' : host;
}

function scopesText(scopes: readonly string[]): string {
  return scopes.join(',');
}

async function runTask(task: Exclude<UserTask, { task: 'help' }>, ctx: Context): Promise<void> {
  const { io, url, term } = ctx;
  const out = (line: string) => io.stdout.write(`${line}\n`);
  switch (task.task) {
    case 'register': {
      const name = task.name ?? (await term.ask({ prompt: 'Name: ', what: 'name', check: userNameProblem }));
      const email = task.email ?? (await term.ask({ prompt: 'Email: ', what: 'email', check: emailProblem }));
      const password = await term.ask({ prompt: 'Password: ', what: 'password', hidden: true, confirm: true });
      await term.spin('Registering', send(url, createApiClient(url).POST('/register', { body: { name, email, password } })));
      out(`Registered ${name} <${email}> at ${url}. Check the mailbox of ${email} for a link to verify the address, then run \`accounts user auth\`.`);
      return;
    }
    case 'auth': {
      const email = task.email ?? (await term.ask({ prompt: 'Email: ', what: 'email', check: emailProblem }));
      const password = await term.ask({ prompt: 'Password: ', what: 'password', hidden: true });
      const localPassword = await askLocalPassword(ctx, 'Local password to encrypt the key on this machine (empty: unencrypted): ');
      const login = await term.spin('Logging in', send(url, createApiClient(url).POST('/login', { body: { email, password } })));
      let session = createApiClient(url, login.jwt_token);
      let created: { name: string; token: string; scopes: string[] };
      let user: { name: string; email: string };
      try {
        if (login.password_change_required) throw new CliFailure(`${email} must change their password first (accounts user reset_password account), then run auth again`);
        if (login.mfa_enrollment_required) {
          throw new CliFailure(`${email} must set up two-factor sign-in first: sign in to the web console at ${url}, add an authenticator app or a passkey under Account, Security, then run auth again`);
        }
        // The password was right; the login token can do nothing but the second step until it is done.
        if (login.mfa_required) session = createApiClient(url, await secondStep(ctx, session, email, task.otp, login.factors ?? []));
        user = await term.spin('Reading your account', send(url, session.GET('/user/me')));
        const keyName = task.keyName ?? (await freeKeyName(ctx, session, hostKeyName()));
        created = await term.spin('Creating the key', send(url, session.POST('/user/me/token', { body: { name: keyName, scopes: ['api'] } })));
      } finally {
        // The login session was only the way to the key: end it whatever happened.
        await send(url, session.POST('/logout')).catch(() => undefined);
      }
      await storeKey(ctx, created.name, created.token, user.email, localPassword);
      out(`Authenticated as ${user.name} <${user.email}>: key "${created.name}" (${scopesText(created.scopes)}) stored for ${url} in ${ctx.store.file}.`);
      return;
    }
    case 'whoami': {
      const { token } = await credentials(ctx);
      const me = await term.spin('Asking the server', send(url, createApiClient(url, token).GET('/user/me')));
      if (task.json) out(JSON.stringify(me));
      else out(`${me.name} <${me.email}>${me.is_admin ? ' (system admin)' : ''}`);
      return;
    }
    case 'deauth': {
      const entry = ctx.store.get(url);
      if (!entry) throw new CliFailure(`no key stored for ${url}`);
      if (task.revoke) {
        const { token } = await credentials(ctx, { storedOnly: true });
        await term.spin('Deleting the key on the server', send(url, createApiClient(url, token).DELETE('/user/me/token/{name}', { params: { path: { name: entry.key_name } } })));
      }
      ctx.store.remove(url);
      out(task.revoke ? `Key "${entry.key_name}" deleted on ${url} and removed from this machine.` : `Key "${entry.key_name}" removed from this machine (it still works on ${url}: \`accounts user key revoke\` deletes it there).`);
      return;
    }
    case 'key generate': {
      const { token, entry } = await credentials(ctx);
      const client = createApiClient(url, token);
      const keyName = task.keyName ?? (await freeKeyName(ctx, client, hostKeyName()));
      const scopes = task.permissions.length > 0 ? task.permissions : (['api:write'] as const);
      const key = await term.spin('Creating the key', send(url, client.POST('/user/me/token', { body: { name: keyName, scopes: [...scopes] } }))).catch((err: unknown) => {
        // An account with two-factor sign-in makes keys only from a sign-in with the code (API.md §2.8), never with a key.
        if (err instanceof ApiRefusal && err.code === 'mfa_required') {
          throw new CliFailure(`${entry?.user ?? 'the account'} has two-factor sign-in: a new key needs a sign-in with the code, not a key; \`accounts user auth --key-name NAME\` makes one and stores it (mfa_required)`);
        }
        throw err;
      });
      if (task.json) {
        out(JSON.stringify(key));
      } else {
        io.stderr.write(`Key "${key.name}" (${scopesText(key.scopes)}), expires ${key.expires}. It is shown this once:\n`);
        out(key.token);
      }
      return;
    }
    case 'key list': {
      const { token, entry } = await credentials(ctx);
      const keys = await term.spin('Listing your keys', send(url, createApiClient(url, token).GET('/user/me/token')));
      const stored = entry?.key_name;
      if (task.json) {
        out(JSON.stringify(keys.map((k) => ({ ...k, stored: k.name === stored }))));
        return;
      }
      const rows = [
        ['', 'NAME', 'SCOPES', 'CREATED', 'LAST USED', 'LAST IP', 'EXPIRES'],
        ...keys.map((k) => [k.name === stored ? '*' : '', k.name, scopesText(k.scopes), k.created, k.last_used ?? '-', k.last_ipaddr ?? '-', k.expires]),
      ];
      table(out, rows);
      if (stored !== undefined) out(`* the key stored on this machine for ${url}`);
      return;
    }
    case 'key revoke': {
      const { token, entry } = await credentials(ctx);
      const client = createApiClient(url, token);
      if (task.all) {
        await term.spin('Deleting your keys', send(url, client.POST('/user/me/revoke', { params: { query: { api_only: '1' } } })));
        if (entry) ctx.store.remove(url);
        out(`Deleted every API key of yours on ${url}, ${entry ? `the one stored on this machine ("${entry.key_name}") included: it is removed here too` : 'the one in use included'}. Run \`accounts user auth\` for a new one.`);
        return;
      }
      const keyName = task.keyName as string;
      await term.spin('Deleting the key', send(url, client.DELETE('/user/me/token/{name}', { params: { path: { name: keyName } } })));
      if (entry?.key_name === keyName) {
        ctx.store.remove(url);
        out(`Deleted key "${keyName}" on ${url}. It was the key stored on this machine: removed here too.`);
      } else {
        out(`Deleted key "${keyName}" on ${url}.`);
      }
      return;
    }
    case 'factor list': {
      const { token } = await credentials(ctx);
      const factors = await term.spin('Listing your factors', send(url, createApiClient(url, token).GET('/user/me/factor')));
      if (task.json) {
        out(JSON.stringify(factors));
        return;
      }
      const where = `the web console at ${url}/account/security`;
      if (factors.length === 0) {
        out(`No two-factor sign-in: add an authenticator app or a passkey in ${where}.`);
        return;
      }
      table(out, [
        ['TYPE', 'NAME', 'STATUS', 'ADDED', 'LAST USED'],
        ...factors.map((f) => [f.type === 'webauthn' ? 'passkey' : 'app', f.name, f.verified ? 'confirmed' : 'pending', f.created, f.last_used ?? '-']),
      ]);
      out(`Authenticator apps and passkeys are added, renamed and removed in ${where}.`);
      return;
    }
    case 'reset_password account': {
      const email = task.email ?? (await term.ask({ prompt: 'Email: ', what: 'email', check: emailProblem }));
      await term.spin('Asking for a reset link', send(url, createApiClient(url).POST('/password/reset', { body: { email } })));
      out(`If ${email} has an account at ${url}, a link to set a new password is on its way: check its mailbox.`);
      return;
    }
    case 'reset_password local': {
      const entry = ctx.store.get(url);
      if (!entry) throw new CliFailure(`no key stored for ${url}`);
      const token = await unseal(ctx, entry, 'Current local password: ');
      const local = await askLocalPassword(ctx, 'New local password (empty: unencrypted): ');
      await storeKey(ctx, entry.key_name, token, entry.user, local);
      out(local === '' ? `The key for ${url} is now stored unencrypted.` : `Local password changed for the key stored for ${url}.`);
      return;
    }
  }
}

/** Rows as columns two spaces apart, each as wide as its widest cell (characters, not UTF-16 units). */
function table(out: (line: string) => void, rows: string[][]): void {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => [...r[i]].length)));
  for (const row of rows) out(row.map((cell, i) => cell + ' '.repeat(widths[i] - [...cell].length)).join('  ').trimEnd());
}
