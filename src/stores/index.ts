import type { Knex } from 'knex';
import { KnexGroupStore, type GroupStore } from './group-store';
import { KnexOutboxStore, type OutboxStore } from './outbox-store';
import { KnexPasswordTokenStore, type PasswordTokenStore } from './password-token-store';
import { KnexSettingsStore, type SettingsStore } from './settings-store';
import { KnexTokenStore, type TokenStore } from './token-store';
import { KnexUserStore, type UserStore } from './user-store';

export interface Stores {
  users: UserStore;
  tokens: TokenStore;
  passwordTokens: PasswordTokenStore;
  outbox: OutboxStore;
  settings: SettingsStore;
  groups: GroupStore;
}

export function createStores(db: Knex): Stores {
  return {
    users: new KnexUserStore(db),
    tokens: new KnexTokenStore(db),
    passwordTokens: new KnexPasswordTokenStore(db),
    outbox: new KnexOutboxStore(db),
    settings: new KnexSettingsStore(db),
    groups: new KnexGroupStore(db),
  };
}

/** Runs a use case in one transaction, with stores bound to it. */
export type Transactor = <T>(work: (stores: Stores) => Promise<T>) => Promise<T>;

/** `onMailQueued` runs after a commit that queued mail, so the sender delivers it at once. */
export function createTransactor(db: Knex, onMailQueued: () => void = () => {}): Transactor {
  return async (work) => {
    let stores: Stores | undefined;
    const result = await db.transaction((trx) => work((stores = createStores(trx))));
    if (stores && stores.outbox.enqueued > 0) onMailQueued();
    return result;
  };
}
