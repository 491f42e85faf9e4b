import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { openBotStore } from "../bot/store.ts";
import { tempDir } from "./support/home.ts";

let cleanup: (() => void) | undefined;
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
});

describe("the bot's state file", () => {
  it("stays bounded as tasks and approvals accumulate: the oldest are forgotten past 2,000, an open approval never", () => {
    const dir = tempDir();
    cleanup = dir.cleanup;
    const store = openBotStore(dir.path, () => assert.fail("not damaged"));
    store.update((data) => void (data.approvals["open-one"] = { places: [{ chat: 1, message: 1 }], settled: false }));
    // 500 at a time: each update is a durable rewrite of the file.
    for (let batch = 0; batch < 5; batch++) {
      store.update((data) => {
        for (let n = batch * 500; n < (batch + 1) * 500; n++) {
          data.tasks[`task-${n}`] = { chat: 1, request: n, status: { chat: 1, message: n } };
          data.approvals[`asked-${n}`] = { places: [{ chat: 1, message: n }], settled: true };
          store.rememberMessage(data, 1, n, `task-${n}`);
        }
      });
    }
    const saved = JSON.parse(readFileSync(join(dir.path, "bot.json"), "utf8"));
    assert.equal(Object.keys(saved.tasks).length, 2_000);
    assert.ok(saved.tasks["task-2499"] && saved.tasks["task-500"] && !saved.tasks["task-499"]);
    assert.equal(Object.keys(saved.approvals).length, 2_001);
    assert.ok(saved.approvals["open-one"] && saved.approvals["asked-2499"] && !saved.approvals["asked-499"]);
    assert.equal(store.taskOfMessage(1, 2499), "task-2499");
  });
});
