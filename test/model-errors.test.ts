import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import type { EventOf } from "../runtime/events.ts";
import { startSession } from "../runtime/loop.ts";
import { createHarness, types, type Harness } from "./support/session.ts";

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

const ok = { content: [{ type: "text" as const, text: "ok" }] };

describe("model errors", () => {
  it("retries 429, 529, 500 and a broken stream with backoff, honouring retry-after", async () => {
    harness = await createHarness({ retries: 5 });
    harness.api.script(
      { error: { status: 429, type: "rate_limit_error", message: "slow down", retryAfter: 7 } },
      { error: { status: 529, type: "overloaded_error", message: "Overloaded" } },
      { error: { status: 500, type: "api_error", message: "boom" } },
      { breakStream: true, content: [{ type: "text", text: "partial" }] },
      ok,
    );
    const result = await startSession(harness.task, harness.deps);
    assert.equal(result.status, "done");
    assert.equal(harness.api.requests.length, 5);
    const retries = (await harness.events()).filter((event): event is EventOf<"model_retry"> => event.type === "model_retry");
    assert.deepEqual(retries.map((retry) => retry.attempt), [1, 2, 3, 4]);
    assert.match(retries[0]!.reason, /rate limiting.*429/);
    assert.match(retries[1]!.reason, /overloaded \(529/);
    assert.match(retries[2]!.reason, /failed \(500: boom\)/);
    assert.match(retries[3]!.reason, /stream .* broke/);
    assert.ok(harness.clock.sleeps[0]! >= 7000, `waited ${harness.clock.sleeps[0]} ms after retry-after: 7`);
    // Exponential backoff (±20% jitter) from 1 s.
    assert.ok(harness.clock.sleeps[1]! >= 1600 && harness.clock.sleeps[1]! <= 2400, `second wait ${harness.clock.sleeps[1]}`);
    assert.ok(harness.clock.sleeps[2]! >= 3200 && harness.clock.sleeps[2]! <= 4800, `third wait ${harness.clock.sleeps[2]}`);
  });

  it("fails the task with a message saying what happened once the retries are spent", async () => {
    harness = await createHarness({ retries: 2 });
    harness.api.respondWith(() => ({ error: { status: 529, type: "overloaded_error", message: "Overloaded" } }));
    const result = await startSession(harness.task, harness.deps);
    assert.equal(result.status, "failed");
    assert.match(result.reason!, /^model request failed: http:\/\/127\.0\.0\.1:\d+ is overloaded \(529: Overloaded\) \(gave up after 3 tries\)$/);
    assert.equal(harness.api.requests.length, 3);
    assert.deepEqual(types(await harness.events()).slice(-1), ["session_end"]);
  });

  it("does not retry a request the endpoint rejects (401), and says which key to check", async () => {
    harness = await createHarness();
    harness.api.script({ error: { status: 401, type: "authentication_error", message: "invalid x-api-key" } });
    const result = await startSession(harness.task, harness.deps);
    assert.equal(result.status, "failed");
    assert.match(result.reason!, /rejected the API key \(401: invalid x-api-key\); check the key in ANTHROPIC_API_KEY/);
    assert.equal(harness.api.requests.length, 1);
  });

  it("abandons a stalled stream after the idle timeout and retries it", async () => {
    harness = await createHarness({ idleTimeoutMs: 60_000 });
    harness.api.script({ stall: true }, ok);
    const clock = harness.clock;
    const api = harness.api;
    // Once the stalled request has arrived, a minute of (fake) silence passes.
    let advanced = false;
    const watcher = setInterval(() => {
      if (api.requests.length === 1 && !advanced) {
        advanced = true;
        clock.advance(60_000);
      }
    }, 5);
    try {
      const result = await startSession(harness.task, harness.deps);
      assert.equal(result.status, "done", result.reason);
    } finally {
      clearInterval(watcher);
    }
    const retry = (await harness.events()).find((event) => event.type === "model_retry") as EventOf<"model_retry">;
    assert.match(retry.reason, /sent nothing for 60 s/);
    assert.equal(harness.api.requests.length, 2);
  });
});
