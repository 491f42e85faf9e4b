import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import type { EventOf } from "../runtime/events.ts";
import { startSession } from "../runtime/loop.ts";
import type { FakeClock } from "./support/fake-clock.ts";
import type { MessagesApi } from "./support/messages-api.ts";
import { createRuntimeHarness } from "./support/runtime-harness.ts";
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

  it("abandons a stalled stream after the configured request timeout and retries it", async () => {
    harness = await createHarness({ requestTimeoutMs: 45_000 });
    harness.api.script({ stall: true }, ok);
    const stalled = passSilence(harness.api, harness.clock, 45_000);
    const result = await startSession(harness.task, harness.deps);
    await stalled;
    assert.equal(result.status, "done", result.reason);
    const retry = (await harness.events()).find((event) => event.type === "model_retry") as EventOf<"model_retry">;
    assert.match(retry.reason, /sent nothing for 45s \(model_retries\.request_timeout\)/);
    assert.equal(harness.api.requests.length, 2);
  });

  it("takes the stall limit from model_retries.request_timeout in config.yaml", async () => {
    const h = await createRuntimeHarness({ config: "model_retries:\n  request_timeout: 20m\n" });
    try {
      h.api.script({ stall: true }, ok);
      const stalled = passSilence(h.api, h.clock, 20 * 60_000);
      const id = h.runtime.newSessionId();
      const result = await h.runtime.start(id, h.task());
      await stalled;
      assert.equal(result.status, "done", result.reason);
      const retry = (await h.events(id)).find((event) => event.type === "model_retry") as EventOf<"model_retry">;
      assert.match(retry.reason, /sent nothing for 20m/);
    } finally {
      await h.close();
    }
  });
});

/**
 * Once the stalled (first) request has arrived, `ms` of fake silence pass. If nothing was retried
 * by then, a much longer silence passes too, so the session ends and the assertions can say why.
 */
async function passSilence(api: MessagesApi, clock: FakeClock, ms: number): Promise<void> {
  const tick = () => new Promise((resolve) => setTimeout(resolve, 5));
  while (api.requests.length < 1) await tick();
  clock.advance(ms);
  for (let i = 0; i < 200 && api.requests.length < 2; i++) await tick();
  if (api.requests.length < 2) clock.advance(10 * ms);
}
