import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { it } from "node:test";

/**
 * postgres.js 3.4.9 throws from a timer when a deferred write meets a closed connection, which
 * kills the daemon when the database goes away (scripts/patch-postgres.mjs). The install patches
 * it; this fails when the patch did not take (an install with --ignore-scripts) or when a new
 * release arrives, which is the moment to check whether it fixed the crash itself.
 */
it("uses a postgres.js whose deferred write after a closed connection settles its queries instead of crashing the process", () => {
  const root = join(import.meta.dirname, "..", "node_modules", "postgres");
  const { version } = createRequire(import.meta.url)(join(root, "package.json")) as { version: string };
  assert.equal(version, "3.4.9", "a new postgres.js: check porsager/postgres#1208 and drop or keep scripts/patch-postgres.mjs");
  for (const file of ["src/connection.js", "cjs/src/connection.js"]) {
    const text = readFileSync(join(root, file), "utf8");
    assert.match(text, /function nextWrite\(fn\) \{ \/\* nightshift: guarded nextWrite \*\/\n\s+if \(!socket\) \{/, `${file} is not patched: run npm install (its postinstall patches it)`);
    assert.equal(text.split("chunk = nextWriteTimer = null").length - 1, 4, `${file}: the timer is forgotten at teardown`);
  }
});
