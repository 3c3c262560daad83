import type { Request } from 'express';
import type { Delivery, Webhook } from '../../stores/webhook-store';
import type { WebhookService } from '../../services/webhook-service';
import { auditContext } from '../audit-context';
import { body, query } from '../bodies';
import type { Handlers } from '../mount';
import { linkNext, pageQuery } from '../paging';

/** An endpoint as the API shows it: never a secret. */
export function presentWebhook(w: Webhook) {
  return {
    id: w.id,
    url: w.url,
    events: w.events,
    description: w.description,
    enabled: w.enabled,
    created: w.created.toISOString(),
    disabled_reason: w.disabledReason,
  };
}

export function presentDelivery(d: Delivery) {
  return {
    id: d.id,
    event_id: d.eventId,
    type: d.type,
    status: d.status,
    attempts: d.attempts,
    last_status: d.lastStatus,
    last_error: d.lastError,
    next_attempt: d.nextAttempt.toISOString(),
    created: d.created.toISOString(),
    delivered: d.delivered?.toISOString() ?? null,
  };
}

/** Webhook endpoints (API.md §2.9); system admins only (x-policy). */
export function webhookHandlers(webhooks: WebhookService): Handlers {
  const id = (req: Request) => req.params.id as string;
  return {
    listWebhooks: async (req, res) => {
      const q = pageQuery(req);
      const page = await webhooks.list(q);
      linkNext(req, res, page, q.limit);
      res.json(page.items.map(presentWebhook));
    },

    createWebhook: async (req, res) => {
      const { webhook, secret } = await webhooks.create(auditContext(req), body(req, 'createWebhook'));
      res.status(201).location(`/webhook/${webhook.id}`).json({ ...presentWebhook(webhook), secret });
    },

    getWebhook: async (req, res) => {
      res.json(presentWebhook(await webhooks.get(id(req))));
    },

    updateWebhook: async (req, res) => {
      res.json(presentWebhook(await webhooks.update(auditContext(req), id(req), body(req, 'updateWebhook'))));
    },

    deleteWebhook: async (req, res) => {
      await webhooks.delete(auditContext(req), id(req));
      res.status(204).end();
    },

    rotateWebhookSecret: async (req, res) => {
      res.json({ secret: await webhooks.rotate(auditContext(req), id(req)) });
    },

    testWebhook: async (req, res) => {
      await webhooks.test(id(req));
      res.status(202).end();
    },

    listWebhookDeliveries: async (req, res) => {
      const q = pageQuery(req);
      const page = await webhooks.deliveries(id(req), { ...q, status: query(req, 'listWebhookDeliveries').status });
      linkNext(req, res, page, q.limit);
      res.json(page.items.map(presentDelivery));
    },

    retryWebhookDelivery: async (req, res) => {
      await webhooks.retry(id(req), req.params.delivery as string);
      res.status(202).end();
    },
  };
}
