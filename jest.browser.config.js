/**
 * The browser suite (`npm run test:browser`): pages of the service in headless Chromium (Debian's
 * `chromium` package, driven by playwright-core; `.ci/run` installs it when missing). Kept out of
 * `npm test` (see testPathIgnorePatterns in package.json). One file at a time.
 */
module.exports = {
  rootDir: __dirname,
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest'] },
  testMatch: ['<rootDir>/test/browser/**/*.test.ts'],
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
  maxWorkers: 1,
  verbose: true,
  testTimeout: 60000,
};
