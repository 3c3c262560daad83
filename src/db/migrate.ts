import type { Knex } from 'knex';
import { migrations } from '../../migrations';

/** Knex migrations from a static list, so the same code runs from TypeScript and compiled JS. */
const source: Knex.MigrationSource<string> = {
  getMigrations: async () => migrations.map((m) => m.name),
  getMigrationName: (name) => name,
  getMigration: async (name) => {
    const found = migrations.find((m) => m.name === name);
    if (!found) throw new Error(`unknown migration ${name}`);
    return found.migration;
  },
};

const KNOWN = migrations.map((m) => m.name);
const NEWEST = KNOWN[KNOWN.length - 1];

/** A database this build must not run on: migrated by builds of another line, or asked to go where it cannot. */
export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

/** The migrations applied to the database, in the order they were applied (none before the first start). */
export async function appliedMigrations(db: Knex): Promise<string[]> {
  if (!(await db.schema.hasTable('knex_migrations'))) return [];
  return (await db('knex_migrations').select('name').orderBy('id')).map((r: { name: string }) => r.name);
}

/**
 * Applies this build's pending migrations; returns their names. A database already migrated by a
 * **newer** build (migrations this build does not know, all after its newest: a rollback of the
 * build) is run on as it is: migrations only add, so this build ignores what it does not know.
 * `onNewer` is told their names. Unknown migrations older than this build's newest mean the
 * database comes from another line of builds: refused (MigrationError), nothing applied.
 */
export async function migrateLatest(
  db: Knex,
  onNewer: (names: string[]) => void = () => undefined,
  /** Another instance migrating meanwhile: how long to wait for it, and what to say while waiting. */
  wait: { timeoutMs?: number; stepMs?: number; onWait?: (err: Error) => void } = {},
): Promise<string[]> {
  const deadline = Date.now() + (wait.timeoutMs ?? MIGRATION_WAIT_MS);
  let told = false;
  for (;;) {
    try {
      await ensureKnexTables(db);
      return await migrateOnce(db, onNewer);
    } catch (err) {
      if (!anotherInstanceMigrating(err) || Date.now() > deadline) throw err;
      if (!told) wait.onWait?.(err as Error);
      told = true;
      await new Promise((resolve) => setTimeout(resolve, wait.stepMs ?? 500));
    }
  }
}

/**
 * How long a start waits for another instance's migrations (replicas started together, or an
 * upgrade rolled out to all at once): one applies them, the others wait and then find none left.
 */
const MIGRATION_WAIT_MS = 10 * 60_000;

/**
 * Knex's own tables, made before Knex looks for them, so that instances starting together on an
 * empty database cannot trip over each other: Knex checks and then creates (two creates of one
 * table: one fails), and inserts its lock row when it finds none (two rows: its lock, which
 * expects to update exactly one, then refuses every later migration). Here the lock row has a
 * fixed key, so there is only ever one; a create that loses the race is tried again.
 */
async function ensureKnexTables(db: Knex): Promise<void> {
  if ((await db.schema.hasTable('knex_migrations')) && (await db.schema.hasTable('knex_migrations_lock'))) {
    await db.raw('insert into knex_migrations_lock ("index", is_locked) values (1, 0) on conflict do nothing');
    return;
  }
  // One instance at a time: concurrent `create table if not exists` of one table can still fail
  // (`type "knex_migrations" already exists`), so the creates wait for each other's commit.
  await db.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?)', [KNEX_TABLES_LOCK]);
    await trx.raw('create table if not exists knex_migrations (id serial primary key, name varchar(255), batch integer, migration_time timestamptz)');
    await trx.raw('create table if not exists knex_migrations_lock ("index" serial primary key, is_locked integer)');
    await trx.raw('insert into knex_migrations_lock ("index", is_locked) values (1, 0) on conflict do nothing');
  });
}

/** The advisory lock the creation of Knex's tables takes (any fixed number no other lock of ours uses). */
const KNEX_TABLES_LOCK = 727_021_001;

/**
 * Another instance is migrating: Knex's lock is taken (`MigrationLocked`), or a create of Knex's
 * tables lost the race with one of an older build, which takes no lock for it (`42P07` the
 * relation exists, `42710` its type exists, `23505` its type's name is taken).
 */
function anotherInstanceMigrating(err: unknown): boolean {
  const e = err as { name?: string; code?: string; message?: string };
  if (e.name === 'MigrationLocked') return true;
  return (e.code === '42P07' || e.code === '42710' || e.code === '23505') && /knex_migrations/.test(e.message ?? '');
}

async function migrateOnce(db: Knex, onNewer: (names: string[]) => void): Promise<string[]> {
  const unknown = (await appliedMigrations(db)).filter((name) => !KNOWN.includes(name));
  const foreign = unknown.filter((name) => name <= NEWEST);
  if (foreign.length > 0) {
    throw new MigrationError(`the database has migrations this build does not know, older than its newest (${foreign.join(', ')}): it was migrated by another line of builds`);
  }
  if (unknown.length > 0) onNewer(unknown);
  const [, applied] = (await db.migrate.latest({ migrationSource: source, disableMigrationsListValidation: unknown.length > 0 })) as [number, string[]];
  return applied;
}

/**
 * Rolls back, newest first, every migration applied after `target` (one of this build's, applied):
 * for a return to the build that `target` was the newest of, when a schema change is not additive.
 * Returns the names rolled back. Migrations this build does not know cannot be rolled back by it.
 */
export async function migrateDownTo(db: Knex, target: string): Promise<string[]> {
  if (!KNOWN.includes(target)) throw new MigrationError(`${target} is not a migration of this build (accounts admin migrate status lists them)`);
  const applied = await appliedMigrations(db);
  if (!applied.includes(target)) throw new MigrationError(`${target} is not applied to this database`);
  const unknown = applied.filter((name) => !KNOWN.includes(name));
  if (unknown.length > 0) throw new MigrationError(`the database has migrations this build does not know (${unknown.join(', ')}): roll back with the build that made them`);
  const rolledBack: string[] = [];
  for (let last = applied[applied.length - 1]; last !== target; last = (await appliedMigrations(db)).at(-1)!) {
    await db.migrate.down({ migrationSource: source, name: last });
    rolledBack.push(last);
  }
  return rolledBack;
}

/** Every migration this build knows, and whether it is applied; then any applied that it does not know. */
export async function migrationStatus(db: Knex): Promise<{ name: string; applied: boolean; known: boolean }[]> {
  const applied = await appliedMigrations(db);
  return [...KNOWN.map((name) => ({ name, applied: applied.includes(name), known: true })), ...applied.filter((n) => !KNOWN.includes(n)).map((name) => ({ name, applied: true, known: false }))];
}

export async function migrateRollbackAll(db: Knex): Promise<void> {
  await db.migrate.rollback({ migrationSource: source }, true);
}
