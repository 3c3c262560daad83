import { parseArgs } from 'node:util';
import { isEmail, isName, NAME_RULE, tokenNameProblem } from '../../domain/rules';
import { isText } from '../../domain/text';
import { SCOPES, type Scope } from '../../domain/types';
import { UsageError } from '../parse-command';

export const USER_USAGE = `Usage: accounts user <task> [options]

Your own account on an accounts server, over its HTTP API (as Hex's \`mix hex.user\`).

Tasks:
  register                      create an account; the server mails a link to verify the address
  auth                          log in (with a two-factor code if the account has one), create
                                an API key for this machine and store it
  whoami                        the user of the stored key
  deauth                        remove the stored key from this machine (--revoke: on the server too)
  key generate                  create an API key and print it (once)
  key list                      your API keys; the stored one is marked
  key revoke KEY_NAME | --all   delete one API key, or all of them
  factor list                   your two-factor factors: authenticator apps and passkeys
  reset_password account        mail yourself a link to set a new password
  reset_password local          change the local password that encrypts the stored key

Options of every task:
  --url URL     the server (default: $ACCOUNTS_URL, else http://localhost:3000)
  -h, --help    help on a task: accounts user key generate --help

The key is stored in $XDG_CONFIG_HOME/accounts/keys.json (~/.config/accounts on Linux,
~/Library/Application Support/accounts on macOS, %APPDATA%\\accounts on Windows), one per server,
encrypted with a local password. ACCOUNTS_KEY=<api key> is used instead of the stored key.
On a terminal the tasks ask what they need (passwords hidden); otherwise each answer is one line
of standard input, in the order the prompts would come, and a missing one is an error.
Exit status: 0 done, 1 refused (the server's error and code) or failed, 2 bad usage.`;

const HELP: Record<TaskName, string> = {
  register: `Usage: accounts user register [--name NAME] [--email EMAIL] [--url URL]

Creates an account (POST /register): asks for the name, the email and the password (hidden, twice).
Then open the link mailed to that address to verify it, and run \`accounts user auth\`.
Without a terminal: --name and --email, or their lines, then the password, on standard input.`,
  auth: `Usage: accounts user auth [--key-name NAME] [--email EMAIL] [--otp CODE] [--url URL]

Logs in with your email and password, creates an API key named NAME (default: this host's name,
with -2, -3, ... if taken) with the scope api, stores it on this machine and ends the login
session it used. Asks for a local password that encrypts the stored key (hidden, twice); an
empty one stores it unencrypted, with a warning.
If the account has two-factor sign-in, asks for a "Two-factor code:" once the password is right:
the 6 digits of your authenticator app, or one of your recovery codes (each works once).
--otp CODE gives it instead (it is asked for on a terminal only). A passkey cannot be used here:
an account whose factors are all passkeys gives a recovery code (\`accounts user factor list\`).
Without a terminal: --email or its line, then the password and the local password, one line each;
and --otp CODE for an account with two-factor sign-in.`,
  whoami: `Usage: accounts user whoami [--json] [--url URL]

Prints the user of the stored key (or of ACCOUNTS_KEY): GET /user/me. --json: the user as the API returns it.`,
  deauth: `Usage: accounts user deauth [--revoke] [--url URL]

Removes the key stored on this machine for the server. --revoke: deletes it on the server first.`,
  'key generate': `Usage: accounts user key generate [--key-name NAME] [--permission P ...] [--json] [--url URL]

Creates an API key and prints it: this is the only time it is shown. --permission is api,
api:read or api:write, and may be repeated (default: api:write). NAME defaults to this host's
name (with -2, -3, ... if taken). --json: the key as the API returns it, token included.
An account with two-factor sign-in makes keys only from a sign-in with the code, not with a key:
there, \`accounts user auth --key-name NAME\` makes one (and stores it).`,
  'key list': `Usage: accounts user key list [--json] [--url URL]

Lists your API keys: name, scopes, created, last used, last IP, expiry. The key stored on this
machine is marked with *. --json: the API's list, each with "stored": true or false.`,
  'key revoke': `Usage: accounts user key revoke KEY_NAME [--url URL]
       accounts user key revoke --all [--url URL]

Deletes the API key KEY_NAME; with --all, every API key of yours, the stored one included
(which is then removed from this machine). A deleted key is refused from the next request on.`,
  'factor list': `Usage: accounts user factor list [--json] [--url URL]

Lists your two-factor sign-in factors (GET /user/me/factor): authenticator apps ("app") and
passkeys ("passkey"), each with its name, whether it is confirmed, when it was added and last
used. They are added, renamed and removed in the web console (Account, Security): a passkey
lives in a browser or a security key, which the command line cannot drive. At \`accounts user
auth\`, an account whose factors are all passkeys gives one of its recovery codes instead.
--json: the API's list.`,
  'reset_password account': `Usage: accounts user reset_password account [--email EMAIL] [--url URL]

Asks the server to mail a link to set a new password (POST /password/reset).`,
  'reset_password local': `Usage: accounts user reset_password local [--url URL]

Changes the local password that encrypts the stored key: asks for the current one (if it is
encrypted) and the new one (hidden, twice; empty: stored unencrypted, with a warning).
Without a terminal: the current and the new local password, one line each.`,
};

type TaskName = 'register' | 'auth' | 'whoami' | 'deauth' | 'key generate' | 'key list' | 'key revoke' | 'factor list' | 'reset_password account' | 'reset_password local';

export type UserTask =
  | { task: 'help'; text: string }
  | { task: 'register'; url?: string; name?: string; email?: string }
  | { task: 'auth'; url?: string; keyName?: string; email?: string; otp?: string }
  | { task: 'whoami'; url?: string; json: boolean }
  | { task: 'deauth'; url?: string; revoke: boolean }
  | { task: 'key generate'; url?: string; keyName?: string; permissions: Scope[]; json: boolean }
  | { task: 'key list'; url?: string; json: boolean }
  | { task: 'key revoke'; url?: string; keyName?: string; all: boolean }
  | { task: 'factor list'; url?: string; json: boolean }
  | { task: 'reset_password account'; url?: string; email?: string }
  | { task: 'reset_password local'; url?: string };

type OptionSpec = { type: 'string' | 'boolean'; multiple?: boolean; short?: string };
const STRING: OptionSpec = { type: 'string' };
const BOOLEAN: OptionSpec = { type: 'boolean' };
const COMMON: Record<string, OptionSpec> = { url: STRING, help: { type: 'boolean', short: 'h' } };

const OPTIONS: Record<TaskName, Record<string, OptionSpec>> = {
  register: { name: STRING, email: STRING },
  auth: { 'key-name': STRING, email: STRING, otp: STRING },
  whoami: { json: BOOLEAN },
  deauth: { revoke: BOOLEAN },
  'key generate': { 'key-name': STRING, permission: { type: 'string', multiple: true }, json: BOOLEAN },
  'key list': { json: BOOLEAN },
  'key revoke': { all: BOOLEAN },
  'factor list': { json: BOOLEAN },
  'reset_password account': { email: STRING },
  'reset_password local': {},
};

const GROUPS: Record<string, string[]> = { key: ['generate', 'list', 'revoke'], factor: ['list'], reset_password: ['account', 'local'] };

/** Reads `accounts user ...` (argv without `user`); bad usage throws `UsageError`, one line. */
export function parseUserTask(argv: string[]): UserTask {
  const help = argv.includes('--help') || argv.includes('-h');
  const words = argv.filter((a) => !a.startsWith('-'));
  const [first, second] = words;
  if (argv[0] === 'help' || (help && (first === undefined || argv.indexOf(first) !== 0))) return { task: 'help', text: USER_USAGE };
  if (first === undefined || argv.indexOf(first) !== 0) {
    if (argv.length === 0) throw new UsageError('user: no task given (accounts user --help lists them)');
    throw new UsageError(`user: unknown option ${argv[0].split('=')[0]} before the task (the task comes first)`);
  }
  let name: TaskName;
  if (first in GROUPS) {
    const sub = GROUPS[first];
    if (second === undefined || argv.indexOf(second) !== 1) {
      if (help) return { task: 'help', text: groupHelp(first) };
      throw new UsageError(`user ${first}: give one of ${sub.join(', ')}`);
    }
    if (!sub.includes(second)) throw new UsageError(`user ${first}: unknown task ${second} (one of ${sub.join(', ')})`);
    name = `${first} ${second}` as TaskName;
  } else if (first in OPTIONS) {
    name = first as TaskName;
  } else {
    throw new UsageError(`user: unknown task ${first} (accounts user --help lists them)`);
  }
  if (help) return { task: 'help', text: HELP[name] };

  const options = { ...COMMON, ...OPTIONS[name] };
  let parsed: { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv.slice(name.split(' ').length), options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (err) {
    throw new UsageError(parseArgsMessage(name, err, options));
  }
  const v = parsed.values;
  const rest = parsed.positionals;
  const url = typeof v.url === 'string' ? v.url : undefined;
  const noArguments = () => {
    if (rest.length > 0) throw new UsageError(`user ${name}: unexpected argument ${JSON.stringify(rest[0])}`);
  };

  switch (name) {
    case 'register':
      noArguments();
      return { task: name, url, name: optional(v.name, (s) => userName(name, s)), email: optional(v.email, (s) => email(name, s)) };
    case 'auth':
      noArguments();
      return {
        task: name,
        url,
        keyName: optional(v['key-name'], (s) => keyName(name, s)),
        email: optional(v.email, (s) => email(name, s)),
        otp: optional(v.otp, (s) => otp(name, s)),
      };
    case 'whoami':
    case 'key list':
    case 'factor list':
      noArguments();
      return { task: name, url, json: v.json === true };
    case 'deauth':
      noArguments();
      return { task: name, url, revoke: v.revoke === true };
    case 'key generate': {
      noArguments();
      const permissions = ((v.permission as string[] | undefined) ?? []).flatMap((p) => p.split(',')).map((p) => scope(name, p.trim()));
      return { task: name, url, keyName: optional(v['key-name'], (s) => keyName(name, s)), permissions: [...new Set(permissions)], json: v.json === true };
    }
    case 'key revoke': {
      const all = v.all === true;
      if (all && rest.length > 0) throw new UsageError(`user key revoke: give KEY_NAME or --all, not both`);
      if (!all && rest.length === 0) throw new UsageError(`user key revoke: give the KEY_NAME to delete, or --all`);
      if (rest.length > 1) throw new UsageError(`user key revoke: unexpected argument ${JSON.stringify(rest[1])}`);
      return { task: name, url, all, keyName: all ? undefined : keyName(name, rest[0]) };
    }
    case 'reset_password account':
      noArguments();
      return { task: name, url, email: optional(v.email, (s) => email(name, s)) };
    case 'reset_password local':
      noArguments();
      return { task: name, url };
  }
}

function groupHelp(group: string): string {
  return Object.entries(HELP)
    .filter(([task]) => task.startsWith(`${group} `))
    .map(([, text]) => text.split('\n\n')[0])
    .join('\n');
}

function optional<T>(value: unknown, check: (s: string) => T): T | undefined {
  return typeof value === 'string' ? check(value) : undefined;
}

function parseArgsMessage(task: string, err: unknown, options: Record<string, OptionSpec>): string {
  const code = (err as { code?: string }).code;
  const option = /'(-[^']*)'/.exec((err as Error).message ?? '')?.[1] ?? '';
  const name = option.replace(/^-+/, '').split(/[= ]/)[0];
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `user ${task}: unknown option ${option.split('=')[0]}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return options[name]?.type === 'boolean' ? `user ${task}: --${name} takes no value` : `user ${task}: --${name} needs a value`;
    default:
      return `user ${task}: ${String((err as Error).message ?? err).split('\n')[0]}`;
  }
}

/** An email by the API's rule; also used for answers typed at a prompt. */
export function emailProblem(value: string): string | undefined {
  return isEmail(value) ? undefined : `${JSON.stringify(value)} is not an email address`;
}

export function userNameProblem(value: string): string | undefined {
  return isText(value) && isName(value) ? undefined : `${JSON.stringify(value)} is not a name (${NAME_RULE})`;
}

export function keyNameProblem(value: string): string | undefined {
  return tokenNameProblem(value, 'key');
}

/**
 * A second-step code as the API's `MfaCode` schema takes it (openapi.yaml; test/cli/user-auth-mfa
 * checks that the two agree): 6 digits (a space between the halves allowed), or a recovery code's
 * 12 letters and digits (spaces and hyphens ignored).
 */
export const MFA_CODE_PATTERN = /^[ ]*[0-9]{3}[ ]?[0-9]{3}[ ]*$|^[ -]*(?:[0-9A-Za-z][ -]*){12}$/;
export const MFA_CODE_MAX_LENGTH = 32;

export function mfaCodeProblem(value: string): string | undefined {
  if (value.length <= MFA_CODE_MAX_LENGTH && MFA_CODE_PATTERN.test(value)) return undefined;
  return 'a two-factor code is the 6 digits of your authenticator app or a recovery code (xxxx-xxxx-xxxx)';
}

function otp(task: string, value: string): string {
  const problem = mfaCodeProblem(value);
  if (problem) throw new UsageError(`user ${task}: --otp: ${problem}`);
  return value;
}

function email(task: string, value: string): string {
  const problem = emailProblem(value);
  if (problem) throw new UsageError(`user ${task}: --email ${problem}`);
  return value;
}

function userName(task: string, value: string): string {
  const problem = userNameProblem(value);
  if (problem) throw new UsageError(`user ${task}: --name ${problem}`);
  return value;
}

function keyName(task: string, value: string): string {
  const problem = keyNameProblem(value);
  if (problem) throw new UsageError(`user ${task}: ${problem}`);
  return value;
}

function scope(task: string, value: string): Scope {
  if (!(SCOPES as readonly string[]).includes(value)) throw new UsageError(`user ${task}: --permission is one of ${SCOPES.join(', ')} (not ${JSON.stringify(value)})`);
  return value as Scope;
}
