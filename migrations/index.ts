import type { Knex } from 'knex';
import * as createUsers from './20261122150000_create_users';
import * as createUserTokens from './20261122150100_create_user_tokens';
import * as createPasswordTokens from './20261122150200_create_password_tokens';
import * as createMailOutbox from './20261122150300_create_mail_outbox';
import * as createUserSettings from './20261122160000_create_user_settings';
import * as createUserGroups from './20261122163000_create_user_groups';
import * as createLoginThrottle from './20261130120000_create_login_throttle';
import * as createRateLimits from './20261130120100_create_rate_limits';
import * as createBackgroundJobs from './20261130120200_create_background_jobs';
import * as createListIndexes from './20261130220000_create_list_indexes';
import * as createEmailLinks from './20261201100000_create_email_links';
import * as createAuditLog from './20261201110000_create_audit_log';
import * as chainAuditLogAfterCommit from './20261201120000_chain_audit_log_after_commit';
import * as addNameSkeletons from './20261207100000_add_name_skeletons';
import * as keyAuditChain from './20261207120000_key_audit_chain';
import * as addMfa from './20261207130000_add_mfa';
import * as addPasskeys from './20261207140000_add_passkeys';
import * as addWebhooks from './20261208090000_add_webhooks';
import * as indexDueDeliveriesPerEndpoint from './20261208100000_index_due_deliveries_per_endpoint';

/**
 * Every migration, in order. A test checks that each file in this folder is listed here.
 * Migrations only add (tables, nullable columns or columns with defaults, indexes): the previous
 * build runs on the newer schema, which is how a release is rolled back (README, "Upgrades and
 * rollbacks"). A change that cannot be additive says so in its release notes, and its `down`
 * must restore the previous schema (`accounts admin migrate down --to`).
 */
export const migrations: { name: string; migration: Knex.Migration }[] = [
  { name: '20261122150000_create_users', migration: createUsers },
  { name: '20261122150100_create_user_tokens', migration: createUserTokens },
  { name: '20261122150200_create_password_tokens', migration: createPasswordTokens },
  { name: '20261122150300_create_mail_outbox', migration: createMailOutbox },
  { name: '20261122160000_create_user_settings', migration: createUserSettings },
  { name: '20261122163000_create_user_groups', migration: createUserGroups },
  { name: '20261130120000_create_login_throttle', migration: createLoginThrottle },
  { name: '20261130120100_create_rate_limits', migration: createRateLimits },
  { name: '20261130120200_create_background_jobs', migration: createBackgroundJobs },
  { name: '20261130220000_create_list_indexes', migration: createListIndexes },
  { name: '20261201100000_create_email_links', migration: createEmailLinks },
  { name: '20261201110000_create_audit_log', migration: createAuditLog },
  { name: '20261201120000_chain_audit_log_after_commit', migration: chainAuditLogAfterCommit },
  { name: '20261207100000_add_name_skeletons', migration: addNameSkeletons },
  { name: '20261207120000_key_audit_chain', migration: keyAuditChain },
  { name: '20261207130000_add_mfa', migration: addMfa },
  { name: '20261207140000_add_passkeys', migration: addPasskeys },
  { name: '20261208090000_add_webhooks', migration: addWebhooks },
  { name: '20261208100000_index_due_deliveries_per_endpoint', migration: indexDueDeliveriesPerEndpoint },
];
