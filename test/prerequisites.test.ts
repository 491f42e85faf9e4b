import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { describeMissing, isCi, missingPrerequisites } from "./support/prerequisites.ts";

const scratch = mkdtempSync(join(tmpdir(), "nightshift-prereq-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const SETUP = join(import.meta.dirname, "support", "global-setup.ts");
const NEEDS = join(import.meta.dirname, "support", "prerequisites.ts");

describe("test prerequisites", () => {
  test("finds what PATH lacks and names the package that installs it", () => {
    const bin = mkdtempSync(join(scratch, "bin-"));
    writeFileSync(join(bin, "bwrap"), "#!/bin/sh\n");
    chmodSync(join(bin, "bwrap"), 0o755);
    writeFileSync(join(bin, "rg"), "not executable");
    const missing = missingPrerequisites(bin);
    assert.deepEqual(missing.map((item) => item.tool), ["socat", "rg", "chromium-headless-shell"]);
    assert.match(describeMissing(missing), /missing: socat \(.+\), rg \(search_files\), chromium-headless-shell \(the dashboard's browser test\)\. Install with: sudo apt-get install socat ripgrep chromium-headless-shell fonts-liberation$/);
  });

  test("counts CI=true and CI=1 as CI, and CI=false, CI=0 or no CI as a developer's machine", () => {
    assert.equal(isCi({ CI: "true" }), true);
    assert.equal(isCi({ CI: "1" }), true);
    for (const value of ["false", "0", "", undefined]) assert.equal(isCi(value === undefined ? {} : { CI: value }), false, String(value));
  });

  /** A test run of one file with one test that needs bwrap, on a PATH with none of the tools. */
  const run = (ci: boolean, fakeTools: Record<string, string> = {}) => {
    const dir = mkdtempSync(join(scratch, "run-"));
    for (const [tool, script] of Object.entries(fakeTools)) {
      writeFileSync(join(dir, tool), script);
      chmodSync(join(dir, tool), 0o755);
    }
    const file = join(dir, "one.test.ts");
    writeFileSync(file, `import { test } from "node:test";\nimport { needs } from ${JSON.stringify(NEEDS)};\ntest("runs a command in the sandbox", needs("bwrap"), () => {});\ntest("needs nothing", () => {});\n`);
    const env: NodeJS.ProcessEnv = { PATH: dir, HOME: dir, ...(ci ? { CI: "true" } : {}) };
    return spawnSync(process.execPath, ["--test", `--test-global-setup=${SETUP}`, file], { env, encoding: "utf8", cwd: dir });
  };

  test("on a developer's machine the tests that need a missing tool are skipped with the reason and the install command", () => {
    const result = run(false);
    const output = result.stdout + result.stderr;
    assert.equal(result.status, 0, output);
    assert.match(output, /missing: bwrap .*Install with: sudo apt-get install bubblewrap socat ripgrep chromium-headless-shell fonts-liberation/);
    assert.match(output, /ℹ skipped 1/);
    assert.match(output, /ℹ pass 1/);
  });

  test("a bwrap that is installed but cannot make a sandbox here skips those tests with bwrap's own complaint", () => {
    const refuses = "#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n";
    const result = run(false, { bwrap: refuses, socat: "#!/bin/sh\n", rg: "#!/bin/sh\n", "chromium-headless-shell": "#!/bin/sh\n" });
    const output = result.stdout + result.stderr;
    assert.equal(result.status, 0, output);
    assert.match(output, /bubblewrap cannot create namespaces here: bwrap: setting up uid map: Permission denied; enable unprivileged user namespaces/);
    assert.match(output, /ℹ skipped 1/);
  });

  test("a test that needs srt skips with sandbox-runtime's own problem, which the global setup found", () => {
    const dir = mkdtempSync(join(scratch, "srt-"));
    for (const tool of ["bwrap", "socat", "rg"]) {
      writeFileSync(join(dir, tool), "#!/bin/sh\n");
      chmodSync(join(dir, tool), 0o755);
    }
    const file = join(dir, "one.test.ts");
    writeFileSync(file, `import { test } from "node:test";\nimport { needs } from ${JSON.stringify(NEEDS)};\ntest("runs under srt", needs("srt"), () => {});\ntest("runs under bwrap", needs("bwrap"), () => {});\n`);
    const env: NodeJS.ProcessEnv = { PATH: dir, HOME: dir, NIGHTSHIFT_TEST_SRT_PROBLEM: "its seccomp helper cannot make a namespace here" };
    const result = spawnSync(process.execPath, ["--test", file], { env, encoding: "utf8", cwd: dir });
    const output = result.stdout + result.stderr;
    assert.equal(result.status, 0, output);
    assert.match(output, /runs under srt .*# sandbox-runtime \(srt\): its seccomp helper cannot make a namespace here/);
    assert.match(output, /ℹ skipped 1/);
    assert.match(output, /ℹ pass 1/);
  });

  test("under CI=true the run fails at once, naming what is missing", () => {
    const result = run(true);
    const output = result.stdout + result.stderr;
    assert.notEqual(result.status, 0, output);
    assert.match(output, /Test prerequisites: missing: bwrap.*\n.*CI=true: the run stops here/);
    assert.doesNotMatch(output, /ℹ pass 1/);
  });
});
