/**
 * The rules for identifiers and names, each defined once. openapi.yaml states the same patterns
 * (YAML cannot import them): test/domain/rules.test.ts checks that the spec and these agree.
 */

/** A UUID as the service writes them (lowercase); identifiers in paths are matched in any case. */
export const UUID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
export const UUID = new RegExp(UUID_PATTERN, 'i');

/**
 * An email address: the spec's `format: email`, which express-openapi-validator checks with
 * ajv-formats' "fast" rule. The same regular expression, so that every route and method agrees.
 */
export const EMAIL = /^[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;
export const EMAIL_MAX = 254;

/** User and group names: 1 to 255 characters, no white space at either end. */
export const NAME_PATTERN = '^\\S(.*\\S)?$';
export const NAME = new RegExp(NAME_PATTERN, 'u');
export const NAME_MAX = 255;
/** User names no one may take: `me` is the caller in every path. */
export const RESERVED_USER_NAMES: ReadonlySet<string> = new Set(['me']);

/** Token names the service gives login tokens; API tokens may not start so. */
export const LOGIN_TOKEN_PREFIX = 'login_jwt_';

/** Keyset pages: `limit` is 1 to 1000, 100 by default. */
export const PAGE_LIMIT = { default: 100, max: 1000 } as const;

/** A name within the rule (length in characters, as the spec's maxLength counts them). */
export function isName(value: string): boolean {
  return NAME.test(value) && [...value].length <= NAME_MAX;
}

export function isEmail(value: string): boolean {
  return value.length <= EMAIL_MAX && EMAIL.test(value);
}
