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
