import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import type { EventOf } from "../runtime/events.ts";
import { startSession } from "../runtime/loop.ts";
import type { Reply } from "./support/messages-api.ts";
import { createHarness, type Harness } from "./support/session.ts";

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

const step = (n: number, inputTokens: number): Reply => ({
  content: [{ type: "text", text: `step ${n}` }, { type: "tool_use", name: "list_files", input: {} }],
  usage: { input_tokens: inputTokens, output_tokens: 50 },
});

/** Main-agent replies in order; summaries for checkpoint requests, told apart by their system prompt. */
function respond(harness: Harness, main: Reply[]) {
  harness.api.respondWith((request) => {
    if (request.body.compaction) return { compaction: { content: "SERVER CHECKPOINT: listed files 4 times" } };
    if (request.body.system?.[0]?.text?.includes("You write checkpoints")) {
      return { content: [{ type: "text", text: "Task: test\nDone: listed files 4 times\nKey facts: none" }], usage: { input_tokens: 900, output_tokens: 40 } };
    }
    return main.shift() ?? { content: [{ type: "text", text: "finished" }] };
  });
}

describe("compaction", () => {
  it("writes a checkpoint when reported usage passes the threshold, then continues from identity + checkpoint + recent turns", async () => {
    harness = await createHarness({ contextWindow: 10_000 }); // threshold 7,000 tokens
    respond(harness, [step(1, 2000), step(2, 3000), step(3, 5000), step(4, 7500)]);
    const { prefix } = harness;
    harness.deps.emit = (event) => {
      if (event.type === "model_response" && event.turn === 4) prefix.identity = "# Identity\nRe-read after compaction.";
    };
    let spentToday = 0;
    harness.deps.daily = { limitUsd: 100, spent: () => spentToday, add: (usd) => void (spentToday += usd) };
    const result = await startSession(harness.task, harness.deps);
    assert.equal(result.status, "done");
    assert.equal(result.answer, "finished");

    const events = await harness.events();
    const checkpoint = events.find((event): event is EventOf<"checkpoint"> => event.type === "checkpoint")!;
    assert.ok(checkpoint, "a checkpoint is in the log");
    assert.ok(checkpoint.cost_usd > 0 && Math.abs(spentToday - result.costUsd) < 1e-9, "the compaction's cost counts in today's spending, like every model call");
    assert.equal(checkpoint.method, "small");
    assert.equal(checkpoint.dropped_turns, 2);
    assert.equal(checkpoint.input_tokens_before, 7500);
    assert.match(checkpoint.summary, /Done: listed files 4 times/);
    assert.ok(events[checkpoint.keep_from]!.type === "model_response");

    const requests = harness.api.requests;
    assert.equal(requests.length, 6); // 4 steps, the summary, the final answer
    const summaryRequest = requests[4]!.body;
    assert.equal(summaryRequest.model, "claude-haiku-5-5");
    assert.match(summaryRequest.messages[0].content, /\[assistant\] step 1/);

    const after = requests[5]!.body;
    assert.equal(after.system[0].text, "# Identity\nRe-read after compaction.");
    assert.equal(prefix.reads, 2);
    assert.match(after.messages[0].content[0].text, /^Task: Test task[\s\S]*<checkpoint>[\s\S]*Done: listed files 4 times/);
    // The two most recent turns stay verbatim, each tool call still paired with its result.
    assert.deepEqual(after.messages.map((message: { role: string }) => message.role), ["user", "assistant", "user", "assistant", "user"]);
    assert.equal(after.messages[1].content[0].text, "step 3");
    assert.equal(after.messages[3].content[0].text, "step 4");
    assert.equal(after.messages.length, 5);
  });

  it("uses the endpoint's server-side compaction when it has one", async () => {
    harness = await createHarness({ contextWindow: 10_000, serverCompaction: true });
    respond(harness, [step(1, 2000), step(2, 8000)]);
    const result = await startSession(harness.task, harness.deps);
    assert.equal(result.status, "done");
    const checkpoint = (await harness.events()).find((event): event is EventOf<"checkpoint"> => event.type === "checkpoint")!;
    assert.equal(checkpoint.method, "server");
    assert.equal(checkpoint.summary, "SERVER CHECKPOINT: listed files 4 times");
    const compactionRequest = harness.api.requests.find((request) => request.body.compaction)!;
    assert.equal(compactionRequest.headers["anthropic-beta"], "compact-2026-09-04");
    assert.match(compactionRequest.body.compaction.instructions, /Pending/);
  });

  it("falls back to the small model when server-side compaction fails", async () => {
    harness = await createHarness({ contextWindow: 10_000, serverCompaction: true, retries: 0 });
    const main = [step(1, 2000), step(2, 8000)];
    harness.api.respondWith((request) => {
      if (request.body.compaction) return { error: { status: 400, type: "invalid_request_error", message: "compaction is not supported" } };
      if (request.body.system?.[0]?.text?.includes("You write checkpoints")) return { content: [{ type: "text", text: "small summary" }] };
      return main.shift() ?? { content: [{ type: "text", text: "finished" }] };
    });
    await startSession(harness.task, harness.deps);
    const events = await harness.events();
    const warning = events.find((event): event is EventOf<"warning"> => event.type === "warning")!;
    assert.match(warning.message, /server-side compaction failed .*compaction is not supported/);
    const checkpoint = events.find((event): event is EventOf<"checkpoint"> => event.type === "checkpoint")!;
    assert.equal(checkpoint.method, "small");
    assert.equal(checkpoint.summary, "small summary");
  });
});
