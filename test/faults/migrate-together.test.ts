import { migrations } from '../../migrations';
import { openDatabase, type Database } from '../../src/db/database';
import { migrateLatest } from '../../src/db/migrate';
import { startCluster, type Cluster } from '../helpers/pg-cluster';

/**
 * Replicas started together on an empty database (docs/scaling.md): each migrates at start, on a
 * connection of its own. One applies the migrations, the others wait for it and find none left;
 * none fails, nothing is applied twice, and Knex's lock table keeps its one row (two rows and
 * Knex refuses every later migration as "already locked").
 */

const INSTANCES = 4;
const ROUNDS = 5;

let cluster: Cluster | undefined;

beforeAll(async () => {
  cluster = await startCluster();
});

afterAll(async () => {
  await cluster?.destroy();
});

test(`${INSTANCES} instances migrating one empty database at once, ${ROUNDS} times over`, async () => {
  const admin = await openDatabase({ databaseUrl: cluster!.url, poolSize: 1 });
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const name = `together_${round}`;
      await admin.knex.raw(`create database ${name}`);
      const url = new URL(cluster!.url);
      url.pathname = `/${name}`;
      const instances: Database[] = [];
      for (let i = 0; i < INSTANCES; i++) instances.push(await openDatabase({ databaseUrl: url.href, poolSize: 1 }));
      try {
        const results = await Promise.allSettled(instances.map((db) => migrateLatest(db.knex, undefined, { stepMs: 50 })));
        const failed = results.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error).message).slice(0, 300)] : []));
        expect({ round, failed }).toEqual({ round, failed: [] });
        // Every migration applied once, by one of them.
        const applied = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
        expect(applied.sort()).toEqual(migrations.map((m) => m.name).sort());
        const knex = instances[0]!.knex;
        expect((await knex('knex_migrations').select('name').orderBy('id')).map((r: { name: string }) => r.name)).toEqual(migrations.map((m) => m.name));
        expect(await knex('knex_migrations_lock').select('is_locked')).toEqual([{ is_locked: 0 }]);
        // And the next start (a migration added by an upgrade, here none) still gets Knex's lock.
        expect(await migrateLatest(knex)).toEqual([]);
      } finally {
        await Promise.all(instances.map((db) => db.close()));
      }
    }
  } finally {
    await admin.close();
  }
});
