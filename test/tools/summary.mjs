#!/usr/bin/env node
// The closing line of `make test`: jest's tests and the fault suite's scenarios
// counted together as one plain `N passed, N failed, N skipped` line, the form
// CI's landing reads. Written by hand because neither runner can count the
// other's results. A report that is missing counts as one failure: the runner
// that should have written it never finished (a type error stops `npm test`
// before jest runs, a crash stops the fault suite before its table).
//
// Usage: summary.mjs --jest FILE [--jest FILE …] --faults FILE [--faults FILE …]
// (several of each: the dev-server tier and the Temporal cluster tier each
// write their own). The older positional form `summary.mjs JEST FAULTS` still works.
import { readFileSync } from 'node:fs';

const argv = process.argv.slice(2);
const reports = { jest: [], faults: [] };
if (argv.some((a) => a.startsWith('--'))) {
  for (let i = 0; i < argv.length; i += 2) {
    const kind = argv[i].replace(/^--/, '');
    if (!(kind in reports) || argv[i + 1] === undefined) throw new Error(`usage: summary.mjs --jest FILE --faults FILE (got ${argv[i]})`);
    reports[kind].push(argv[i + 1]);
  }
} else {
  reports.jest.push(argv[0]);
  reports.faults.push(argv[1]);
}
let passed = 0;
let failed = 0;
let skipped = 0;

function read(file, what) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    process.stdout.write(`${what}: no report at ${file} (it did not finish)\n`);
    failed += 1;
    return undefined;
  }
}

for (const file of reports.jest) {
  const jest = read(file, 'jest');
  if (!jest) continue;
  passed += jest.numPassedTests;
  failed += jest.numFailedTests + (jest.numRuntimeErrorTestSuites ?? 0);
  skipped += jest.numPendingTests + (jest.numTodoTests ?? 0);
  process.stdout.write(`jest (${file}): ${jest.numPassedTests} passed, ${jest.numFailedTests} failed, ${jest.numPendingTests} skipped` +
    `${jest.numRuntimeErrorTestSuites ? `, ${jest.numRuntimeErrorTestSuites} suites failed to run` : ''}\n`);
}
for (const file of reports.faults) {
  const faults = read(file, 'fault suite');
  if (!faults) continue;
  const held = faults.results.filter((r) => r.violations.length === 0).length;
  passed += held;
  failed += faults.results.length - held;
  process.stdout.write(`fault suite (${file}): ${held} scenarios held, ${faults.results.length - held} broke an invariant\n`);
}
process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exit(failed > 0 ? 1 : 0);
