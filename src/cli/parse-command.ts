import { parseArgs } from 'node:util';
import { isUuid, parseUserRef } from '../domain/identifiers';
import { isEmail, isName, NAME_RULE, tokenNameProblem, WEBHOOK_DESCRIPTION_MAX, WEBHOOK_URL_MAX } from '../domain/rules';
import { isText } from '../domain/text';
import { parseRfc3339 } from '../domain/timestamps';
import { SCOPES, type Scope } from '../domain/types';
import { WEBHOOK_EVENT_TYPES } from '../domain/webhook-events';

export const USAGE = `Usage: accounts <command> [options]      (from a checkout: npx accounts ...)

  accounts user <task> ...       your own account on a server, over its HTTP API: register, auth,
                                 whoami, deauth, key generate|list|revoke, reset_password
                                 (accounts user --help)
  accounts admin <command> ...   the operator's commands below, on the server's database
                                 directly (also without "admin", as before)

Admin commands:
  create-user --email E --name N [--admin] [--password-stdin] [--send-mail]
      Create a user (must change their password at first login). Without a password the user
      sets one through a welcome link (--send-mail) or an admin reset.
  create-token --user <id|email> --name N [--scopes api,api:read,api:write] [--expires 2027-01-01T00:00:00Z]
      Mint an API token for a user and print it (the only time it is shown). --email E is --user E.
  passwd --user <id|email> [--password-stdin]
      Set a user's password; ends their login tokens.
  force-password-change --user <id|email>
      Make the user change their password at next use of a login token.
  reset-mfa --user <id|email>
      Remove every two-factor factor and recovery code of a user who lost their device, and end
      their login sessions (API tokens stay); they sign in with the password alone until they
      set up a factor again. Audited and mailed to the user as the API's reset is.
  migrate
      Run the database migrations (the server also runs them at start).
  migrate status
      List the migrations this build knows, applied or not, and any applied by a newer build.
  migrate down --to NAME
      Roll back every migration applied after NAME, newest first: before going back to the
      build whose newest migration NAME is, when a schema change is not additive (see
      docs/operations.md, "Upgrades, rollbacks, backups"). Stop every instance first.
  backup FILE
      The embedded database (no DATABASE_URL) to FILE, a gzipped dump, while the service is
      stopped. The keys in DATA_DIR are not in it: back them up apart. With DATABASE_URL: pg_dump.
  restore FILE
      The embedded database from a backup, while the service is stopped; the database it
      replaces is kept as DATA_DIR/pgdata.before-restore-<time>. With DATABASE_URL: pg_restore.
  audit export [FILE]
      Chain what is committed, then write the audit log's chain as JSON lines (each entry with
      its link, last a signed checkpoint of the head) to FILE, or to standard output.
  webhook list
      The webhooks (API.md 2.9), a table: id, url, events, enabled, disabled_reason.
  webhook add URL --events TYPE,TYPE|* [--description TEXT]
      Add an endpoint for those event types (or every one: --events '*'); prints its id and
      its signing secret, the only time the secret is shown. The URL follows the API's rule:
      https on a public host (WEBHOOK_ALLOW_HTTP=1, WEBHOOK_ALLOW_PRIVATE=1 relax it).
  webhook remove ID
      Delete an endpoint, its delivery log and what is still pending for it.
  webhook test ID
      Queue a webhook.test event for that endpoint alone; a running service sends it (to a
      disabled endpoint once it is enabled again).
  audit verify FILE [--checkpoint CHECKPOINT]
      Check an export without a database, with AUDIT_KEY (or the key in DATA_DIR): every link, the
      positions, the start (AUDIT_RETENTION_DAYS), the export's checkpoint and, with
      --checkpoint, one the service wrote (its AUDIT_CHECKPOINT_FILE, or a saved "audit
      checkpoint" log line). Exit status 0 whole, 1 broken (one line: where and why).

Names, addresses, scopes and times follow the API's rules. Passwords are read from standard
input (one line), never from the command line. Configuration is the server's (DATABASE_URL,
DATA_DIR, ...). Exit status: 0 done, 1 refused or failed, 2 bad usage.`;

/** A command line that cannot run as given: one line, then the usage; exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type Command =
  | { kind: 'help' }
  | { kind: 'migrate'; task: 'latest' | 'status' }
  | { kind: 'migrate'; task: 'down'; to: string }
  | { kind: 'create-user'; email: string; name: string; admin: boolean; passwordStdin: boolean; sendMail: boolean }
  | { kind: 'create-token'; user: string; name: string; scopes: Scope[]; expires?: Date }
  | { kind: 'passwd'; user: string }
  | { kind: 'force-password-change'; user: string }
  | { kind: 'reset-mfa'; user: string }
  | { kind: 'backup'; file: string }
  | { kind: 'restore'; file: string }
  | { kind: 'audit'; task: 'export'; file?: string }
  | { kind: 'audit'; task: 'verify'; file: string; checkpoint?: string }
  | { kind: 'webhook'; task: 'list' }
  | { kind: 'webhook'; task: 'add'; url: string; events: string[]; description?: string }
  | { kind: 'webhook'; task: 'remove' | 'test'; id: string };

type OptionSpec = { type: 'string' | 'boolean' };
const STRING: OptionSpec = { type: 'string' };
const BOOLEAN: OptionSpec = { type: 'boolean' };

/** Each command's options: any other is refused by name. */
const OPTIONS: Record<Exclude<Command['kind'], 'help'>, Record<string, OptionSpec>> = {
  migrate: { to: STRING },
  'create-user': { email: STRING, name: STRING, admin: BOOLEAN, 'password-stdin': BOOLEAN, 'send-mail': BOOLEAN },
  'create-token': { user: STRING, email: STRING, name: STRING, scopes: STRING, expires: STRING },
  // Passwords come from standard input only; --password-stdin says so explicitly.
  passwd: { user: STRING, 'password-stdin': BOOLEAN },
  'force-password-change': { user: STRING },
  'reset-mfa': { user: STRING },
  audit: { checkpoint: STRING },
  webhook: { events: STRING, description: STRING },
  backup: {},
  restore: {},
};

function isCommand(name: string): name is keyof typeof OPTIONS {
  return Object.prototype.hasOwnProperty.call(OPTIONS, name);
}

type Values = Record<string, string | boolean | undefined>;

/** Reads and checks a command line with the API's rules (src/domain, and the spec), before any database is opened. */
export function parseCommand(argv: string[]): Command {
  const [first] = argv;
  if (argv.includes('--help') || argv.includes('-h') || first === 'help') return { kind: 'help' };
  if (first === undefined) throw new UsageError('no command given');
  if (first.startsWith('-')) throw new UsageError(`unknown option ${first.split('=')[0]} before the command (the command comes first)`);
  if (!isCommand(first)) throw new UsageError(`unknown command ${first}`);
  const command = first;
  const options = OPTIONS[command];
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (err) {
    throw new UsageError(parseArgsMessage(command, err, options));
  }
  if (command === 'audit') return auditCommand(parsed.positionals.slice(1), parsed.values);
  if (command === 'migrate') return migrateCommand(parsed.positionals.slice(1), parsed.values);
  if (command === 'webhook') return webhookCommand(parsed.positionals.slice(1), parsed.values);
  if (command === 'backup' || command === 'restore') {
    const [file, extra] = parsed.positionals.slice(1);
    if (file === undefined) throw new UsageError(`${command} needs the FILE ${command === 'backup' ? 'to write' : 'to read'}`);
    if (extra !== undefined) throw new UsageError(`${command}: unexpected argument ${JSON.stringify(extra)}`);
    return { kind: command, file };
  }
  const extra = parsed.positionals.slice(1);
  if (extra.length > 0) throw new UsageError(`${command}: unexpected argument ${JSON.stringify(extra[0])}`);
  const v = parsed.values;

  switch (command) {
    case 'create-user':
      return {
        kind: 'create-user',
        email: email(command, required(command, v, 'email')),
        name: userName(command, required(command, v, 'name')),
        admin: v.admin === true,
        passwordStdin: v['password-stdin'] === true,
        sendMail: v['send-mail'] === true,
      };
    case 'create-token': {
      if (v.user !== undefined && v.email !== undefined) throw new UsageError(`${command}: give --user or --email, not both`);
      const who = typeof v.email === 'string' ? email(command, v.email) : userRef(command, required(command, v, 'user'));
      return {
        kind: 'create-token',
        user: who,
        name: tokenName(command, required(command, v, 'name')),
        scopes: scopes(command, typeof v.scopes === 'string' ? v.scopes : 'api'),
        expires: typeof v.expires === 'string' ? expires(command, v.expires) : undefined,
      };
    }
    case 'passwd':
      return { kind: 'passwd', user: userRef(command, required(command, v, 'user')) };
    case 'force-password-change':
      return { kind: 'force-password-change', user: userRef(command, required(command, v, 'user')) };
    case 'reset-mfa':
      return { kind: 'reset-mfa', user: userRef(command, required(command, v, 'user')) };
  }
}

/** `migrate`, `migrate status`, `migrate down --to NAME`. */
function migrateCommand(args: string[], v: Values): Command {
  const [task, extra] = args;
  if (task !== undefined && task !== 'status' && task !== 'down') throw new UsageError(`migrate: unknown task ${JSON.stringify(task)} (status or down)`);
  if (extra !== undefined) throw new UsageError(`migrate ${task}: unexpected argument ${JSON.stringify(extra)}`);
  if (task !== 'down') {
    if (v.to !== undefined) throw new UsageError(`migrate${task ? ` ${task}` : ''}: --to goes with migrate down`);
    return { kind: 'migrate', task: task ?? 'latest' };
  }
  const to = required('migrate down', v, 'to');
  if (!/^\d{14}_[a-z]+(_[a-z]+)+$/.test(to)) throw new UsageError(`migrate down: --to ${JSON.stringify(to)} is not a migration name such as 20261207130000_add_mfa`);
  return { kind: 'migrate', task: 'down', to };
}

/** `audit export [FILE]`, `audit verify FILE [--checkpoint FILE]`. */
function auditCommand(args: string[], v: Values): Command {
  const [task, file, extra] = args;
  if (task !== 'export' && task !== 'verify') throw new UsageError(task === undefined ? 'audit needs export or verify' : `audit: unknown task ${JSON.stringify(task)} (export or verify)`);
  if (extra !== undefined) throw new UsageError(`audit ${task}: unexpected argument ${JSON.stringify(extra)}`);
  if (task === 'export') {
    if (v.checkpoint !== undefined) throw new UsageError('audit export: --checkpoint goes with audit verify');
    return { kind: 'audit', task, file };
  }
  if (file === undefined) throw new UsageError('audit verify needs the FILE an export wrote');
  return { kind: 'audit', task, file, checkpoint: typeof v.checkpoint === 'string' ? v.checkpoint : undefined };
}

const WEBHOOK_TASKS = ['list', 'add', 'remove', 'test'] as const;

/**
 * `webhook list`, `webhook add URL --events a,b|* [--description TEXT]`, `webhook remove ID`,
 * `webhook test ID`. What the command line alone can tell is checked here (the event types, an id);
 * the URL's rule (its scheme, its host's addresses) is the service's, as for the API.
 */
function webhookCommand(args: string[], v: Values): Command {
  const [task, arg, extra] = args;
  if (!(WEBHOOK_TASKS as readonly (string | undefined)[]).includes(task)) {
    throw new UsageError(task === undefined ? 'webhook needs list, add, remove or test' : `webhook: unknown task ${JSON.stringify(task)} (list, add, remove or test)`);
  }
  const name = `webhook ${task}`;
  if (task !== 'add') {
    const given = Object.keys(v).find((k) => v[k] !== undefined);
    if (given) throw new UsageError(`${name}: --${given} goes with webhook add`);
  }
  if (task === 'list') {
    if (arg !== undefined) throw new UsageError(`${name}: unexpected argument ${JSON.stringify(arg)}`);
    return { kind: 'webhook', task };
  }
  if (extra !== undefined) throw new UsageError(`${name}: unexpected argument ${JSON.stringify(extra)}`);
  if (task === 'add') {
    if (arg === undefined) throw new UsageError('webhook add needs the URL to post the events to');
    if ([...arg].length > WEBHOOK_URL_MAX) throw new UsageError(`${name}: the URL is longer than ${WEBHOOK_URL_MAX} characters`);
    const description = typeof v.description === 'string' ? v.description : undefined;
    if (description !== undefined && [...description].length > WEBHOOK_DESCRIPTION_MAX) throw new UsageError(`${name}: --description is longer than ${WEBHOOK_DESCRIPTION_MAX} characters`);
    return { kind: 'webhook', task, url: arg, events: webhookEvents(name, required(name, v, 'events')), ...(description !== undefined ? { description } : {}) };
  }
  if (arg === undefined) throw new UsageError(`${name} needs the ID of a webhook (webhook list shows them)`);
  if (!isUuid(arg)) throw new UsageError(`${name}: ${JSON.stringify(arg)} is not a webhook id (webhook list shows them)`);
  return { kind: 'webhook', task: task as 'remove' | 'test', id: arg.toLowerCase() };
}

/** `--events`: `*`, or a comma-separated list of the event types (src/domain/webhook-events.ts). */
function webhookEvents(command: string, value: string): string[] {
  const list = value.split(',').map((s) => s.trim());
  if (list.length === 1 && list[0] === '*') return ['*'];
  const wrong = list.find((s) => !(WEBHOOK_EVENT_TYPES as readonly string[]).includes(s));
  if (wrong !== undefined) {
    throw new UsageError(
      `${command}: --events takes * or a comma-separated list of event types (not ${JSON.stringify(wrong)}): ${WEBHOOK_EVENT_TYPES.join(', ')}`,
    );
  }
  return [...new Set(list)];
}

/** node:util's parseArgs errors, as one line naming the option (its own messages span lines). */
function parseArgsMessage(command: string, err: unknown, options: Record<string, OptionSpec>): string {
  const code = (err as { code?: string }).code;
  const option = /'(-[^']*)'/.exec((err as Error).message ?? '')?.[1] ?? '';
  const name = option.replace(/^-+/, '').split(/[= ]/)[0];
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `${command}: unknown option ${option.split('=')[0]}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return options[name]?.type === 'boolean' ? `${command}: --${name} takes no value` : `${command}: --${name} needs a value`;
    default:
      return `${command}: ${String((err as Error).message ?? err).split('\n')[0]}`;
  }
}

function required(command: string, values: Values, name: string): string {
  const value = values[name];
  if (typeof value !== 'string') throw new UsageError(`${command} needs --${name}`);
  return value;
}

function email(command: string, value: string): string {
  if (!isEmail(value)) throw new UsageError(`${command}: --email ${JSON.stringify(value)} is not an email address`);
  return value;
}

function userName(command: string, value: string): string {
  if (!isText(value) || !isName(value)) {
    throw new UsageError(`${command}: --name ${JSON.stringify(value)} is not a name (${NAME_RULE})`);
  }
  return value;
}

function userRef(command: string, value: string): string {
  try {
    parseUserRef(value);
  } catch {
    throw new UsageError(`${command}: --user ${JSON.stringify(value)} is neither a user id nor an email address`);
  }
  return value;
}

/** A token name by the API's rule (src/domain/rules.ts: the spec's TokenName and the reserved prefix). */
function tokenName(command: string, value: string): string {
  const problem = tokenNameProblem(value);
  if (problem === undefined) return value;
  throw new UsageError(`${command}: ${problem.startsWith('"') ? `--name ${problem}` : problem}`);
}

function scopes(command: string, value: string): Scope[] {
  const list = value.split(',').map((s) => s.trim());
  const wrong = list.find((s) => !(SCOPES as readonly string[]).includes(s));
  if (wrong !== undefined) {
    throw new UsageError(`${command}: --scopes takes a comma-separated list of ${SCOPES.join(', ')} (not ${JSON.stringify(wrong)})`);
  }
  return list as Scope[];
}

function expires(command: string, value: string): Date {
  const date = parseRfc3339(value);
  if (!date) throw new UsageError(`${command}: --expires ${JSON.stringify(value)} is not an RFC 3339 time such as 2027-01-01T00:00:00Z`);
  return date;
}
