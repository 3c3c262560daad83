import type { AuditContext } from '../domain/audit';
import { PAGE_LIMIT } from '../domain/rules';
import type { WebhookService } from '../services/webhook-service';
import type { Command } from './parse-command';

/** What `accounts admin webhook list` shows of an endpoint. */
export interface WebhookRow {
  id: string;
  url: string;
  events: readonly string[];
  enabled: boolean;
  disabledReason: string | null;
}

const COLUMNS = ['id', 'url', 'events', 'enabled', 'disabled_reason'] as const;

/** A cell on one line: control characters (a line break in a reason) shown as a space. */
function cell(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ');
}

/**
 * The endpoints as a table for a terminal: a heading line, then one line each, columns padded to
 * their widest cell and two spaces apart (the last not padded); `-` for no reason. The heading is
 * there when no endpoint is, so a script can always skip one line.
 */
export function webhookTable(rows: readonly WebhookRow[]): string {
  const lines = [
    [...COLUMNS],
    ...rows.map((r) => [r.id, cell(r.url), r.events.join(','), r.enabled ? 'yes' : 'no', r.disabledReason === null ? '-' : cell(r.disabledReason)]),
  ];
  const widths = COLUMNS.map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  return lines.map((l) => l.map((c, i) => (i === l.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}

type WebhookCommand = Extract<Command, { kind: 'webhook' }>;

/**
 * `accounts admin webhook list|add|remove|test`: the API's use cases (WebhookService, the same
 * rules, audit entries and refusals), answered for a terminal. `add` prints the endpoint as JSON
 * with its secret, the only time it is shown (as `create-token` prints a token).
 */
export async function runWebhookTask(command: WebhookCommand, webhooks: WebhookService, ctx: AuditContext, out: NodeJS.WritableStream): Promise<number> {
  switch (command.task) {
    case 'list': {
      const rows: WebhookRow[] = [];
      let cursor: string | undefined;
      do {
        const page = await webhooks.list({ limit: PAGE_LIMIT.max, cursor });
        rows.push(...page.items);
        cursor = page.next ?? undefined;
      } while (cursor !== undefined);
      out.write(webhookTable(rows));
      return 0;
    }
    case 'add': {
      const { webhook, secret } = await webhooks.create(ctx, { url: command.url, events: command.events, description: command.description });
      out.write(`${JSON.stringify({ id: webhook.id, url: webhook.url, events: webhook.events, enabled: webhook.enabled, secret })}\n`);
      return 0;
    }
    case 'remove': {
      const { url } = await webhooks.get(command.id);
      await webhooks.delete(ctx, command.id);
      out.write(`removed webhook ${command.id} (${url}) and its deliveries\n`);
      return 0;
    }
    case 'test': {
      const webhook = await webhooks.get(command.id);
      const delivery = await webhooks.test(command.id);
      out.write(
        `queued a webhook.test event for ${webhook.url} (delivery ${delivery}); ${webhook.enabled ? 'a running service sends it' : 'the endpoint is disabled: it is sent once it is enabled again'}\n`,
      );
      return 0;
    }
  }
}
