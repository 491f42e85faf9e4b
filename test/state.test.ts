import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { openState } from "../tasks/state.ts";
import { tempDir } from "./support/home.ts";
import { writeV1State } from "./support/state-history.ts";

const NOW = Date.UTC(2026, 11, 2, 9, 0);
let cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function home(): string {
  const dir = tempDir("nightshift-state-", "/var/tmp");
  cleanups.push(dir.cleanup);
  return dir.path;
}

/** Every file in state/: its inode, size and a hash of its bytes. */
function snapshot(dir: string): Map<string, { ino: number; size: number; hash: string }> {
  return new Map(
    readdirSync(dir).map((name) => {
      const path = join(dir, name);
      const stat = statSync(path);
      return [name, { ino: stat.ino, size: stat.size, hash: stat.isFile() ? createHash("sha256").update(readFileSync(path)).digest("hex") : "" }];
    }),
  );
}

describe("the task state with a long history", () => {
  it("changes a task's state without rewriting the 10,000 finished tasks before it", async () => {
    const h = home();
    writeV1State(h, 10_000, NOW);
    const { store } = await openState(h, () => NOW);
    const before = snapshot(join(h, "state"));
    await store.change("hot-task", { state: "running" });
    const after = snapshot(join(h, "state"));
    // The history (every file of a megabyte or more) keeps its file and its bytes; what the change wrote is small.
    for (const [name, was] of before) {
      if (was.size < 1_000_000) continue;
      const now = after.get(name);
      assert.equal(now?.ino, was.ino, `${name} was replaced by a new file`);
      assert.equal(now?.hash, was.hash, `${name} was rewritten`);
    }
    const written = [...after].reduce((sum, [name, now]) => sum + Math.max(0, now.size - (before.get(name)?.size ?? 0)), 0);
    assert.ok(written <= 64 * 1024, `one state change grew state/ by ${written} bytes`);
  });
});
