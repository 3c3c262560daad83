/**
 * This test run's id (set by globalSetup): the prefix of every Postgres database the run makes,
 * so runs at the same time on one server (CI and a developer's, or two sessions) never drop or
 * copy each other's databases. Base-36 milliseconds, then random hex.
 */
export function testRunId(): string {
  const id = process.env.TEST_RUN_ID;
  if (!id) throw new Error('TEST_RUN_ID is not set: run the tests through jest (globalSetup)');
  return id;
}

/** The template database this run's Postgres test databases are copied from. */
export function templateDb(): string {
  return `acct_test_${testRunId()}_template`;
}

/** The server's maintenance connection: the URL's server, its own database. */
export function adminUrl(url: string): string {
  return url;
}
