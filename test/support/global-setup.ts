import { describeMissing, isCi, missingPrerequisites } from "./prerequisites.ts";

/**
 * Runs once before any test file (`node --test --test-global-setup=…`, see package.json). Missing
 * system tools fail a CI run at once with the fix; on a developer's machine the tests that need them
 * skip with the same reason (prerequisites.ts, `needs`).
 */
export async function globalSetup(): Promise<void> {
  const missing = missingPrerequisites();
  if (missing.length === 0) return;
  const message = describeMissing(missing);
  if (isCi()) {
    process.stderr.write(`\nTest prerequisites ${message}\nCI=true: the run stops here (on a developer's machine those tests would be skipped).\n`);
    process.exit(1); // at once, before any test file starts, and without a stack trace
  }
  process.stderr.write(`\n! Test prerequisites ${message}\n  The tests that need them are skipped.\n\n`);
}
