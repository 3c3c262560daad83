import './admin-groups.css';
import { Fragment, type ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { api, ApiError, ok, page, type Schemas } from '../api';
import { ActionButton, ChoiceGroups, ErrorNote, Field, Form, Page, Placeholder, Time, useLoad, usePager } from '../ui';

type Entry = Schemas['AuditEntry'];
type Action = Schemas['AuditAction'];

/** The actions openapi.yaml lists (AuditAction), grouped as a person scans them. */
const ACTIONS: Array<[string, Action[]]> = [
  ['Users', ['user.created', 'user.updated', 'user.deactivated', 'user.reactivated', 'user.registered', 'user.verified']],
  ['Email', ['email.change_requested', 'email.change_confirmed', 'email.change_reverted']],
  ['Passwords', ['password.changed', 'password.reset_requested', 'password.reset_used', 'password.admin_reset']],
  ['Tokens and sessions', ['token.created', 'token.deleted', 'tokens.revoked', 'session.ended']],
  ['Settings', ['settings.changed']],
  ['Groups', ['group.created', 'group.updated', 'group.deleted', 'group.member_added', 'group.member_removed', 'group.grant_set', 'group.grant_removed']],
  ['Sign-ins', ['login.succeeded', 'login.failed', 'login.throttled']],
  ['Webhooks', ['webhook.created', 'webhook.updated', 'webhook.deleted', 'webhook.secret_rotated']],
];

const PAGE_SIZE = 50;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Filters {
  actor?: string;
  target?: string;
  action?: Action[];
  since?: string;
  until?: string;
}

/** A refusal of ours about one field of the filter form, shown under it as the API's would be. */
function fieldError(field: string, message: string): ApiError {
  return new ApiError(400, { error: message, code: 'validation_failed', request_id: '', details: [{ path: `/query/${field}`, message }] });
}

/** The API filters by id: a user's email (or a group's name, for the target) is looked up first. */
async function resolveId(field: 'actor' | 'target', value: string): Promise<string | undefined> {
  const v = value.trim();
  if (!v) return undefined;
  if (UUID.test(v)) return v.toLowerCase();
  const user = await api.GET('/user/{user}', { params: { path: { user: v } } });
  if (user.data) return user.data.id;
  if (field === 'target') {
    const group = await api.GET('/user_group/{group}', { params: { path: { group: v } } });
    if (group.data) return group.data.id;
    throw fieldError(field, `No user with the email ${v} and no group named ${v}.`);
  }
  throw fieldError(field, `No user with the email ${v}.`);
}

/** `datetime-local` (the browser's time zone) → RFC 3339 UTC. */
function toUtc(field: 'since' | 'until', local: string): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  if (Number.isNaN(d.getTime())) throw fieldError(field, 'is not a date and time');
  return d.toISOString();
}

/** `/admin/audit`: every change, newest first, a sentence each. */
export function AdminAudit(_props: { id?: string }) {
  const [actor, setActor] = useState('');
  const [target, setTarget] = useState('');
  const [actions, setActions] = useState<Set<Action>>(new Set());
  const [since, setSince] = useState('');
  const [until, setUntil] = useState('');
  const [filters, setFilters] = useState<Filters>({});
  const key = JSON.stringify(filters);
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;

  return (
    <Page title="Audit log" wide>
      <p class="muted">Every change to users, passwords, tokens, settings and groups, and every sign-in, newest first. Secrets are never recorded.</p>
      <Verify />
      <Form
        label="Filter the audit log"
        class="filters audit-filters"
        submit="Apply filters"
        busy="Looking up…"
        quiet
        actions={
          <button
            type="button"
            onClick={() => {
              setActor('');
              setTarget('');
              setActions(new Set());
              setSince('');
              setUntil('');
              setFilters({});
            }}
          >
            Clear filters
          </button>
        }
        onSubmit={async () => {
          const [actorId, targetId] = await Promise.all([resolveId('actor', actor), resolveId('target', target)]);
          const from = toUtc('since', since);
          const to = toUtc('until', until);
          if (from && to && from >= to) throw fieldError('until', 'must be later than “Since”');
          const chosen = ACTIONS.flatMap(([, list]) => list).filter((a) => actions.has(a));
          setFilters({ actor: actorId, target: targetId, action: chosen.length ? chosen : undefined, since: from, until: to });
        }}
      >
        <Field name="actor" label="Actor (email or id)" spellcheck={false} value={actor} onValue={setActor} hint="Who made the change." />
        <Field name="target" label="Target (email, group or id)" spellcheck={false} value={target} onValue={setTarget} hint="The user or group changed." />
        <Field name="since" label="Since" type="datetime-local" value={since} onValue={setSince} hint={`From this time on (${zone}).`} />
        <Field name="until" label="Until" type="datetime-local" value={until} onValue={setUntil} hint={`Before this time (${zone}).`} />
        <fieldset class="actions-filter">
          <legend>Actions</legend>
          <details class="actions">
            <summary>{actions.size === 0 ? 'All actions (choose some to narrow)' : `${actions.size} chosen`}</summary>
            <ChoiceGroups name="action" groups={ACTIONS} chosen={actions} onChange={setActions} />
          </details>
        </fieldset>
      </Form>
      <Entries key={key} filters={filters} />
    </Page>
  );
}

/** The entries for one set of filters (a new set starts again at the first page). */
function Entries({ filters }: { filters: Filters }) {
  const pager = usePager([]);
  const { data, error, loading } = useLoad(
    () => page(api.GET('/audit', { params: { query: { limit: PAGE_SIZE, cursor: pager.cursor, ...filters } } })),
    [pager.cursor],
  );
  const filtered = Object.values(filters).some((v) => v !== undefined);
  return (
    <section aria-labelledby="entries-heading" aria-busy={loading}>
      <h2 id="entries-heading">{filtered ? 'Matching entries' : 'Entries'}</h2>
      <ErrorNote error={error} />
      {data === undefined ? (
        <Placeholder rows={10} />
      ) : data.items.length === 0 ? (
        <p class="notice">{filtered ? 'No entry matches these filters.' : 'The log is empty.'}</p>
      ) : (
        <ol class="audit" aria-label="Audit entries">
          {data.items.map((e) => (
            <li key={e.id}>
              <p class="sentence">{sentence(e)}</p>
              <p class="meta">
                <Time value={e.time} seconds />
                <span>
                  <code class="action-name">{e.action}</code>
                </span>
                <span>IP {e.ip ?? 'unknown'}</span>
                {e.request_id && (
                  <span>
                    request <code>{e.request_id}</code>
                  </span>
                )}
              </p>
            </li>
          ))}
        </ol>
      )}
      {data !== undefined && pager.controls(data.next, loading)}
    </section>
  );
}

function Verify() {
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  return (
    <div class="verify">
      <ActionButton
        busy="Verifying…"
        onClick={async () => {
          setResult(null);
          const r = await ok(api.GET('/audit/verify'));
          const pending = r.pending ? ` (${r.pending} newer not chained yet)` : '';
          setResult(
            r.ok
              ? { ok: true, text: `Intact: ${r.rows} rows${pending}.` }
              : { ok: false, text: `Broken (${r.reason}): ${r.detail}${r.broken_at ? ` (entry ${r.broken_at})` : ''}; the ${r.rows} rows before it check out${pending}.` },
          );
        }}
      >
        Verify the log's integrity
      </ActionButton>
      <span class="result" role="status">
        {result && <span class={result.ok ? 'ok' : 'error'}>{result.text}</span>}
      </span>
    </div>
  );
}

// --- Sentences ----------------------------------------------------------------------------------

type Summary = Record<string, unknown>;

const q = (v: unknown) => <span class="quoted">“{show(v)}”</span>;

/** `a, b and c`. */
function joined(items: ComponentChildren[]): ComponentChildren {
  return items.map((item, i) => (
    <Fragment key={i}>
      {i > 0 && (i === items.length - 1 ? ' and ' : ', ')}
      {item}
    </Fragment>
  ));
}

/** A value of a summary as a person reads it. */
function show(v: unknown): string {
  if (v === null || v === undefined || v === '') return 'nothing';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  if (Array.isArray(v)) return v.map(show).join(', ');
  if (typeof v === 'object' && 'name' in v) return String((v as { name: unknown }).name);
  return JSON.stringify(v);
}

/** What is left of a summary not special-cased: `key: value` pairs. */
function compact(summary: Summary): string {
  return Object.entries(summary)
    .map(([k, v]) => `${k.replace(/_/g, ' ')}: ${v !== null && typeof v === 'object' && !Array.isArray(v) && !('name' in v) ? `{${compact(v as Summary)}}` : show(v)}`)
    .join('; ');
}

const FIELDS: Record<string, string> = {
  name: 'name',
  email: 'email',
  first_name: 'first name',
  last_name: 'last name',
  is_admin: 'administrator flag',
  force_password_change: 'forced password change',
  description: 'description',
  active: 'active flag',
  owner: 'owner',
};

function changeList(changes: unknown): ComponentChildren {
  if (!changes || typeof changes !== 'object') return 'something';
  const parts = Object.entries(changes as Record<string, { from?: unknown; to?: unknown }>).map(([k, c]) => (
    <>
      {FIELDS[k] ?? k.replace(/_/g, ' ')} from {q(c?.from)} to {q(c?.to)}
    </>
  ));
  return parts.length ? joined(parts) : 'nothing';
}

/** The webhook a summary names (`webhook`: its id; `url` when the entry has it), linked to its page. */
function webhook(s: Summary): ComponentChildren {
  const id = String(s.webhook ?? '');
  return <a href={`/admin/webhooks/${encodeURIComponent(id)}`}>{typeof s.url === 'string' ? s.url : <code>{id}</code>}</a>;
}

function sentence(e: Entry): ComponentChildren {
  const s = (e.summary ?? {}) as Summary;
  const self = e.actor && e.target && e.actor.id === e.target.id;
  const actor = e.actor ? <strong>{e.actor.name}</strong> : <strong>{e.action.startsWith('login.') || e.action.startsWith('password.reset') ? 'Someone' : 'The service'}</strong>;
  const name = e.target ? (
    e.action === 'group.deleted' ? (
      <strong>{e.target.name}</strong>
    ) : (
      <a href={`/admin/${e.target.type === 'group' ? 'groups' : 'users'}/${encodeURIComponent(e.target.id)}`}>{e.target.name}</a>
    )
  ) : (
    <span class="muted">(no target)</span>
  );
  /** "bob's" or "their" when the actor changed themself. */
  const whose = self ? 'their' : <>{name}’s</>;
  const whom = self ? 'themself' : name;
  const to = s.to as { type?: string; name?: string } | undefined;
  const grantee = to ? (to.type === 'user_group' ? <>the members of group {q(to.name)}</> : <>user {q(to.name)}</>) : 'someone';
  switch (e.action) {
    case 'user.created':
      return (
        <>
          {actor} created user {name} ({show(s.email)}){s.is_admin ? ', a system administrator' : ''}
          {s.welcome_mail ? ', and mailed a link to set a password' : ''}.
        </>
      );
    case 'user.updated':
      return (
        <>
          {actor} changed {whose} {changeList(s.changes)}.
        </>
      );
    case 'user.deactivated':
      return (
        <>
          {actor} deactivated {name} ({show(s.email)}).
        </>
      );
    case 'user.reactivated':
      return (
        <>
          {actor} reactivated {name}
          {s.welcome_mail ? ' and mailed a link to set a password' : ''}.
        </>
      );
    case 'user.registered':
      return (
        <>
          {name} signed up as {show(s.email)}.
        </>
      );
    case 'user.verified':
      return (
        <>
          {name} verified their email address {show(s.email)}.
        </>
      );
    case 'email.change_requested':
      return (
        <>
          {actor} asked to change {whose} email from {q(s.from)} to {q(s.to)};{' '}
          {s.mailed === false
            ? 'nothing mailed (too many requests this hour).'
            : s.address_taken
              ? 'another account has that address: its owner was told, and no link went to it.'
              : 'waiting for the new address to confirm.'}
        </>
      );
    case 'email.change_confirmed':
      return (
        <>
          {name}’s email changed from {q(s.from)} to {q(s.to)} (confirmed by link).
        </>
      );
    case 'email.change_reverted':
      return (
        <>
          {name}’s email change was undone from the old address: back from {q(s.from)} to {q(s.to)}; every token ended
          {s.password_unusable ? ', the password made unusable and a reset link mailed' : ''}.
        </>
      );
    case 'password.changed':
      return s.by === 'self' ? (
        <>
          {name} changed their password{s.was_forced ? ' (as required)' : ''}.
        </>
      ) : s.by === 'operator' ? (
        <>The operator set {name}’s password from the command line.</>
      ) : (
        <>
          {actor} set {whose} password.
        </>
      );
    case 'password.reset_requested':
      return <>Someone asked for a password reset link for {name}.</>;
    case 'password.reset_used':
      return (
        <>
          {name}’s password was set with a mailed {show(s.link)} link.
        </>
      );
    case 'password.admin_reset':
      return (
        <>
          {actor} reset {whose} password{s.link_mailed ? ' and mailed a reset link' : ''}; tokens ended: {show(s.tokens_ended)}.
        </>
      );
    case 'token.created':
      return (
        <>
          {actor} created the API token {q(s.name)}
          {self ? '' : <> for {name}</>} ({show(s.scopes)}).
        </>
      );
    case 'token.deleted':
      return (
        <>
          {actor} deleted {self ? 'their' : whose} API token {q(s.name)}.
        </>
      );
    case 'tokens.revoked': {
      const apiTokens = Array.isArray(s.api_tokens) ? (s.api_tokens as string[]) : [];
      return (
        <>
          {actor} revoked {whose} tokens: {show(s.login_tokens)} login token{s.login_tokens === 1 ? '' : 's'}
          {apiTokens.length ? <> and the API token{apiTokens.length === 1 ? '' : 's'} {joined(apiTokens.map(q))}</> : ''}.
        </>
      );
    }
    case 'session.ended':
      return s.how === 'logout' ? <>{actor} signed out.</> : <>{actor} ended one of {self ? 'their' : whose} sessions.</>;
    case 'settings.changed': {
      const keys = Array.isArray(s.keys) ? (s.keys as string[]) : [];
      const verb = s.op === 'delete' ? 'deleted' : s.op === 'replace' ? 'replaced all of' : 'set';
      return (
        <>
          {actor} {verb} {whose} setting{keys.length === 1 ? '' : 's'} {joined(keys.map(q))}.
        </>
      );
    }
    case 'group.created':
      return (
        <>
          {actor} created group {name}, owned by {show(s.owner)}
          {s.active === false ? ' (inactive)' : ''}.
        </>
      );
    case 'group.updated':
      return (
        <>
          {actor} changed group {name}’s {changeList(s.changes)}.
        </>
      );
    case 'group.deleted':
      return (
        <>
          {actor} deleted group {name}.
        </>
      );
    case 'group.member_added':
      return (
        <>
          {actor} added {q(s.user)} to group {name}.
        </>
      );
    case 'group.member_removed':
      return (
        <>
          {actor} removed {q(s.user)} from group {name}.
        </>
      );
    case 'group.grant_set':
      return (
        <>
          {actor} granted <code>{show(s.permission)}</code> on group {name} to {grantee}.
        </>
      );
    case 'group.grant_removed':
      return (
        <>
          {actor} revoked the grant of {grantee} on group {name}.
        </>
      );
    case 'webhook.created':
      return (
        <>
          {actor} added the webhook {webhook(s)} for {s.events && (s.events as string[]).includes('*') ? 'every event' : joined(((s.events as string[]) ?? []).map((t) => <code key={t}>{t}</code>))}
          {s.enabled === false ? ', disabled' : ''}.
        </>
      );
    case 'webhook.updated':
      return (
        <>
          {actor} changed the webhook {webhook(s)}’s {changeList(s.changes)}.
        </>
      );
    case 'webhook.deleted':
      return (
        <>
          {actor} deleted the webhook to {q(s.url)}.
        </>
      );
    case 'webhook.secret_rotated':
      return (
        <>
          {actor} made a new signing secret for the webhook {webhook(s)} (the old one signs too for 24 hours).
        </>
      );
    case 'login.succeeded':
      return <>{name} signed in.</>;
    case 'login.failed':
      return (
        <>
          A sign-in as {q(s.identifier)} failed
          {s.reason === 'email_unverified' ? ': the email address is not verified yet' : e.target ? ': wrong password' : ': no such account'}.
        </>
      );
    case 'login.throttled':
      return (
        <>
          Sign-ins as {q(s.identifier)} are slowed down after {show(s.failures)} failures in a row.
        </>
      );
    default:
      return (
        <>
          {actor} {(e.action as string).replace(/[._]/g, ' ')} {e.target ? whom : ''}
          {Object.keys(s).length ? `: ${compact(s)}` : ''}.
        </>
      );
  }
}
