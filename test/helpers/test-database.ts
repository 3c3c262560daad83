import crypto from 'node:crypto';
import fs from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { openDatabase, type Database } from '../../src/db/database';
import { withDatabase } from './global-setup';
import { templateDb, testRunId } from './pg-admin';

/** Whether this run is against a real Postgres server (DATABASE_URL) or the embedded PGlite. */
export const onPostgres = Boolean(process.env.DATABASE_URL);

/** The keys for processes the tests start on Postgres, where each is required (API.md §5). */
export const PROCESS_KEYS = {
  JWT_SECRET: 'process-jwt-secret-0123456789-abcdefghijklmnop',
  MFA_KEY: 'process-mfa-key-0123456789-abcdefghijklmnopqrs',
  AUDIT_KEY: 'process-audit-key-0123456789-abcdefghijklmnop',
};
export const PROCESS_AUDIT_KEY = PROCESS_KEYS.AUDIT_KEY;

/**
 * A database for a process the test starts (the server, the CLI): on Postgres a fresh one of this
 * test file's own, its URL and the keys a server database requires in `env`; on PGlite
 * nothing (the process keeps its own database and keys in DATA_DIR).
 */
export async function databaseForProcess(): Promise<{ env: { DATABASE_URL?: string } & Partial<typeof PROCESS_KEYS>; close(): Promise<void> }> {
  if (!process.env.DATABASE_URL) return { env: {}, close: async () => undefined };
  const db = await openTestDatabase();
  await db.knex.destroy();
  return { env: { DATABASE_URL: db.url, ...PROCESS_KEYS }, close: db.close };
}

/** A fresh, migrated database of this test file's own. */
export async function openTestDatabase(): Promise<Database & { url?: string }> {
  const url = process.env.DATABASE_URL;
  if (url) {
    const name = `acct_test_${testRunId()}_${crypto.randomBytes(6).toString('hex')}`;
    const admin = await openDatabase({ databaseUrl: url, poolSize: 1 });
    try {
      await admin.knex.raw(`create database ${name} template ${templateDb()}`);
    } finally {
      await admin.close();
    }
    const dbUrl = withDatabase(url, name);
    const db = await openDatabase({ databaseUrl: dbUrl, poolSize: 4 });
    return {
      ...db,
      url: dbUrl,
      close: async () => {
        await db.close();
        const drop = await openDatabase({ databaseUrl: url, poolSize: 1 });
        try {
          await drop.knex.raw(`drop database if exists ${name} with (force)`);
        } finally {
          await drop.close();
        }
      },
    };
  }
  const template = process.env.TEST_PGLITE_TEMPLATE;
  if (!template) throw new Error('TEST_PGLITE_TEMPLATE is not set: run the tests through jest (globalSetup)');
  const pglite = await PGlite.create({ loadDataDir: new Blob([fs.readFileSync(template)]) });
  const db = await openDatabase({ pglite });
  return {
    ...db,
    close: async () => {
      await db.close();
      await pglite.close();
    },
  };
}
