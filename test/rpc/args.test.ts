import { z } from 'zod';
import { NAME_MAX, NAME_RULE } from '../../src/domain/rules';
import { arg, optional, parseArgs, required } from '../../src/rpc/args';
import { RpcError } from '../../src/rpc/errors';
import { RPC_METHODS } from '../../src/rpc/methods';

/** The JSON-RPC argument schemas alone: no app, no database, no HTTP. */

/** What parseArgs makes of `raw`: the parsed arguments, or the RpcError's message. */
function parsed(schema: z.ZodObject, raw: Record<string, unknown>): { ok: unknown } | { error: string } {
  try {
    return { ok: parseArgs(schema, raw) };
  } catch (err) {
    if (!(err instanceof RpcError)) throw err;
    return { error: err.message };
  }
}

const invalid = (name: string, message: string) => ({ error: `invalid value for \`${name}\`: ${message}` });
const missing = (name: string) => ({ error: `Missing non optional \`${name}\` arg in JSON DATA` });
const argsOf = (method: string) => RPC_METHODS[method].args;

describe('parseArgs with required and optional', () => {
  const schema = z.object({ need: required(arg.text(10)), may: optional(arg.text(10)) });

  it('returns the arguments, dropping unknown ones (as RhodeCode ignores them)', () => {
    expect(parsed(schema, { need: 'a', may: 'b', other: 1 })).toEqual({ ok: { need: 'a', may: 'b' } });
  });

  it('answers a required argument absent or null with "Missing non optional"', () => {
    expect(parsed(schema, {})).toEqual(missing('need'));
    expect(parsed(schema, { need: null })).toEqual(missing('need'));
    expect(parsed(schema, { need: undefined })).toEqual(missing('need'));
  });

  it('takes an optional argument null as not given', () => {
    expect(parsed(schema, { need: 'a', may: null })).toEqual({ ok: { need: 'a' } });
    expect(parsed(schema, { need: 'a' })).toEqual({ ok: { need: 'a' } });
  });

  it('answers a wrong value with "invalid value for `name`: why", naming the first argument in the schema\'s order', () => {
    expect(parsed(schema, { need: 1 })).toEqual(invalid('need', 'must be a string'));
    expect(parsed(schema, { need: 'a', may: false })).toEqual(invalid('may', 'must be a string'));
    expect(parsed(schema, { may: 1, need: 2 })).toEqual(invalid('need', 'must be a string'));
  });

  it('tells a missing required argument from a wrong one only by the raw value (empty string is a value)', () => {
    expect(parsed(schema, { need: '' })).toEqual({ ok: { need: '' } });
  });
});

describe('arg: the types', () => {
  const one = (schema: z.ZodType) => z.object({ x: required(schema) });

  it.each<[string, z.ZodType, unknown, unknown]>([
    ['text', arg.text(3), 'abc', 'abc'],
    ['text counts code points, not UTF-16 units', arg.text(3), '😀😀😀', '😀😀😀'],
    ['name', arg.name(), 'Ada Lovelace', 'Ada Lovelace'],
    ['name of NAME_MAX characters', arg.name(), 'x'.repeat(NAME_MAX), 'x'.repeat(NAME_MAX)],
    ['email', arg.email(), 'ada@example.com', 'ada@example.com'],
    ['boolean true', arg.boolean(), true, true],
    ['boolean false', arg.boolean(), false, false],
    ['ref as text', arg.ref(), 'ada', 'ada'],
    ['ref as a number, read as text', arg.ref(), 42, '42'],
    ['ref as a negative fraction', arg.ref(), -1.5, '-1.5'],
    ['permission', arg.permission(), 'usergroup.admin', 'usergroup.admin'],
  ])('accepts %s', (_, schema, value, expected) => {
    expect(parsed(one(schema), { x: value })).toEqual({ ok: { x: expected } });
  });

  const withToString = { toString: () => 'ada' };
  it.each<[string, z.ZodType, unknown, string]>([
    ['text over its length', arg.text(3), 'abcd', 'must be at most 3 characters'],
    ['text over its length in code points', arg.text(3), '😀😀😀😀', 'must be at most 3 characters'],
    ['text as a number', arg.text(3), 1, 'must be a string'],
    ['text as an object with toString', arg.text(3), withToString, 'must be a string'],
    ['text as an array', arg.text(3), ['a'], 'must be a string'],
    ['name with a leading space', arg.name(), ' ada', `must be ${NAME_RULE}`],
    ['name with two inner spaces', arg.name(), 'a  b', `must be ${NAME_RULE}`],
    ['name, empty', arg.name(), '', `must be ${NAME_RULE}`],
    ['name over NAME_MAX', arg.name(), 'x'.repeat(NAME_MAX + 1), `must be ${NAME_RULE}`],
    ['name as a number', arg.name(), 5, 'must be a string'],
    ['name as an object with toString', arg.name(), withToString, 'must be a string'],
    ['email without @', arg.email(), 'ada', 'must be an email address'],
    ['email over 254 characters', arg.email(), `${'x'.repeat(250)}@b.co`, 'must be an email address'],
    ['email as a number', arg.email(), 5, 'must be a string'],
    ['boolean as text', arg.boolean(), 'true', 'must be true or false'],
    ['boolean as a number', arg.boolean(), 1, 'must be true or false'],
    ['ref as a boolean', arg.ref(), true, 'must be an id or a name'],
    ['ref as an object with toString', arg.ref(), withToString, 'must be an id or a name'],
    ['ref as an array', arg.ref(), ['ada'], 'must be an id or a name'],
    ['ref as NaN', arg.ref(), Number.NaN, 'must be an id or a name'],
    ['ref as Infinity', arg.ref(), Number.POSITIVE_INFINITY, 'must be an id or a name'],
    // Not RhodeCode-style: the union's message covers only a wrong type; a string of the wrong length gets zod's own.
    ['ref, empty', arg.ref(), '', 'Too small: expected string to have >=1 characters'],
    ['ref over 320 characters', arg.ref(), 'x'.repeat(321), 'Too big: expected string to have <=320 characters'],
    ['permission as a number', arg.permission(), 5, 'must be a string'],
  ])('refuses %s', (_, schema, value, message) => {
    expect(parsed(one(schema), { x: value })).toEqual(invalid('x', message));
  });

  it('answers an unknown permission with RhodeCode\'s whole message, naming no argument', () => {
    expect(parsed(one(arg.permission()), { x: 'usergroup.root' })).toEqual({ error: 'permission `usergroup.root` does not exist' });
    expect(parsed(one(arg.permission()), { x: 'USERGROUP.READ' })).toEqual({ error: 'permission `USERGROUP.READ` does not exist' });
  });

  describe('personalName: a string, or null to clear it', () => {
    const schema = z.object({ firstname: arg.personalName() });

    it('keeps null (clear) apart from absent (leave)', () => {
      expect(parsed(schema, { firstname: null })).toEqual({ ok: { firstname: null } });
      expect(parsed(schema, {})).toEqual({ ok: {} });
      expect(parsed(schema, { firstname: 'Ada' })).toEqual({ ok: { firstname: 'Ada' } });
    });

    it('takes free text up to NAME_MAX characters (not the name rule)', () => {
      expect(parsed(schema, { firstname: ' Ada  B ' })).toEqual({ ok: { firstname: ' Ada  B ' } });
      expect(parsed(schema, { firstname: 'x'.repeat(NAME_MAX + 1) })).toEqual(invalid('firstname', `must be at most ${NAME_MAX} characters`));
    });

    it('refuses another type', () => {
      expect(parsed(schema, { firstname: 5 })).toEqual(invalid('firstname', 'must be a string or null'));
      expect(parsed(schema, { firstname: false })).toEqual(invalid('firstname', 'must be a string or null'));
    });
  });
});

describe('arg and the text rule (NUL, lone surrogates)', () => {
  const one = (schema: z.ZodType) => z.object({ x: required(schema) });

  it('refuses them in names (the name rule excludes control and surrogate code points) and emails', () => {
    for (const bad of ['a\u0000b', 'ada\ud800', '\udc00ada']) {
      expect(parsed(one(arg.name()), { x: bad })).toEqual(invalid('x', `must be ${NAME_RULE}`));
      expect(parsed(one(arg.email()), { x: `${bad}@example.com` })).toEqual(invalid('x', 'must be an email address'));
    }
  });

  it('lets them through in free text and refs: the HTTP layer refuses such a JSON-RPC body before any method parses it', () => {
    // openapi.yaml's rhodecodeJsonRpc has the default x-invalid-text (validation_failed): src/http/text-rule.ts.
    for (const bad of ['a\u0000b', 'ada\ud800']) {
      expect(parsed(one(arg.text(10)), { x: bad })).toEqual({ ok: { x: bad } });
      expect(parsed(one(arg.ref()), { x: bad })).toEqual({ ok: { x: bad } });
      expect(parsed(z.object({ x: arg.personalName() }), { x: bad })).toEqual({ ok: { x: bad } });
    }
  });
});

describe("each method's argument schema", () => {
  const group = { usergroupid: 'devs' };
  const user = { userid: 'ada' };
  /** Per method: its arguments (required first), and the least it accepts. */
  const SCHEMAS: Record<string, { required: string[]; optional: string[]; least: Record<string, unknown> }> = {
    create_user: {
      required: ['username', 'email'],
      optional: ['password', 'firstname', 'lastname', 'active', 'admin', 'force_password_change'],
      least: { username: 'ada', email: 'ada@example.com' },
    },
    get_user: { required: [], optional: ['userid'], least: {} },
    get_users: { required: [], optional: [], least: {} },
    update_user: { required: ['userid'], optional: ['username', 'email', 'firstname', 'lastname', 'admin', 'active', 'password'], least: user },
    delete_user: { required: ['userid'], optional: [], least: user },
    create_user_group: { required: ['group_name'], optional: ['description', 'owner', 'active'], least: { group_name: 'devs' } },
    get_user_group: { required: ['usergroupid'], optional: [], least: group },
    get_user_groups: { required: [], optional: [], least: {} },
    update_user_group: { required: ['usergroupid'], optional: ['group_name', 'description', 'owner', 'active'], least: group },
    delete_user_group: { required: ['usergroupid'], optional: [], least: group },
    add_user_to_user_group: { required: ['usergroupid', 'userid'], optional: [], least: { ...group, ...user } },
    remove_user_from_user_group: { required: ['usergroupid', 'userid'], optional: [], least: { ...group, ...user } },
    grant_user_permission_to_user_group: { required: ['usergroupid', 'userid', 'perm'], optional: [], least: { ...group, ...user, perm: 'usergroup.read' } },
    revoke_user_permission_from_user_group: { required: ['usergroupid', 'userid'], optional: [], least: { ...group, ...user } },
    grant_user_group_permission_to_user_group: {
      required: ['usergroupid', 'sourceusergroupid', 'perm'],
      optional: [],
      least: { ...group, sourceusergroupid: 'ops', perm: 'usergroup.write' },
    },
    revoke_user_group_permission_from_user_group: { required: ['usergroupid', 'sourceusergroupid'], optional: [], least: { ...group, sourceusergroupid: 'ops' } },
  };

  it('covers every method', () => {
    expect(Object.keys(RPC_METHODS).sort()).toEqual(Object.keys(SCHEMAS).sort());
  });

  describe.each(Object.entries(SCHEMAS))('%s', (method, { required: needed, optional: may, least }) => {
    it('has exactly these arguments', () => {
      expect(Object.keys(argsOf(method).shape).sort()).toEqual([...needed, ...may].sort());
    });

    it('accepts the least, ignoring unknown arguments', () => {
      expect(parsed(argsOf(method), { ...least, apiuser: 'x', unknown_arg: [1] })).toEqual({ ok: least });
    });

    if (needed.length) {
      it.each(needed)('refuses the call without %s, absent or null', (name) => {
        const { [name]: _, ...without } = least;
        expect(parsed(argsOf(method), without)).toEqual(missing(name));
        expect(parsed(argsOf(method), { ...without, [name]: null })).toEqual(missing(name));
      });
    }

    if (may.length) {
      it.each(may)('takes %s as optional', (name) => {
        expect(parsed(argsOf(method), least)).toEqual({ ok: least });
        const nulled = parsed(argsOf(method), { ...least, [name]: null });
        // Personal names keep null (clear); every other optional argument drops it (not given).
        expect(nulled).toEqual({ ok: name === 'firstname' || name === 'lastname' ? { ...least, [name]: null } : least });
      });
    }
  });

  it.each<[string, Record<string, unknown>, ReturnType<typeof parsed>]>([
    ['create_user', { username: 5, email: 'ada@example.com' }, invalid('username', 'must be a string')],
    ['create_user', { username: 'a\tb', email: 'ada@example.com' }, invalid('username', `must be ${NAME_RULE}`)],
    ['create_user', { username: 'ada', email: 'nope' }, invalid('email', 'must be an email address')],
    ['create_user', { username: 'ada', email: 'nope', password: 5 }, invalid('email', 'must be an email address')],
    ['create_user', { username: 'ada', email: 'ada@example.com', password: 'x'.repeat(4097) }, invalid('password', 'must be at most 4096 characters')],
    ['create_user', { username: 'ada', email: 'ada@example.com', admin: 'yes' }, invalid('admin', 'must be true or false')],
    ['create_user', { username: 'ada', email: 'ada@example.com', force_password_change: 0 }, invalid('force_password_change', 'must be true or false')],
    ['create_user', { username: 'ada', email: 'ada@example.com', lastname: 7 }, invalid('lastname', 'must be a string or null')],
    ['get_user', { userid: 42 }, { ok: { userid: '42' } }],
    ['get_user', { userid: null }, { ok: {} }],
    ['get_user', { userid: true }, invalid('userid', 'must be an id or a name')],
    ['update_user', { userid: 'ada', username: null, firstname: null }, { ok: { userid: 'ada', firstname: null } }],
    ['update_user', { userid: 'ada', password: 'x'.repeat(4096) }, { ok: { userid: 'ada', password: 'x'.repeat(4096) } }],
    ['create_user_group', { group_name: 'devs', description: 'x'.repeat(10_001) }, invalid('description', 'must be at most 10000 characters')],
    ['create_user_group', { group_name: 'devs', owner: 7 }, { ok: { group_name: 'devs', owner: '7' } }],
    ['update_user_group', { usergroupid: 3, group_name: ' devs' }, invalid('group_name', `must be ${NAME_RULE}`)],
    ['grant_user_permission_to_user_group', { usergroupid: 'g', userid: 'u', perm: 'repository.read' }, { error: 'permission `repository.read` does not exist' }],
    ['grant_user_group_permission_to_user_group', { usergroupid: 'g', sourceusergroupid: 's', perm: null }, missing('perm')],
  ])('%s %j', (method, raw, expected) => {
    expect(parsed(argsOf(method), raw)).toEqual(expected);
  });
});
