import { fastFormats } from 'ajv-formats/dist/formats';
import { loadApiSpec } from '../../src/api-spec';
import { EMAIL, EMAIL_MAX, isEmail, isName, LOGIN_TOKEN_PREFIX, NAME_MAX, NAME_PATTERN, PAGE_LIMIT, UUID_PATTERN } from '../../src/domain/rules';

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

  it('on the reserved token prefix', () => {
    expect(String(schemas.TokenName.description)).toContain(`\`${LOGIN_TOKEN_PREFIX}\``);
  });
});
