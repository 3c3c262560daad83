import type { Knex } from 'knex';

export interface MaintenanceStore {
  /** Refreshes the planner's statistics (the list pages' plans depend on them). */
  analyze(): Promise<void>;
  /** `select 1`: the database answers (`/readyz`). */
  ping(): Promise<void>;
}

export class KnexMaintenanceStore implements MaintenanceStore {
  constructor(private readonly db: Knex) {}

  async analyze(): Promise<void> {
    await this.db.raw('analyze');
  }

  async ping(): Promise<void> {
    await this.db.raw('select 1');
  }
}
