import { z } from 'zod';
import { GROUP_PERMISSIONS, type GroupPermission } from '../domain/groups';
import { EMAIL, EMAIL_MAX, isName, NAME_MAX, NAME_RULE } from '../domain/rules';
import { RpcError } from './errors';

/**
 * Argument schemas of the JSON-RPC methods (zod), on the rules the spec states for REST bodies
 * (domain/rules.ts). RhodeCode's `Optional`: a `null` argument counts as not given, except where
 * a value may be null (personal names). Unknown arguments are ignored, as RhodeCode does.
 */

const chars = (s: string) => [...s].length;
const notGiven = (v: unknown) => (v === null ? undefined : v);

/** A required string argument with a rule, or optional with `.optional()` after. */
const string = (rule?: { max?: number; name?: true; email?: true }) =>
  z
    .string({ error: 'must be a string' })
    .refine((s) => rule?.max === undefined || chars(s) <= rule.max, { error: `must be at most ${rule?.max} characters` })
    .refine((s) => !rule?.name || isName(s), { error: `must be ${NAME_RULE}` })
    .refine((s) => !rule?.email || (s.length <= EMAIL_MAX && EMAIL.test(s)), { error: 'must be an email address' });

export const arg = {
  name: () => string({ name: true }),
  email: () => string({ email: true }),
  text: (max: number) => string({ max }),
  /** A personal name: a string, or null to clear it. */
  personalName: () => z.union([z.null(), string({ max: NAME_MAX })], { error: 'must be a string or null' }).optional(),
  boolean: () => z.boolean({ error: 'must be true or false' }),
  /** A user or a user group: a UUID or a name (RhodeCode's "str or int": a number is read as text). */
  ref: () =>
    z.union([z.string().min(1).max(320), z.number().finite().transform(String)], { error: 'must be an id or a name' }).transform(String),
  permission: () =>
    z.string({ error: 'must be a string' }).superRefine((s, ctx) => {
      if (!(GROUP_PERMISSIONS as readonly string[]).includes(s)) ctx.addIssue({ code: 'custom', message: `permission \`${s}\` does not exist`, params: { whole: true } });
    }) as unknown as z.ZodType<GroupPermission>,
};

/** Optional: absent or null. */
export function optional<T extends z.ZodType>(schema: T) {
  return z.preprocess(notGiven, schema.optional());
}

/** Required: absent or null is RhodeCode's "Missing non optional" error. */
export function required<T extends z.ZodType>(schema: T) {
  return z.preprocess(notGiven, schema);
}

/** Parses a method's arguments, or throws the RpcError RhodeCode would answer. */
export function parseArgs<S extends z.ZodObject>(schema: S, raw: Record<string, unknown>): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const name = String(issue.path[0] ?? '');
  if ((issue as { params?: { whole?: boolean } }).params?.whole) throw new RpcError(issue.message);
  if (raw[name] === undefined || raw[name] === null) throw new RpcError(`Missing non optional \`${name}\` arg in JSON DATA`);
  throw new RpcError(`invalid value for \`${name}\`: ${issue.message}`);
}
