// What both client scenarios read from their environment (BASE_URL, ADMIN_EMAIL, ADMIN_PASSWORD,
// RUN), and the Link header's next page they follow: beside them where
// test/clients/generated-clients.test.ts runs them.

/** A variable the scenario cannot run without. */
export function env(name: string): string {
  const value = process.env[name];
  // The global Error: no generated type shadows it.
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

export const baseUrl = env('BASE_URL');
/** A unique suffix for what the run creates. */
export const run = env('RUN');
export const adminEmail = env('ADMIN_EMAIL');

/** The target of `rel="next"` in a Link header, if any. */
export function nextLink(link: string | null): URL | undefined {
  const match = link?.match(/<([^>]*)>\s*;\s*rel="?next"?/);
  return match ? new URL(match[1], baseUrl) : undefined;
}
