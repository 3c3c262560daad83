import type { Logger } from 'pino';
import { SYSTEM, userTarget } from '../domain/audit';
import type { Stores, Transactor } from '../stores';
import type { PasswordHasher } from './password-hasher';

/**
 * ADMIN_EMAIL + ADMIN_PASSWORD: create that admin when no active admin exists; otherwise do
 * nothing. Safe when several instances start at once (the unique email index decides).
 */
export async function bootstrapAdmin(
  transact: Transactor,
  hasher: PasswordHasher,
  log: Logger,
  admin: { email: string; password: string; name: string },
): Promise<'created' | 'exists' | 'skipped'> {
  if (await transact((s: Stores) => s.users.countActiveAdmins()) > 0) return 'exists';
  hasher.checkPolicy(admin.password);
  const passwordHash = await hasher.hash(admin.password);
  try {
    return await transact(async (s) => {
      // Checked again inside the transaction, with the admins' rows locked.
      if ((await s.users.lockActiveAdminIds()).length > 0) return 'exists' as const;
      const user = await s.users.insert({
        name: admin.name,
        email: admin.email,
        firstName: null,
        lastName: null,
        passwordHash,
        isAdmin: true,
        forcePasswordChange: false,
      });
      s.audit.add(
        { ...SYSTEM, userAgent: 'start-up (ADMIN_EMAIL)' },
        { action: 'user.created', target: userTarget(user), summary: { email: user.email, is_admin: true, password_set: true, welcome_mail: false } },
      );
      log.info({ email: admin.email }, 'created the bootstrap admin');
      return 'created' as const;
    });
  } catch (err) {
    if ((err as { code?: string }).code === 'conflict') {
      log.warn({ email: admin.email, name: admin.name }, 'ADMIN_EMAIL or ADMIN_NAME belongs to an existing user; no admin created');
      return 'skipped';
    }
    throw err;
  }
}
