import './admin-groups.css';
import './admin-webhooks.css';
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from '../../src/domain/webhook-events';
import { api, ok, page, type Schemas } from '../api';
import {
  ActionButton,
  Checkbox,
  ChoiceGroups,
  CopyButton,
  ErrorNote,
  Field,
  Form,
  HintAndError,
  Page,
  Placeholder,
  Select,
  ShownOnce,
  TableHead,
  TableRegion,
  TextArea,
  Time,
  useFieldError,
  useLoad,
  usePager,
} from '../ui';
import { fieldError } from './account';

/**
 * The system administrators' webhooks (API.md §2.9): the endpoints other systems receive account
 * events at, each with its signing secret (shown once, at creation and at rotation), and the log of
 * what was delivered to it. Only the public API routes of §2.9.
 */

type Webhook = Schemas['Webhook'];
type Delivery = Schemas['Delivery'];
type Events = Schemas['WebhookEvents'];
type DeliveryStatus = Delivery['status'];

const PAGE_SIZE = 50;
const webhookPath = (id: string) => `/admin/webhooks/${encodeURIComponent(id)}`;

/** What the event types are about (the part before the dot), as a person scans them. */
const TOPICS: Record<string, string> = {
  user: 'Users',
  email: 'Email',
  password: 'Passwords',
  token: 'Tokens',
  tokens: 'Tokens',
  group: 'Groups',
  mfa: 'Two-factor sign-in',
  webhook: 'Webhooks',
};

/** The event types an endpoint may ask for (the one list, src/domain/webhook-events.ts), grouped by topic. */
const EVENT_GROUPS: Array<[string, WebhookEventType[]]> = (() => {
  const groups = new Map<string, WebhookEventType[]>();
  for (const type of WEBHOOK_EVENT_TYPES) {
    const topic = TOPICS[type.split('.')[0]] ?? 'Other';
    groups.set(topic, [...(groups.get(topic) ?? []), type]);
  }
  return [...groups];
})();

/** An endpoint's events as a person reads them. */
function EventList({ events }: { events: readonly string[] }) {
  if (events.includes('*')) return <span class="tag tag-on">every event</span>;
  return (
    <span class="tags">
      {events.map((e) => (
        <code key={e} class="tag">
          {e}
        </code>
      ))}
    </span>
  );
}

function StatusTag({ webhook }: { webhook: Webhook }) {
  return <span class={`tag${webhook.enabled ? ' tag-on' : ''}`}>{webhook.enabled ? 'Enabled' : 'Disabled'}</span>;
}

/* ------------------------------------------------------------------------------------------------ */
/* The form of an endpoint (create and edit)                                                        */
/* ------------------------------------------------------------------------------------------------ */

interface Draft {
  url: string;
  description: string;
  enabled: boolean;
  /** Every event (`*`), also types added later. */
  all: boolean;
  chosen: Set<WebhookEventType>;
}

function draftOf(w?: Webhook): Draft {
  if (!w) return { url: '', description: '', enabled: true, all: false, chosen: new Set() };
  const all = w.events.includes('*');
  return { url: w.url, description: w.description ?? '', enabled: w.enabled, all, chosen: new Set(all ? [] : (w.events as WebhookEventType[])) };
}

/** The `events` of a request body: `["*"]`, or the chosen types in the list's order; refused when empty. */
function eventsOf(d: Draft): Events {
  if (d.all) return ['*'];
  const events = WEBHOOK_EVENT_TYPES.filter((t) => d.chosen.has(t));
  if (events.length === 0) throw fieldError('events', 'Choose at least one event, or every event.');
  return events;
}

/** The events of a form: every event, or some, in groups; the API's message (or ours) under them. */
function EventsField({ draft, set }: { draft: Draft; set: (d: Partial<Draft>) => void }) {
  const error = useFieldError('events');
  return (
    <fieldset class="events-field" aria-describedby={error ? 'events-error' : undefined}>
      <legend>Events</legend>
      <Checkbox name="all_events" label="Every event (*)" hint="Also the types a later version adds." checked={draft.all} onChecked={(all) => set({ all })} />
      <details class="actions" open={!draft.all}>
        <summary>{draft.all ? 'Or choose some' : draft.chosen.size === 0 ? 'Choose the events to send' : `${draft.chosen.size} chosen`}</summary>
        <ChoiceGroups name="events" groups={EVENT_GROUPS} chosen={draft.chosen} disabled={draft.all} onChange={(chosen) => set({ chosen })} />
      </details>
      <HintAndError id="events" error={error} />
    </fieldset>
  );
}

function WebhookFields({ draft, set }: { draft: Draft; set: (d: Partial<Draft>) => void }) {
  return (
    <>
      <Field
        name="url"
        label="URL"
        type="text"
        required
        spellcheck={false}
        autoComplete="off"
        placeholder="https://example.com/hooks/accounts"
        value={draft.url}
        onValue={(url) => set({ url })}
        hint="Where the events are posted: https, on a public host."
      />
      <TextArea name="description" label="Description" rows={2} value={draft.description} onValue={(description) => set({ description })} />
      <EventsField draft={draft} set={set} />
      <Checkbox
        name="enabled"
        label="Enabled"
        checked={draft.enabled}
        onChecked={(enabled) => set({ enabled })}
        hint="A disabled endpoint is sent nothing; what was queued for it waits until it is enabled again."
      />
    </>
  );
}

function useDraft(w?: Webhook) {
  const [draft, setDraft] = useState<Draft>(() => draftOf(w));
  return { draft, set: (d: Partial<Draft>) => setDraft((old) => ({ ...old, ...d })), reset: (next?: Webhook) => setDraft(draftOf(next)) };
}

/**
 * A new signing secret, shown this once, in a modal dialog (so nothing on the page moves when it
 * comes): it closes only by "I have copied it", not by Escape, so a stray key does not lose it.
 */
function NewSecret({ secret, heading, children, onDone }: { secret: string; heading: string; children?: ComponentChildren; onDone: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    if (!dialog.current?.open) dialog.current?.showModal();
  }, [secret]);
  return (
    <dialog ref={dialog} class="confirm webhook-secret-dialog" aria-labelledby="new-secret-heading" onCancel={(e) => e.preventDefault()}>
      <ShownOnce
        value={secret}
        headingId="new-secret-heading"
        heading={heading}
        actions={
          <>
            <CopyButton text={secret} label="Copy secret" />
            {children}
            <button
              type="button"
              class="primary"
              onClick={() => {
                dialog.current?.close();
                onDone();
              }}
            >
              I have copied it
            </button>
          </>
        }
      >
        <p>
          <strong>Copy it now: it will not be shown again.</strong> The receiver checks each delivery's <code class="inline">webhook-signature</code> with
          it (Standard Webhooks). If you lose it, rotate the secret.
        </p>
        <code class="webhook-secret">{secret}</code>
      </ShownOnce>
    </dialog>
  );
}

/* ------------------------------------------------------------------------------------------------ */
/* The list                                                                                         */
/* ------------------------------------------------------------------------------------------------ */

/** `/admin/webhooks`: every endpoint, a page at a time, and the form that adds one. */
export function AdminWebhooks(_props: { id?: string }) {
  const pager = usePager([]);
  const list = useLoad(() => page(api.GET('/webhook', { params: { query: { limit: PAGE_SIZE, ...(pager.cursor ? { cursor: pager.cursor } : {}) } } })), [pager.cursor]);
  const [created, setCreated] = useState<{ id: string; url: string; secret: string } | null>(null);
  const { draft, set, reset } = useDraft();
  const data = list.data;

  return (
    <Page title="Webhooks" wide>
      <p class="muted">
        Other systems learn what happens to accounts and groups without asking: each endpoint here is sent the events it chose, signed with its
        secret, and retried for about a day (7 more tries) when it does not answer.
      </p>
      {created && (
        <NewSecret secret={created.secret} heading="Signing secret of the new webhook" onDone={() => setCreated(null)}>
          <a class="button" href={webhookPath(created.id)}>
            Open the webhook
          </a>
        </NewSecret>
      )}
      <h2 id="webhooks-list">Endpoints</h2>
      <ErrorNote error={list.error} />
      {data === undefined ? (
        !list.error && <Placeholder rows={4} />
      ) : data.items.length === 0 && pager.pageNumber === 1 ? (
        <p class="notice">No webhooks yet. Add the first one below.</p>
      ) : (
        <TableRegion label="Webhooks" busy={list.loading}>
          <table class="g-table webhooks-table">
            <caption class="visually-hidden">Webhooks, oldest first</caption>
            <TableHead columns={['URL', 'Events', 'Status', 'Description', 'Created']} />
            <tbody>
              {data.items.map((w) => (
                <tr key={w.id}>
                  <td class="webhook-url">
                    <a href={webhookPath(w.id)}>{w.url}</a>
                  </td>
                  <td>
                    <EventList events={w.events} />
                  </td>
                  <td>
                    <StatusTag webhook={w} />
                    {w.disabled_reason && <div class="muted webhook-small">{w.disabled_reason}</div>}
                  </td>
                  <td>{w.description || <span class="muted">—</span>}</td>
                  <td>
                    <Time value={w.created} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableRegion>
      )}
      {data !== undefined && (data.next || pager.pageNumber > 1) && pager.controls(data.next, list.loading)}

      <h2 id="create-webhook">Add a webhook</h2>
      <Form
        label="Add a webhook"
        submit="Add webhook"
        busy="Adding…"
        onSubmit={async () => {
          setCreated(null);
          const events = eventsOf(draft);
          const description = draft.description.trim();
          const made = await ok(api.POST('/webhook', { body: { url: draft.url.trim(), events, enabled: draft.enabled, ...(description ? { description } : {}) } }));
          setCreated({ id: made.id, url: made.url, secret: made.secret });
          reset();
          await list.reload();
        }}
      >
        <WebhookFields draft={draft} set={set} />
      </Form>
    </Page>
  );
}

/* ------------------------------------------------------------------------------------------------ */
/* One endpoint                                                                                     */
/* ------------------------------------------------------------------------------------------------ */

/** `/admin/webhooks/:id`: one endpoint, its actions, its settings and its delivery log. */
export function AdminWebhook({ id }: { id?: string }) {
  const webhookId = id ?? '';
  const { route } = useLocation();
  const loaded = useLoad(() => ok(api.GET('/webhook/{id}', { params: { path: { id: webhookId } } })), [webhookId]);
  const [secret, setSecret] = useState<string | null>(null);
  const [done, setDone] = useState('');
  /** Bumped when something is queued, so the delivery log loads again. */
  const [queued, setQueued] = useState(0);
  const w = loaded.data;
  const back = (
    <p class="webhook-back">
      <a href="/admin/webhooks">← All webhooks</a>
    </p>
  );

  if (!w) {
    return (
      <Page title={loaded.error ? 'Webhook not found' : 'Webhook'} wide>
        {back}
        {loaded.error ? <ErrorNote error={loaded.error} /> : <Placeholder rows={10} />}
      </Page>
    );
  }
  const path = { id: w.id };
  let host = w.url;
  try {
    host = new URL(w.url).host;
  } catch {
    // shown whole
  }

  return (
    <Page title={`Webhook to ${host}`} wide>
      {back}
      <ErrorNote error={loaded.error} />
      {secret && <NewSecret secret={secret} heading="The new signing secret" onDone={() => setSecret(null)} />}
      <dl class="facts">
        <dt>URL</dt>
        <dd class="webhook-url">{w.url}</dd>
        <dt>Events</dt>
        <dd>
          <EventList events={w.events} />
        </dd>
        <dt>Status</dt>
        <dd>
          <StatusTag webhook={w} />
          {w.disabled_reason && <span class="muted"> {w.disabled_reason}</span>}
        </dd>
        <dt>Description</dt>
        <dd>{w.description || <span class="muted">none</span>}</dd>
        <dt>Created</dt>
        <dd>
          <Time value={w.created} />
        </dd>
        <dt>Id</dt>
        <dd class="mono">{w.id}</dd>
      </dl>

      <div class="webhook-actions">
        <ActionButton
          busy={w.enabled ? 'Disabling…' : 'Enabling…'}
          onClick={async () => {
            await ok(api.POST('/webhook/{id}', { params: { path }, body: { enabled: !w.enabled } }));
            setDone(w.enabled ? 'Disabled: nothing is sent to it until it is enabled again.' : 'Enabled.');
            await loaded.reload();
          }}
        >
          {w.enabled ? 'Disable' : 'Enable'}
        </ActionButton>
        <ActionButton
          busy="Queueing…"
          onClick={async () => {
            await ok(api.POST('/webhook/{id}/test', { params: { path } }));
            setDone(`A webhook.test event was queued for this endpoint${w.enabled ? '' : ': it is sent once the endpoint is enabled again'}; see the delivery log below.`);
            setQueued((n) => n + 1);
          }}
        >
          Send a test event
        </ActionButton>
        <ActionButton
          busy="Rotating…"
          confirm="Make a new signing secret? For the next 24 hours every delivery carries signatures by the old and the new secret, so the receiver can switch over; then only the new one signs."
          confirmLabel="Rotate the secret"
          onClick={async () => {
            const made = await ok(api.POST('/webhook/{id}/secret', { params: { path } }));
            setDone('');
            setSecret(made.secret);
          }}
        >
          Rotate the secret
        </ActionButton>
        <ActionButton
          danger
          busy="Deleting…"
          confirm={`Delete the webhook to ${w.url}? Nothing more is sent to it, and its delivery log and pending deliveries go with it. This cannot be undone.`}
          confirmLabel="Delete webhook"
          onClick={async () => {
            await ok(api.DELETE('/webhook/{id}', { params: { path } }));
            route('/admin/webhooks');
          }}
        >
          Delete
        </ActionButton>
      </div>
      <p role="status" class="ok webhook-done">
        {done}
      </p>

      <h2>Settings</h2>
      <EditWebhook key={w.id} webhook={w} saved={loaded.reload} />

      {/* Last: the log grows and shrinks as it loads and filters, and nothing below it moves. */}
      <Deliveries webhook={w} queued={queued} />
    </Page>
  );
}

function EditWebhook({ webhook, saved }: { webhook: Webhook; saved: () => Promise<void> }) {
  const { draft, set, reset } = useDraft(webhook);
  return (
    <Form
      label="Webhook settings"
      submit="Save changes"
      busy="Saving…"
      onSubmit={async () => {
        const body: Schemas['UpdateWebhook'] = {};
        const url = draft.url.trim();
        const description = draft.description.trim();
        const events = eventsOf(draft);
        if (url !== webhook.url) body.url = url;
        if (description !== (webhook.description ?? '')) body.description = description;
        if (events.join(',') !== webhook.events.join(',')) body.events = events;
        if (draft.enabled !== webhook.enabled) body.enabled = draft.enabled;
        if (Object.keys(body).length === 0) return 'Nothing changed.';
        const updated = await ok(api.POST('/webhook/{id}', { params: { path: { id: webhook.id } }, body }));
        reset(updated);
        await saved();
        return 'Saved.';
      }}
    >
      <WebhookFields draft={draft} set={set} />
    </Form>
  );
}

/* ------------------------------------------------------------------------------------------------ */
/* The delivery log                                                                                 */
/* ------------------------------------------------------------------------------------------------ */

const STATUSES: Array<[DeliveryStatus | 'any', string]> = [
  ['any', 'Every status'],
  ['pending', 'Pending'],
  ['delivered', 'Delivered'],
  ['failed', 'Failed'],
];

/** While a shown delivery is due within this long, the log loads again by itself. */
const FOLLOW_MS = 60_000;
const FOLLOW_EVERY_MS = 2_000;

function DeliveryTag({ status }: { status: DeliveryStatus }) {
  return <span class={`tag delivery-${status}${status === 'delivered' ? ' tag-on' : ''}`}>{status}</span>;
}

function Deliveries({ webhook, queued }: { webhook: Webhook; queued: number }) {
  const [status, setStatus] = useState<DeliveryStatus | 'any'>('any');
  const pager = usePager([status]);
  const cursor = pager.cursor;
  const list = useLoad(
    () =>
      page(
        api.GET('/webhook/{id}/delivery', {
          params: { path: { id: webhook.id }, query: { limit: PAGE_SIZE, ...(cursor ? { cursor } : {}), ...(status === 'any' ? {} : { status }) } },
        }),
      ),
    [webhook.id, status, cursor, queued],
  );
  const items = list.data?.items;

  // A delivery due soon is followed: the log loads again every 2 s until it is settled (or later).
  useEffect(() => {
    const soon = items?.some((d) => d.status === 'pending' && new Date(d.next_attempt ?? 0).getTime() - Date.now() < FOLLOW_MS);
    if (!soon || list.loading) return;
    const timer = setTimeout(() => void list.reload(), FOLLOW_EVERY_MS);
    return () => clearTimeout(timer);
  }, [items, list.loading]);

  return (
    <section aria-labelledby="deliveries-heading">
      <h2 id="deliveries-heading">Delivery log</h2>
      <div class="filters webhook-filters" role="search" aria-label="Deliveries">
        <Select name="delivery_status" label="Status" value={status} onValue={(v) => setStatus(v as DeliveryStatus | 'any')} options={STATUSES} />
        <ActionButton busy="Loading…" onClick={list.reload}>
          Refresh
        </ActionButton>
      </div>
      <ErrorNote error={list.error} />
      {items === undefined ? (
        !list.error && <Placeholder rows={3} />
      ) : items.length === 0 && pager.pageNumber === 1 ? (
        <p class="muted">{status === 'any' ? 'Nothing was sent to this endpoint yet.' : `No ${status} delivery.`}</p>
      ) : (
        <TableRegion label="Deliveries" busy={list.loading}>
          <table class="g-table deliveries-table">
            <caption class="visually-hidden">Deliveries to {webhook.url}, newest first</caption>
            <TableHead columns={['Event', 'Status', 'Attempts', 'Last answer', 'Next attempt', 'Created', 'Delivered']} actions />
            <tbody>
              {items.map((d) => (
                <tr key={d.id}>
                  <td>
                    <code>{d.type}</code>
                    <div class="muted webhook-small mono delivery-id">msg_{d.event_id}</div>
                  </td>
                  <td>
                    <DeliveryTag status={d.status} />
                  </td>
                  <td>{d.attempts}</td>
                  <td class="delivery-answer">
                    {d.last_status !== null && d.last_status !== undefined ? <code>{d.last_status}</code> : null}
                    {d.last_error ? <div class="error webhook-small">{d.last_error}</div> : d.last_status == null && <span class="muted">none yet</span>}
                  </td>
                  <td>{d.status === 'pending' ? <Time value={d.next_attempt} seconds /> : <span class="muted">—</span>}</td>
                  <td>
                    <Time value={d.created} seconds />
                  </td>
                  <td>
                    <Time value={d.delivered} empty="not yet" seconds />
                  </td>
                  <td class="row-actions">
                    <ActionButton
                      label={`${d.status === 'pending' ? 'Send now' : 'Send again'}: ${d.type} of ${new Date(d.created).toISOString()}`}
                      busy="Queueing…"
                      onClick={async () => {
                        await ok(api.POST('/webhook/{id}/delivery/{delivery}/retry', { params: { path: { id: webhook.id, delivery: d.id } } }));
                        await list.reload();
                      }}
                    >
                      {d.status === 'pending' ? 'Send now' : 'Send again'}
                    </ActionButton>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableRegion>
      )}
      {list.data !== undefined && (list.data.next || pager.pageNumber > 1) && pager.controls(list.data.next, list.loading)}
    </section>
  );
}
