import crypto from 'node:crypto';
import type { AuditContext } from '../domain/audit';
import { NotFoundError, ValidationError } from '../domain/errors';
import { isUuid } from '../domain/identifiers';
import type { Clock, Page } from '../domain/types';
import { isWebhookEventType, testPayload } from '../domain/webhook-events';
import type { Stores, Transactor } from '../stores';
import type { Delivery, DeliveryStatus, Webhook } from '../stores/webhook-store';
import { checkWebhookUrl, resolveAll, type Resolve, type WebhookUrlPolicy } from '../webhooks/url-rule';
import { decodeTimeCursor, timePageOf } from './cursor';
import type { WebhookSecrets } from './webhook-secrets';

/** How long the old secret signs beside the new one after a rotation (API.md §2.9). */
export const PREVIOUS_SECRET_MS = 24 * 3600_000;

export interface NewWebhookInput {
  url: string;
  events: string[];
  description?: string | null;
  enabled?: boolean;
}

export type WebhookPatch = Partial<NewWebhookInput>;

export class WebhookNotFoundError extends NotFoundError {
  constructor() {
    super('webhook not found');
  }
}

/** A URL as the audit log shows it: without its query (which may carry a receiver's token). */
function shownUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

/**
 * The endpoints system admins register for account events (API.md §2.9), their secrets and their
 * delivery log. The caller is a system admin (x-policy); each change is audited (never with the
 * secret). Deliveries are made by the fan-out (webhooks/fan-out.ts) and sent by the sender.
 */
export class WebhookService {
  constructor(
    private readonly stores: Pick<Stores, 'webhooks'>,
    private readonly transact: Transactor,
    private readonly secrets: WebhookSecrets,
    private readonly clock: Clock,
    private readonly policy: WebhookUrlPolicy,
    /** A delivery was queued (a test, a retry): the sender starts at once. */
    private readonly queued: () => void = () => undefined,
    private readonly resolve: Resolve = resolveAll,
  ) {}

  async list(q: { limit: number; cursor?: string }): Promise<Page<Webhook>> {
    const rows = await this.stores.webhooks.list(q.limit + 1, q.cursor === undefined ? undefined : decodeTimeCursor(q.cursor));
    return timePageOf(rows, q.limit, (w) => ({ time: w.created, id: w.id }));
  }

  async get(id: string): Promise<Webhook> {
    const found = isUuid(id) ? await this.stores.webhooks.find(id.toLowerCase()) : undefined;
    if (!found) throw new WebhookNotFoundError();
    return found;
  }

  /** The new endpoint and its secret (shown this once). */
  async create(ctx: AuditContext, input: NewWebhookInput): Promise<{ webhook: Webhook; secret: string }> {
    const url = await checkWebhookUrl(input.url, this.policy, this.resolve);
    const events = checkEvents(input.events);
    const id = crypto.randomUUID();
    const secret = this.secrets.newSecret();
    const webhook = await this.transact(async (s) => {
      const made = await s.webhooks.insert({
        id,
        url,
        events,
        description: input.description ?? null,
        enabled: input.enabled ?? true,
        secret: this.secrets.seal(secret, id),
        createdBy: ctx.actor?.id ?? null,
        at: this.clock.now(),
      });
      s.audit.add(ctx, { action: 'webhook.created', target: null, summary: { webhook: made.id, url: shownUrl(made.url), events: made.events, enabled: made.enabled } });
      return made;
    });
    return { webhook, secret };
  }

  async update(ctx: AuditContext, id: string, patch: WebhookPatch): Promise<Webhook> {
    const url = patch.url === undefined ? undefined : await checkWebhookUrl(patch.url, this.policy, this.resolve);
    const events = patch.events === undefined ? undefined : checkEvents(patch.events);
    const found = await this.get(id);
    return this.transact(async (s) => {
      const before = await s.webhooks.lock(found.id);
      if (!before) throw new WebhookNotFoundError();
      const after = await s.webhooks.update(before.id, { url, events, description: patch.description, enabled: patch.enabled }, this.clock.now());
      const changes: Record<string, { from: unknown; to: unknown }> = {};
      if (before.url !== after.url) changes.url = { from: shownUrl(before.url), to: shownUrl(after.url) };
      if (before.events.join() !== after.events.join()) changes.events = { from: before.events, to: after.events };
      if (before.description !== after.description) changes.description = { from: before.description, to: after.description };
      if (before.enabled !== after.enabled) changes.enabled = { from: before.enabled, to: after.enabled };
      if (Object.keys(changes).length > 0) s.audit.add(ctx, { action: 'webhook.updated', target: null, summary: { webhook: after.id, changes } });
      return after;
    });
  }

  /** Removes the endpoint and its deliveries, pending ones too. */
  async delete(ctx: AuditContext, id: string): Promise<void> {
    const found = await this.get(id);
    await this.transact(async (s) => {
      if (!(await s.webhooks.remove(found.id))) throw new WebhookNotFoundError();
      s.audit.add(ctx, { action: 'webhook.deleted', target: null, summary: { webhook: found.id, url: shownUrl(found.url) } });
    });
  }

  /** A new secret (shown this once); the old one signs too for 24 hours. */
  async rotate(ctx: AuditContext, id: string): Promise<string> {
    const found = await this.get(id);
    const secret = this.secrets.newSecret();
    await this.transact(async (s) => {
      if (!(await s.webhooks.lock(found.id))) throw new WebhookNotFoundError();
      const now = this.clock.now();
      await s.webhooks.rotate(found.id, this.secrets.seal(secret, found.id), new Date(now.getTime() + PREVIOUS_SECRET_MS), now);
      s.audit.add(ctx, { action: 'webhook.secret_rotated', target: null, summary: { webhook: found.id } });
    });
    return secret;
  }

  /**
   * Queues a `webhook.test` event to this endpoint alone, also when it is disabled: it is sent
   * when the endpoint is enabled (a disabled endpoint's deliveries wait), and shows in its log.
   */
  async test(id: string): Promise<string> {
    const found = await this.get(id);
    const now = this.clock.now();
    const deliveryId = await this.stores.webhooks.enqueue(found.id, crypto.randomUUID(), 'webhook.test', JSON.stringify(testPayload(found.id, now)), now);
    this.queued();
    return deliveryId;
  }

  async deliveries(id: string, q: { limit: number; cursor?: string; status?: DeliveryStatus }): Promise<Page<Delivery>> {
    const found = await this.get(id);
    const rows = await this.stores.webhooks.deliveries(found.id, q.limit + 1, { before: q.cursor === undefined ? undefined : decodeTimeCursor(q.cursor), status: q.status });
    return timePageOf(rows, q.limit, (d) => ({ time: d.created, id: d.id }));
  }

  /** Sends a delivery again now, with its event's id and body (a replay keeps its `webhook-id`). */
  async retry(id: string, deliveryId: string): Promise<void> {
    const found = await this.get(id);
    if (!isUuid(deliveryId) || !(await this.stores.webhooks.retry(found.id, deliveryId.toLowerCase(), this.clock.now()))) throw new NotFoundError('delivery not found');
    this.queued();
  }
}

/** `events`: `["*"]`, or event types, each once (the spec has checked the shape). */
function checkEvents(events: string[]): string[] {
  if (events.includes('*')) {
    if (events.length !== 1) throw new ValidationError('events: "*" stands alone', [{ path: '/body/events', message: '"*" stands alone' }]);
    return ['*'];
  }
  const unknown = events.filter((e) => !isWebhookEventType(e));
  if (unknown.length) throw new ValidationError(`events: unknown event types ${unknown.join(', ')}`, [{ path: '/body/events', message: `unknown: ${unknown.join(', ')}` }]);
  return [...new Set(events)];
}
