import type { Schemas } from './api';
import { ActionButton, TableRegion, Time, TableHead } from './ui';

type UserToken = Schemas['UserToken'];

/**
 * API tokens as a table, a Delete button each: the signed-in person's own (the API tokens page)
 * and an administrator's view of a user's. The caller says what the dialog asks and does the delete.
 */
export function TokenTable({
  tokens,
  label,
  busy,
  question,
  onDelete,
}: {
  tokens: UserToken[];
  /** The scrolling region's name ("Your API tokens"). */
  label: string;
  busy?: boolean;
  /** What the confirm dialog asks before `t` is deleted. */
  question: (t: UserToken) => string;
  onDelete: (t: UserToken) => Promise<unknown>;
}) {
  return (
    <TableRegion label={label} busy={busy}>
      <table class="account-table">
        <TableHead columns={['Name', 'Scopes', 'Created', 'Last used', 'Last IP address', 'Expires']} actions />
        <tbody>
          {tokens.map((t) => (
            <tr key={t.name}>
              <th scope="row" class="token-name">
                {t.name}
              </th>
              <td>
                <span class="tags">
                  {t.scopes.map((s) => (
                    <span key={s} class="tag">
                      {s}
                    </span>
                  ))}
                </span>
              </td>
              <td>
                <Time value={t.created} />
              </td>
              <td>
                <Time value={t.last_used} />
              </td>
              <td>{t.last_ipaddr ?? <span class="muted">none</span>}</td>
              <td>
                <Time value={t.expires} />
              </td>
              <td class="row-actions">
                <ActionButton danger label={`Delete token ${t.name}`} busy="Deleting…" confirm={question(t)} confirmLabel="Delete token" onClick={() => onDelete(t)}>
                  Delete
                </ActionButton>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableRegion>
  );
}
