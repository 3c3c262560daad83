/**
 * The browser suite (`npm run test:browser`): pages of the service in headless Chromium (Debian's
 * `chromium` package, driven by playwright-core; `.ci/run` installs it when missing). Kept out of
 * `npm test` (see testPathIgnorePatterns in package.json). One file at a time.
 */
module.exports = {
  rootDir: __dirname,
  testEnvironment: 'node',
  // request-filtering-agent is ESM only: compiled like the tests (Jest on Node 20 cannot require ESM).
  transform: { '^.+\\.ts$': ['@swc/jest'], '/node_modules/request-filtering-agent/.+\\.js$': ['@swc/jest'] },
  transformIgnorePatterns: ['/node_modules/(?!request-filtering-agent/)'],
  testMatch: ['<rootDir>/test/browser/**/*.test.ts'],
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
  maxWorkers: 1,
  verbose: true,
  testTimeout: 60000,
};
