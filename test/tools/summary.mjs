#!/usr/bin/env node
// The closing line of `make test`: jest's tests and the fault suite's scenarios
// counted together as one plain `N passed, N failed, N skipped` line, the form
// CI's landing reads. Written by hand because neither runner can count the
// other's results. A report that is missing counts as one failure: the runner
// that should have written it never finished (a type error stops `npm test`
// before jest runs, a crash stops the fault suite before its table).
import { readFileSync } from 'node:fs';

const [jestReport, faultsReport] = process.argv.slice(2);
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

const jest = read(jestReport, 'jest');
if (jest) {
  passed += jest.numPassedTests;
  failed += jest.numFailedTests + (jest.numRuntimeErrorTestSuites ?? 0);
  skipped += jest.numPendingTests + (jest.numTodoTests ?? 0);
  process.stdout.write(`jest: ${jest.numPassedTests} passed, ${jest.numFailedTests} failed, ${jest.numPendingTests} skipped` +
    `${jest.numRuntimeErrorTestSuites ? `, ${jest.numRuntimeErrorTestSuites} suites failed to run` : ''}\n`);
}
const faults = read(faultsReport, 'fault suite');
if (faults) {
  const held = faults.results.filter((r) => r.violations.length === 0).length;
  passed += held;
  failed += faults.results.length - held;
  process.stdout.write(`fault suite: ${held} scenarios held, ${faults.results.length - held} broke an invariant\n`);
}
process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exit(failed > 0 ? 1 : 0);
