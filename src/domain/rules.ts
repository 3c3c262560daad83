import { isText } from './text';

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

/**
 * User and group names are handles (issue 18): 1 to 255 characters of visible text. Refused:
 * control, format (zero-width, soft hyphen, bidi controls), unassigned, private-use and
 * surrogate code points (`\p{C}`), every space but U+0020 and line or paragraph separators
 * (`\p{Z}`), default-ignorable code points (Hangul fillers, variation selectors, ...), the
 * blank Braille pattern U+2800, a combining mark first, and a space first, last or beside
 * another. The service stores a name's NFKC form (`normalizeName`), which must fit the rule too.
 */
export const NAME_PATTERN = '^(?![\\p{M} ])(?:[^\\p{C}\\p{Z}\\p{Default_Ignorable_Code_Point}\\u2800]| (?=[^\\p{C}\\p{Z}\\p{Default_Ignorable_Code_Point}\\u2800]))+$';
export const NAME = new RegExp(NAME_PATTERN, 'u');
export const NAME_MAX = 255;
/** The rule in words, for messages. */
export const NAME_RULE = `1 to ${NAME_MAX} visible characters: no control, format or invisible characters, no white space but single inner spaces`;
/** User names no one may take: `me` is the caller in every path. */
export const RESERVED_USER_NAMES: ReadonlySet<string> = new Set(['me']);

/** Token names the service gives login tokens; API tokens may not start so. */
export const LOGIN_TOKEN_PREFIX = 'login_jwt_';

/** An API token's name (the spec's TokenName): 1 to 100 characters of text, no control characters. */
export const TOKEN_NAME_PATTERN = '^[^\\p{Cc}]+$';
export const TOKEN_NAME_MAX = 100;

/**
 * Why `value` cannot name a new API token, or undefined: the spec's TokenName (which the API's
 * validator applies) and the reserved prefix (which the token service applies). For the CLI,
 * which checks before it sends; `kind` words the message ("token", "key").
 */
export function tokenNameProblem(value: string, kind = 'token'): string | undefined {
  const length = [...value].length;
  if (!isText(value) || length < 1 || length > TOKEN_NAME_MAX || !new RegExp(TOKEN_NAME_PATTERN, 'u').test(value)) {
    return `${JSON.stringify(value)} is not a ${kind} name (1 to ${TOKEN_NAME_MAX} characters, no control characters)`;
  }
  if (value.startsWith(LOGIN_TOKEN_PREFIX)) return `${kind} names starting with ${LOGIN_TOKEN_PREFIX} are reserved`;
  return undefined;
}

/** A webhook's URL and description, at most (the spec's WebhookUrl and NewWebhook's description): for the CLI, which checks before it opens the database. */
export const WEBHOOK_URL_MAX = 2048;
export const WEBHOOK_DESCRIPTION_MAX = 1000;

/** Keyset pages: `limit` is 1 to 1000, 100 by default. */
export const PAGE_LIMIT = { default: 100, max: 1000 } as const;

/** A name within the rule (length in characters, as the spec's maxLength counts them). */
export function isName(value: string): boolean {
  return NAME.test(value) && [...value].length <= NAME_MAX;
}

/**
 * The name as stored: its NFKC form (fullwidth `ａｄｍｉｎ` is `admin`, `ﬁ` is `fi`), when both the
 * name sent and that form are within the rule; undefined otherwise (NFKC may lengthen a name or
 * put a space first).
 */
export function normalizeName(value: string): string | undefined {
  const nfkc = value.normalize('NFKC');
  return isName(value) && isName(nfkc) ? nfkc : undefined;
}

export function isEmail(value: string): boolean {
  return value.length <= EMAIL_MAX && EMAIL.test(value);
}
