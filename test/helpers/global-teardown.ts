import fs from 'node:fs';
import path from 'node:path';
import { openDatabase } from '../../src/db/database';
import { dropTestDatabases } from './global-setup';

export default async function globalTeardown(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (url) {
    const admin = await openDatabase({ databaseUrl: url, poolSize: 1 });
    try {
      await dropTestDatabases(admin.knex, 'this run');
    } finally {
      await admin.close();
    }
  }
  const template = process.env.TEST_PGLITE_TEMPLATE;
  if (template) fs.rmSync(path.dirname(template), { recursive: true, force: true });
}
