import { fastFormats } from 'ajv-formats/dist/formats';
import { loadApiSpec } from '../../src/api-spec';
import { EMAIL, EMAIL_MAX, isEmail, isName, LOGIN_TOKEN_PREFIX, NAME_MAX, NAME_PATTERN, normalizeName, PAGE_LIMIT, TOKEN_NAME_MAX, TOKEN_NAME_PATTERN, tokenNameProblem, UUID_PATTERN, WEBHOOK_DESCRIPTION_MAX, WEBHOOK_URL_MAX } from '../../src/domain/rules';

type Schema = Record<string, unknown>;
const spec = loadApiSpec() as { components: { schemas: Record<string, Schema>; parameters: Record<string, Schema & { schema: Schema }> } };
const schemas = spec.components.schemas;

describe('one rule per concept: openapi.yaml and domain/rules.ts agree', () => {
  it('on UUIDs', () => {
    expect(schemas.Uuid.pattern).toBe(UUID_PATTERN);
  });

  it('on names, of users and of groups', () => {
    for (const name of ['Name', 'GroupName']) {
      expect([name, schemas[name].pattern, schemas[name].maxLength, schemas[name].minLength]).toEqual([name, NAME_PATTERN, NAME_MAX, 1]);
    }
    expect(isName('ada')).toBe(true);
    for (const bad of ['', ' ada', 'ada ', 'x'.repeat(NAME_MAX + 1), 'a\nb']) expect(isName(bad)).toBe(false);
  });
});

describe('names are handles (issue 18): visible characters only, stored in NFKC form', () => {
  it.each([
    ['zero-width space', 'admin\u200b'],
    ['soft hyphen', 'admin\u00ad'],
    ['zero-width joiner', 'ad\u200dmin'],
    ['right-to-left override', 'admin\u202e'],
    ['right-to-left isolate', '\u2067admin'],
    ['byte order mark', '\ufeffadmin'],
    ['word joiner', 'ad\u2060min'],
    ['Hangul filler (default-ignorable letter)', '\u3164'],
    ['variation selector', 'admin\ufe0f'],
    ['tag character', 'admin\u{e0041}'],
    ['blank Braille pattern', 'admin\u2800'],
    ['tab', 'ad\tmin'],
    ['line break', 'Support: your account is locked.\nRestore it at https://evil.example'],
    ['line separator', 'a\u2028b'],
    ['no-break space', 'ad\u00a0min'],
    ['ideographic space', 'ad\u3000min'],
    ['two spaces', 'ada  lovelace'],
    ['a combining mark first', '\u0301admin'],
    ['a private-use character', 'admin\ue000'],
    ['an unassigned code point', 'admin\u{2fffd}'],
    ['a control character', 'admin\u0007'],
  ])('refuses a name with a %s', (_what, name) => {
    expect(isName(name)).toBe(false);
    expect(new RegExp(NAME_PATTERN, 'u').test(name)).toBe(false);
    expect(normalizeName(name)).toBeUndefined();
  });

  it.each([['ada'], ['ada lovelace'], ['Ada'], ['José'], ['Zoë'], ['名前'], ['Σωκράτης'], ['ada \u{1F600}'], ['o\u0301'], ['Support: see https://example.test']])(
    'takes %j',
    (name) => {
      expect(isName(name)).toBe(true);
      expect(normalizeName(name)).toBe(name.normalize('NFKC'));
    },
  );

  it('stores the NFKC form: fullwidth, ligatures and decomposed accents become the ordinary characters', () => {
    expect(normalizeName('\uff41\uff44\uff4d\uff49\uff4e')).toBe('admin'); // ａｄｍｉｎ
    expect(normalizeName('\ufb01ne')).toBe('fine'); // ﬁne
    expect(normalizeName('Jose\u0301')).toBe('Jos\u00e9');
    expect(normalizeName('\u2460')).toBe('1'); // ①
  });

  it('refuses a name whose NFKC form breaks the rule (a space first, or too long)', () => {
    expect(isName('\u00a8ada')).toBe(true); // ¨ is a letter-like symbol; its NFKC form is a space and a combining diaeresis
    expect(normalizeName('\u00a8ada')).toBeUndefined();
    const long = '\ufdfa'.repeat(NAME_MAX); // one character, 18 once NFKC
    expect(isName(long)).toBe(true);
    expect(normalizeName(long)).toBeUndefined();
  });

  it('on email addresses: the spec’s format is ajv-formats’ fast rule, which is EMAIL', () => {
    expect([schemas.Email.format, schemas.Email.maxLength]).toEqual(['email', EMAIL_MAX]);
    expect(EMAIL.source).toBe((fastFormats.email as RegExp).source);
    expect(EMAIL.flags).toBe((fastFormats.email as RegExp).flags);
    expect(isEmail('ada@example.test')).toBe(true);
    expect(isEmail('not-an-email')).toBe(false);
  });

  it('on page sizes', () => {
    const limit = spec.components.parameters.Limit.schema;
    expect([limit.minimum, limit.maximum, limit.default]).toEqual([1, PAGE_LIMIT.max, PAGE_LIMIT.default]);
  });

  it('on the lengths of a webhook\'s URL and description (the CLI checks them before it opens the database)', () => {
    expect([schemas.WebhookUrl.maxLength, (schemas.NewWebhook.properties as Record<string, Schema>).description.maxLength, (schemas.UpdateWebhook.properties as Record<string, Schema>).description.maxLength]).toEqual([
      WEBHOOK_URL_MAX,
      WEBHOOK_DESCRIPTION_MAX,
      WEBHOOK_DESCRIPTION_MAX,
    ]);
  });

  it('on token names, and the reserved prefix (one rule for the API and both CLIs)', () => {
    expect([schemas.TokenName.pattern, schemas.TokenName.maxLength, schemas.TokenName.minLength]).toEqual([TOKEN_NAME_PATTERN, TOKEN_NAME_MAX, 1]);
    expect(String(schemas.TokenName.description)).toContain(`\`${LOGIN_TOKEN_PREFIX}\``);
    for (const good of ['ci', 'deploy/prod key', '🔑', 'x'.repeat(TOKEN_NAME_MAX)]) expect([good, tokenNameProblem(good)]).toEqual([good, undefined]);
    for (const bad of ['', 'tab\there', 'x'.repeat(TOKEN_NAME_MAX + 1), 'nul\u0000', '\ud800']) expect(tokenNameProblem(bad)).toMatch(/is not a token name \(1 to 100 characters, no control characters\)$/);
    expect(tokenNameProblem(`${LOGIN_TOKEN_PREFIX}x`, 'key')).toBe(`key names starting with ${LOGIN_TOKEN_PREFIX} are reserved`);
  });
});
