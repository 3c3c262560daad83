#!/usr/bin/env node
import fs from 'node:fs';
import { exportAudit, readCheckpointFile, verifyAuditFile } from './cli/audit-file';
import { ConfigError, loadConfig, type Config } from './config';
import { DataDirLockedError } from './db/data-dir-lock';
import { EmbeddedInitError } from './db/embedded';
import { DataDirNotPrivateError, PRIVATE_UMASK } from './db/private-files';
import { backupEmbedded, BackupError, restoreEmbedded } from './db/embedded-backup';
import { migrateDownTo, migrateLatest, MigrationError, migrationStatus } from './db/migrate';
import { SYSTEM, type AuditContext } from './domain/audit';
import { parseUserRef } from './domain/identifiers';
import { AppError } from './domain/errors';
import type { User } from './domain/types';
import { CHAIN_KEY_PURPOSE } from './domain/audit-chain';
import { AUDIT_KEY, KeyError, KeyRing, loadKeys } from './keys';
import { createLogger } from './logger';
import { openRuntime } from './runtime';
import { parseCommand, USAGE, UsageError, type Command } from './cli/parse-command';
import { runUserCli } from './cli/user/run-user-task';
import type { TerminalIo } from './cli/user/terminal';
import { runWebhookTask } from './cli/webhook-task';

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
  emailVerified: true,
  nameTrusted: true,
  mfaEnabled: false,
};

export interface CliIo extends TerminalIo {
  env: NodeJS.ProcessEnv;
}

async function readPassword(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer));
  const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
  if (!line) throw new UsageError('no password on standard input');
  return line;
}

/**
 * Runs one command line; resolves to the exit status. `accounts user <task>` is the user's client
 * over HTTP (src/cli/user/). `accounts admin <command>`, or the command alone as before, is the
 * operator's: 0 done, 1 refused or failed (one line on stderr), 2 bad usage (one line, then the
 * usage). The values are checked by the API's rules before any database is opened; what only the
 * database can tell (a taken name, a weak password, an unknown user) the same services as the
 * API's refuse.
 */
export async function runCli(argv: string[], io: CliIo = process): Promise<number> {
  if (argv[0] === 'user') return runUserCli(argv.slice(1), io);
  return runAdmin(argv[0] === 'admin' ? argv.slice(1) : argv, io);
}

async function runAdmin(argv: string[], io: CliIo): Promise<number> {
  try {
    const command = parseCommand(argv);
    if (command.kind === 'help') {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    return await runCommand(command, io);
  } catch (err) {
    if (err instanceof UsageError || (err instanceof AppError && err.code === 'validation_failed')) {
      io.stderr.write(`accounts: ${oneLine(err.message)}\n\n${USAGE}\n`);
      return 2;
    }
    if (err instanceof ConfigError || err instanceof AppError || err instanceof MigrationError || err instanceof BackupError || err instanceof DataDirLockedError || err instanceof EmbeddedInitError || err instanceof DataDirNotPrivateError || err instanceof KeyError) {
      io.stderr.write(`accounts: ${oneLine(err.message)}\n`);
      return 1;
    }
    // Anything else (the database out of reach, a bug): its message, one line, and no stack.
    const code = (err as { code?: unknown }).code;
    io.stderr.write(`accounts: failed: ${oneLine(err instanceof Error ? err.message : String(err))}${typeof code === 'string' ? ` (${code})` : ''}\n`);
    return 1;
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

async function runCommand(command: Exclude<Command, { kind: 'help' }>, io: CliIo): Promise<number> {
  const config = loadConfig(io.env);
  if (command.kind === 'audit' && command.task === 'verify') return verifyAuditExport(command, config, io);
  if (command.kind === 'backup' || command.kind === 'restore') return backupOrRestore(command, config, io);
  // Read before the database opens: a missing password costs no start-up.
  const password = command.kind === 'passwd' || (command.kind === 'create-user' && command.passwordStdin) ? await readPassword(io.stdin) : undefined;
  // Log lines (a warning at most, unless LOG_LEVEL asks for more) go to stderr: stdout is the command's answer.
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, io.stderr);
  const { database, container } = await openRuntime(config, log, { migrate: command.kind !== 'migrate' });
  try {
    const { users, passwords, tokens } = container.services;
    switch (command.kind) {
      case 'migrate': {
        if (command.task === 'status') {
          for (const m of await migrationStatus(database.knex)) io.stdout.write(`${m.applied ? 'applied' : 'pending'}  ${m.name}${m.known ? '' : '  (a newer build\'s)'}\n`);
          return 0;
        }
        if (command.task === 'down') {
          const rolledBack = await migrateDownTo(database.knex, command.to);
          io.stdout.write(rolledBack.length ? `rolled back ${rolledBack.join(', ')}\n` : `${command.to} is the newest applied already\n`);
          return 0;
        }
        const applied = await migrateLatest(database.knex);
        io.stdout.write(applied.length ? `applied ${applied.join(', ')}\n` : 'already up to date\n');
        return 0;
      }
      case 'create-user': {
        const user = await users.create(OPERATOR, { name: command.name, email: command.email, password, isAdmin: command.admin }, command.sendMail, CLI);
        if (command.sendMail) await container.outbox.runOnce();
        io.stdout.write(`${JSON.stringify({ id: user.id, email: user.email, name: user.name, is_admin: user.isAdmin })}\n`);
        return 0;
      }
      case 'create-token': {
        const owner = await users.target(command.user);
        const { token, jwt } = await tokens.create(owner, { name: command.name, scopes: command.scopes, expires: command.expires }, CLI);
        io.stdout.write(`${JSON.stringify({ name: token.name, scopes: token.scopes, expires: token.expires.toISOString(), token: jwt })}\n`);
        return 0;
      }
      case 'passwd': {
        await passwords.setPassword(parseUserRef(command.user), password as string, CLI);
        io.stdout.write('password set\n');
        return 0;
      }
      case 'force-password-change': {
        await passwords.forcePasswordChange(parseUserRef(command.user), CLI);
        io.stdout.write('the user must change their password\n');
        return 0;
      }
      case 'reset-mfa': {
        // The API's reset (DELETE /user/{user}/factor): the same transaction, audit entry and mail.
        const target = await users.target(command.user);
        const factors = await container.services.mfa.list(target);
        await container.services.mfa.reset(target, CLI);
        await container.outbox.runOnce(); // the user's mail, now: with the embedded database no server is running to send it
        const verified = factors.filter((f) => f.verified).length;
        io.stdout.write(
          factors.length === 0
            ? `${target.email} has no two-factor sign-in: nothing to reset\n`
            : `two-factor sign-in of ${target.email} reset: ${factors.length} factor${factors.length === 1 ? '' : 's'} (${verified} verified) and the recovery codes removed, login sessions ended\n`,
        );
        return 0;
      }
      case 'webhook':
        return await runWebhookTask(command, container.services.webhooks, CLI, io.stdout);
      case 'audit': {
        await container.auditChainer.runOnce(); // what is committed, chained first
        const out = command.file ? fs.createWriteStream(command.file, { mode: 0o600 }) : io.stdout;
        const done = await exportAudit(container.stores.audit, container.chainKeys, container.clock, out);
        if (command.file) {
          await new Promise<void>((resolve, reject) => (out as fs.WriteStream).end((err?: Error | null) => (err ? reject(err) : resolve())));
          const range = done.first === undefined ? '' : ` (positions ${done.first} to ${done.checkpoint?.position})`;
          io.stdout.write(`exported ${done.rows} audit entries${range} to ${command.file}\n`);
        }
        return 0;
      }
    }
  } finally {
    await database.close();
  }
}

/**
 * `accounts admin audit verify FILE`: an export checked without a database. The key is AUDIT_KEY,
 * or the one the embedded default keeps in DATA_DIR (never a new one: it would verify nothing).
 */
/** The embedded database's backup and restore (the service stopped); a server's is pg_dump's. */
async function backupOrRestore(command: { kind: 'backup' | 'restore'; file: string }, config: Config, io: CliIo): Promise<number> {
  if (config.databaseUrl) {
    io.stderr.write(`accounts: ${command.kind} is for the embedded database; with DATABASE_URL use ${command.kind === 'backup' ? 'pg_dump' : 'pg_restore'} (docs/operations.md, "Upgrades, rollbacks, backups")\n`);
    return 1;
  }
  if (command.kind === 'backup') {
    const bytes = await backupEmbedded(config.dataDir, command.file);
    io.stdout.write(`backed up the embedded database of ${config.dataDir} to ${command.file} (${bytes} bytes); the keys in ${config.dataDir} are not in it\n`);
    return 0;
  }
  const kept = await restoreEmbedded(config.dataDir, command.file);
  io.stdout.write(`restored the embedded database of ${config.dataDir} from ${command.file}${kept ? `; the one it replaced is kept in ${kept}` : ''}\n`);
  return 0;
}

async function verifyAuditExport(command: { file: string; checkpoint?: string }, config: Config, io: CliIo): Promise<number> {
  const keys = KeyRing.of(AUDIT_KEY.variable, loadKeys(AUDIT_KEY, config.auditKeys, { dataDir: config.dataDir, required: false, create: false })).derive(CHAIN_KEY_PURPOSE);
  const checkpoint = command.checkpoint === undefined ? undefined : readCheckpointFile(command.checkpoint);
  if (command.checkpoint !== undefined && !checkpoint) throw new UsageError(`audit verify: ${command.checkpoint} holds no audit checkpoint`);
  const check = await verifyAuditFile(command.file, keys, { retentionMs: config.auditRetentionDays * 86_400_000, checkpoint });
  if (!check.ok) {
    const where = check.broken.at ? ` at entry ${check.broken.at}` : '';
    io.stderr.write(`accounts: audit log broken (${check.broken.reason})${where}: ${check.broken.detail}; ${check.rows} entries before it check out\n`);
    return 1;
  }
  const range = check.first === undefined ? 'no entries' : `${check.rows} entries, positions ${check.first} to ${check.head}`;
  const against = check.checkpoints.map((c) => `${c.time.toISOString()} (position ${c.position})`).join(' and ');
  io.stdout.write(`audit log whole: ${range}${against ? `; matches the checkpoints of ${against}` : ''}\n`);
  return 0;
}

if (require.main === module) {
  process.umask(PRIVATE_UMASK); // what this process creates is its user's alone (the data directory, the mail, the key store)
  // exit at once: a pool or the outbox's timers must not keep a finished command alive.
  void runCli(process.argv.slice(2)).then((code) => process.exit(code));
}
