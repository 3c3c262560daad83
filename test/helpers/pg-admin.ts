/** The template database every Postgres test database is copied from. */
export const TEMPLATE_DB = 'acct_test_template';

/** The server's maintenance connection: the URL's server, its own database. */
export function adminUrl(url: string): string {
  return url;
}
