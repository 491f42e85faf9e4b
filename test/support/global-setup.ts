import { createBwrapSandbox, createSrtSandbox } from "../../runtime/sandbox/index.ts";
import { describeMissing, isCi, missingPrerequisites, SANDBOX_PROBLEM_ENV, SRT_PROBLEM_ENV, SRT_TOOLS } from "./prerequisites.ts";

/**
 * Runs once before any test file (`node --test --test-global-setup=…`, see package.json). Missing
 * system tools fail a CI run at once with the fix; on a developer's machine the tests that need them
 * skip with the same reason (prerequisites.ts, `needs`).
 */
export async function globalSetup(): Promise<void> {
  const missing = missingPrerequisites();
  const problems = missing.length ? [describeMissing(missing)] : [];
  if (!missing.some((item) => item.tool === "bwrap")) {
    // Installed is not enough: without user namespaces (a container, Ubuntu 24.04's AppArmor rule)
    // bwrap cannot make a sandbox, and the tests that need one would time out instead of skipping.
    const probe = await createBwrapSandbox({ env: { PATH: process.env.PATH ?? "" } }).probe();
    if (!probe.ok) {
      process.env[SANDBOX_PROBLEM_ENV] = probe.problem; // the test files are started with this environment
      problems.push(probe.problem ?? "bwrap cannot make a sandbox here");
    }
  }
  if (!missing.some((item) => SRT_TOOLS.includes(item.tool)) && !process.env[SANDBOX_PROBLEM_ENV]) {
    // The suites that run against both Linux backends need srt's own prerequisites too.
    const srt = createSrtSandbox({ env: { PATH: process.env.PATH ?? "" } });
    const probe = await srt.probe();
    await srt.close?.();
    if (!probe.ok) {
      process.env[SRT_PROBLEM_ENV] = probe.problem;
      problems.push(`sandbox-runtime (srt): ${probe.problem ?? "cannot make a sandbox here"}`);
    }
  }
  if (problems.length === 0) return;
  const message = problems.join("; ");
  if (isCi()) {
    process.stderr.write(`\nTest prerequisites: ${message}\nCI=true: the run stops here (on a developer's machine those tests would be skipped).\n`);
    process.exit(1); // at once, before any test file starts, and without a stack trace
  }
  process.stderr.write(`\n! Test prerequisites: ${message}\n  The tests that need them are skipped.\n\n`);
}
