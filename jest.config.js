/**
 * Two projects: `unit` (no infrastructure) and `integration` (a real Temporal
 * dev server and a real PostgreSQL, started once per run by global-setup).
 * With ONCEFLOW_TEST_TEMPORAL=cluster the integration project runs against a
 * real Temporal cluster instead (PostgreSQL persistence, 4 shards, four service
 * processes; test/cluster/global-setup.ts), and test/cluster/ joins it.
 * `npm run test:cluster` runs a representative subset that way; it is a second
 * jest run because globalSetup is once per run and both tiers share one env.
 * TypeScript is transformed by @swc/jest; `tsc --noEmit` type-checks separately.
 */
const transform = {
  '^.+\\.(t|j)sx?$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }],
};
// ESM-only packages that jest's CommonJS runtime must transform (Node itself
// loads them through require(esm)).
const esmOnly = ['content-disposition'];
const transformIgnorePatterns = [`/node_modules/(?!(${esmOnly.join('|')})/)`];

const onCluster = process.env.ONCEFLOW_TEST_TEMPORAL === 'cluster';

const common = { testEnvironment: '<rootDir>/test/helpers/node-environment.js', transform, transformIgnorePatterns };

module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/!(unit)/**/*.test.ts'],
      testPathIgnorePatterns: onCluster ? ['/node_modules/'] : ['/node_modules/', '<rootDir>/test/cluster/'],
      globalSetup: onCluster ? '<rootDir>/test/cluster/global-setup.ts' : '<rootDir>/test/helpers/global-setup.ts',
      globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
      setupFiles: ['<rootDir>/test/helpers/jest-env.ts'],
      
    },
  ],
  // Temporal workers and child processes make the default 1-per-core too heavy on 2 cores.
  testTimeout: 120_000,
  maxWorkers: process.env.CI ? 2 : '50%',
};
