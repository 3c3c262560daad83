/**
 * The fault suite (`npm run test:faults`): the real service as a child process over a throwaway
 * Postgres cluster or an embedded PGlite, with the database stopped, the process killed or
 * terminated under load. Kept out of `npm test` (see testPathIgnorePatterns in package.json).
 * One file at a time: the scenarios measure recovery times and this machine has few cores.
 */
module.exports = {
  rootDir: __dirname,
  testEnvironment: 'node',
  // request-filtering-agent is ESM only: compiled like the tests (Jest on Node 20 cannot require ESM).
  transform: { '^.+\\.ts$': ['@swc/jest'], '/node_modules/request-filtering-agent/.+\\.js$': ['@swc/jest'] },
  transformIgnorePatterns: ['/node_modules/(?!request-filtering-agent/)'],
  testMatch: ['<rootDir>/test/faults/**/*.test.ts'],
  maxWorkers: 1,
  verbose: true,
  testTimeout: 120000,
};
