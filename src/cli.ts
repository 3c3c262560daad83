import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config';
import { DataDirLockedError } from './db/data-dir-lock';
import { migrateLatest } from './db/migrate';
import { SYSTEM, type AuditContext } from './domain/audit';
import { parseUserRef } from './domain/identifiers';
import { parseRfc3339 } from './domain/timestamps';
import { AppError, ValidationError } from './domain/errors';
import { SCOPES, type Scope, type User } from './domain/types';
import { createLogger } from './logger';
import { openRuntime } from './runtime';

const USAGE = `Usage: npm run cli -- <command> [options]

Commands:
  create-user --email E --name N [--admin] [--password-stdin] [--send-mail]
      Create a user (must change their password at first login). Without a password the user
      sets one through a welcome link (--send-mail) or an admin reset.
  create-token --email E --name N [--scopes api,api:read,api:write] [--expires 2027-01-01T00:00:00Z]
      Mint an API token for a user and print it (the only time it is shown).
  passwd --user <id|email> [--password-stdin]
      Set a user's password; ends their login tokens.
  force-password-change --user <id|email>
      Make the user change their password at next use of a login token.
  migrate
      Run the database migrations.

Passwords are read from standard input (one line), never from the command line.
Configuration is the server's (DATABASE_URL, DATA_DIR, ...).`;

/** What the operator's commands leave in the audit log: no actor, and this client. */
const CLI: AuditContext = { ...SYSTEM, userAgent: 'accounts CLI' };

/** The operator acts as a system admin. */
const OPERATOR: User = {
  id: '00000000-0000-0000-0000-000000000000',
  name: 'operator',
  email: 'operator@localhost',
  firstName: null,
  lastName: null,
  isAdmin: true,
  forcePasswordChange: false,
  created: new Date(0),
  lastLogin: null,
  lastSeen: null,
  deactivated: null,
};

export interface CliIo {
  env: NodeJS.ProcessEnv;
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

async function readPassword(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer));
  const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
  if (!line) throw new ValidationError('no password on standard input');
  return line;
}

export async function runCli(argv: string[], io: CliIo = process): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      email: { type: 'string' },
      name: { type: 'string' },
      user: { type: 'string' },
      admin: { type: 'boolean', default: false },
      'password-stdin': { type: 'boolean', default: false },
      'send-mail': { type: 'boolean', default: false },
      scopes: { type: 'string' },
      expires: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const [command] = positionals;
  if (!command || values.help) {
    io.stdout.write(`${USAGE}\n`);
    return command || values.help ? 0 : 2;
  }
  try {
    return await runCommand(command, values, io);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof AppError || err instanceof DataDirLockedError) {
      io.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

type CliValues = {
  email?: string;
  name?: string;
  user?: string;
  admin: boolean;
  'password-stdin': boolean;
  'send-mail': boolean;
  scopes?: string;
  expires?: string;
};

async function runCommand(command: string, values: CliValues, io: CliIo): Promise<number> {
  const config = loadConfig(io.env);
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const { database, container } = await openRuntime(config, log);
  try {
    const { users, passwords } = container.services;
    switch (command) {
      case 'migrate': {
        const applied = await migrateLatest(database.knex);
        io.stdout.write(applied.length ? `applied ${applied.join(', ')}\n` : 'already up to date\n');
        return 0;
      }
      case 'create-user': {
        if (!values.email || !values.name) throw new ValidationError('create-user needs --email and --name');
        const password = values['password-stdin'] ? await readPassword(io.stdin) : undefined;
        const user = await users.create(OPERATOR, { name: values.name, email: values.email, password, isAdmin: values.admin }, values['send-mail'], CLI);
        if (values['send-mail']) await container.outbox.runOnce();
        io.stdout.write(`${JSON.stringify({ id: user.id, email: user.email, name: user.name, is_admin: user.isAdmin })}\n`);
        return 0;
      }
      case 'create-token': {
        const who = values.email ?? values.user;
        if (!who || !values.name) throw new ValidationError('create-token needs --email and --name');
        const scopes = (values.scopes ?? 'api').split(',').map((x) => x.trim());
        if (!scopes.every((x): x is Scope => (SCOPES as readonly string[]).includes(x))) {
          throw new ValidationError(`--scopes takes a comma-separated list of ${SCOPES.join(', ')}`);
        }
        const expires = values.expires === undefined ? undefined : parseRfc3339(values.expires);
        if (values.expires !== undefined && !expires) throw new ValidationError('--expires takes an RFC 3339 time');
        const owner = await users.target(who);
        const { token, jwt } = await container.services.tokens.create(owner, { name: values.name, scopes, expires }, CLI);
        io.stdout.write(`${JSON.stringify({ name: token.name, scopes: token.scopes, expires: token.expires.toISOString(), token: jwt })}\n`);
        return 0;
      }
      case 'passwd': {
        if (!values.user) throw new ValidationError('passwd needs --user');
        await passwords.setPassword(parseUserRef(values.user), await readPassword(io.stdin), CLI);
        io.stdout.write('password set\n');
        return 0;
      }
      case 'force-password-change': {
        if (!values.user) throw new ValidationError('force-password-change needs --user');
        await passwords.forcePasswordChange(parseUserRef(values.user), CLI);
        io.stdout.write('the user must change their password\n');
        return 0;
      }
      default:
        io.stderr.write(`unknown command ${command}\n${USAGE}\n`);
        return 2;
    }
  } finally {
    await database.close();
  }
}

if (require.main === module) {
  runCli(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
