import assert from "node:assert/strict";
import { existsSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { z } from "zod";
import type { EventOf } from "../runtime/events.ts";
import { resumeSession, startSession } from "../runtime/loop.ts";
import { defineTool } from "../runtime/tools/tool.ts";
import { BOT_TOKEN, createHarness, SECRET_KEY, types, type Harness } from "./support/session.ts";
import { needs } from "./support/prerequisites.ts";

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

const text = (value: string) => ({ type: "text" as const, text: value });
const call = (name: string, input: unknown, id?: string) => ({ type: "tool_use" as const, name, input, ...(id ? { id } : {}) });

describe("a session", () => {
  it("runs a multi-tool task end to end and rebuilds the conversation for every request", needs("bwrap", "socat"), async () => {
    harness = await createHarness();
    const { api, deps, task, workdir } = harness;
    api.script(
      { content: [text("I'll write the file."), call("write_file", { path: "notes/hello.txt", content: "hello\nworld\n" })] },
      { content: [call("read_file", { path: "notes/hello.txt" }), call("bash", { command: "wc -l notes/hello.txt && echo done > out.txt" })] },
      { content: [call("edit_file", { path: "notes/hello.txt", old_text: "world", new_text: "there" }), call("search_files", { pattern: "there" }), call("list_files", {})] },
      { content: [text("Wrote notes/hello.txt (2 lines).")] },
    );
    const result = await startSession(task, deps);

    assert.equal(result.status, "done");
    assert.equal(result.answer, "Wrote notes/hello.txt (2 lines).");
    assert.equal(result.turns, 4);
    assert.equal(readFileSync(join(workdir, "notes/hello.txt"), "utf8"), "hello\nthere\n");
    assert.equal(readFileSync(join(workdir, "out.txt"), "utf8"), "done\n");

    const events = await harness.events();
    assert.deepEqual(types(events).filter((type) => type !== "permission"), [
      "session_start",
      "model_response", "tool_start", "tool_end",
      "model_response", "tool_start", "tool_end", "tool_start", "tool_end",
      "model_response", "tool_start", "tool_end", "tool_start", "tool_end", "tool_start", "tool_end",
      "model_response", "session_end",
    ]);
    const ends = events.filter((event): event is EventOf<"tool_end"> => event.type === "tool_end");
    assert.ok(ends.every((end) => !end.is_error), JSON.stringify(ends.filter((end) => end.is_error)));
    assert.match(ends[1]!.output, /1\s+hello/);
    assert.match(ends[2]!.output, /^2 notes\/hello.txt/);
    assert.match(ends[4]!.output, /notes\/hello.txt:2:there/);

    // Each request carries every earlier turn, with results paired to their calls.
    assert.equal(api.requests.length, 4);
    const last = api.requests[3]!.body;
    assert.equal(last.messages.length, 7);
    const results = last.messages[6].content.filter((block: { type: string }) => block.type === "tool_result");
    assert.equal(results.length, 3);
  });

  it("keeps the prefix (tools, identity, memory) byte-identical and marked for caching", async () => {
    harness = await createHarness();
    harness.prefix.memory = "- The user's projects live in ~/code.";
    harness.api.script(
      { content: [call("list_files", {})] },
      { content: [call("list_files", {})] },
      { content: [text("ok")] },
    );
    await startSession(harness.task, harness.deps);
    const prefixes = harness.api.requests.map((request) => JSON.stringify({ system: request.body.system, tools: request.body.tools }));
    assert.equal(new Set(prefixes).size, 1);
    const system = harness.api.requests[0]!.body.system;
    assert.ok(system[0].text.startsWith("# Identity"), "identity comes first");
    assert.match(system[1].text, /^# Memory\n- The user's projects/);
    assert.deepEqual(system.at(-1).cache_control, { type: "ephemeral" });
    // The newest message carries a breakpoint too, so each step reads the conversation from cache.
    const lastMessage = harness.api.requests[1]!.body.messages.at(-1);
    assert.deepEqual(lastMessage.content.at(-1).cache_control, { type: "ephemeral" });
  });

  it("sends a first request under 12 KB for a one-line task with the default identity", async () => {
    harness = await createHarness();
    harness.api.script({ content: [text("ok")] });
    await startSession({ ...harness.task, title: "Say hi", prompt: "Say hi" }, harness.deps);
    const bytes = Buffer.byteLength(harness.api.requests[0]!.rawBody);
    assert.ok(bytes < 12 * 1024, `first request is ${bytes} bytes`);
    const response = (await harness.events()).find((event) => event.type === "model_response") as EventOf<"model_response">;
    assert.ok(response.request_bytes > 0 && response.request_bytes < 12 * 1024);
  });

  it("counts tokens and cost from usage", async () => {
    harness = await createHarness();
    harness.api.script({ content: [text("ok")], usage: { input_tokens: 1000, output_tokens: 500, cache_read_input_tokens: 10_000, cache_creation_input_tokens: 2000 } });
    const result = await startSession(harness.task, harness.deps);
    // claude-sonnet-5-5 at $3 / $15 / $0.30 / $3.75 per million
    const expected = (1000 * 3 + 500 * 15 + 10_000 * 0.3 + 2000 * 3.75) / 1_000_000;
    assert.ok(Math.abs(result.costUsd - expected) < 1e-12, `${result.costUsd} vs ${expected}`);
    const end = (await harness.events()).at(-1) as EventOf<"session_end">;
    assert.deepEqual(end.tokens, { input: 1000, output: 500, cache_read: 10_000, cache_write: 2000 });
  });

  it("turns a thrown tool error, a bad input and an unknown tool into error results the model reads", async () => {
    harness = await createHarness();
    harness.api.script(
      { content: [call("read_file", { path: "missing.txt" }), call("read_file", { path: 42 }), call("launch_rockets", {})] },
      { content: [text("could not")] },
    );
    await startSession(harness.task, harness.deps);
    const results = harness.api.requests[1]!.body.messages.at(-1).content;
    assert.deepEqual(results.map((block: { is_error?: boolean }) => block.is_error), [true, true, true]);
    assert.match(results[0].content, /missing.txt: no such file/);
    assert.match(results[1].content, /Invalid input for read_file: path/);
    assert.match(results[2].content, /no tool named launch_rockets/);
  });
});

describe("file tools", () => {
  it("read outside the workdir but never write there without a yes, through .. and symlinks alike", async () => {
    harness = await createHarness();
    const outside = join(harness.root, "outside.txt");
    writeFileSync(outside, "public notes");
    const { symlinkSync } = await import("node:fs");
    symlinkSync(outside, join(harness.workdir, "link.txt"));
    symlinkSync(join(harness.root, "nowhere.txt"), join(harness.workdir, "dangling.txt"));
    harness.api.script(
      {
        content: [
          call("read_file", { path: "../outside.txt" }),
          call("write_file", { path: "link.txt", content: "x" }),
          call("write_file", { path: outside, content: "x" }),
          call("write_file", { path: "dangling.txt", content: "x" }),
          call("edit_file", { path: "../outside.txt", old_text: "public", new_text: "private" }),
        ],
      },
      { content: [text("blocked")] },
    );
    await startSession(harness.task, harness.deps);
    const [read, ...writes] = harness.api.requests[1]!.body.messages.at(-1).content;
    assert.equal(read.is_error, undefined);
    assert.match(read.content, /public notes/);
    for (const result of writes) {
      assert.equal(result.is_error, true);
      assert.match(result.content, /^Not approved: write .*(outside|nowhere)\.txt \(a write outside the allowed folders\); no one can approve it here/);
    }
    assert.equal(readFileSync(outside, "utf8"), "public notes");
    assert.equal(existsSync(join(harness.root, "nowhere.txt")), false);
  });
});

describe("bash through the session", () => {
  it("is confined: no keys in env, no writes outside the workdir, no network", needs("bwrap", "socat"), async () => {
    harness = await createHarness();
    const { createServer } = await import("node:http");
    const server = createServer((_req, res) => res.end("reached")).listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    const port = (server.address() as { port: number }).port;
    const escape = `/var/tmp/nightshift-escape-${process.pid}.txt`; // /tmp inside the sandbox is a private tmpfs
    harness.api.script(
      {
        content: [
          call("bash", { command: "env" }),
          call("bash", { command: `f=${escape}; echo pwned > $f` }), // in a variable, so the policy cannot see it: the sandbox stops it
          call("bash", { command: `exec 3<>/dev/tcp/127.0.0.1/${port} && echo connected` }),
        ],
      },
      { content: [text("done")] },
    );
    try {
      await startSession(harness.task, harness.deps);
    } finally {
      server.close();
    }
    const [env, write, network] = harness.api.requests[1]!.body.messages.at(-1).content;
    assert.doesNotMatch(env.content, new RegExp(SECRET_KEY));
    assert.doesNotMatch(env.content, new RegExp(BOT_TOKEN));
    assert.doesNotMatch(env.content, /hunter2|ANTHROPIC_API_KEY|TELEGRAM_BOT_TOKEN/);
    assert.match(env.content, /PATH=/);
    assert.equal(write.is_error, true);
    assert.match(write.content, /Read-only file system|Permission denied/);
    assert.equal(existsSync(escape), false);
    assert.equal(network.is_error, true);
    assert.doesNotMatch(network.content, /connected/);
  });

  it("is killed when the session is cancelled", needs("bwrap", "socat"), async () => {
    harness = await createHarness();
    const controller = new AbortController();
    harness.api.script({ content: [call("bash", { command: "sleep 30; echo finished > late.txt" })] });
    harness.deps.emit = (event) => {
      if (event.type === "tool_start") setTimeout(() => controller.abort(new Error("cancelled by the user")), 100);
    };
    const started = Date.now();
    const result = await startSession(harness.task, harness.deps, controller.signal);
    assert.equal(result.status, "cancelled");
    assert.equal(result.reason, "cancelled by the user");
    assert.ok(Date.now() - started < 10_000, "the command did not run to its end");
    const events = await harness.events();
    const end = events.find((event) => event.type === "tool_end") as EventOf<"tool_end">;
    assert.match(end.output, /cancelled/);
    assert.equal(events.at(-1)!.type, "session_end");
    assert.equal(existsSync(join(harness.workdir, "late.txt")), false);
  });
});

describe("budgets", () => {
  it("stops cleanly when the turns run out, after a warning at 80%", async () => {
    harness = await createHarness({ budget: { max_turns: 5 } });
    harness.api.respondWith(() => ({ content: [text("working"), call("list_files", {})] }));
    const result = await startSession(harness.task, harness.deps);
    assert.equal(result.status, "failed");
    assert.match(result.reason!, /used all 5 turns \(budget.max_turns\)/);
    assert.equal(harness.api.requests.length, 5);
    const events = await harness.events();
    const warnings = events.filter((event) => event.type === "budget_warning");
    assert.deepEqual(warnings.map((event) => [event.kind, event.used]), [["turns", 4]]);
    assert.equal(events.at(-1)!.type, "session_end");
  });

  it("stops when the dollars run out", async () => {
    harness = await createHarness({ budget: { max_usd: 0.05 } });
    // 10,000 output tokens at $15 per million: $0.15 a step.
    harness.api.respondWith(() => ({ content: [call("list_files", {})], usage: { input_tokens: 100, output_tokens: 10_000 } }));
    const result = await startSession(harness.task, harness.deps);
    assert.equal(result.status, "failed");
    assert.match(result.reason!, /spent \$0.15 of the \$0.05 budget \(budget.max_usd\)/);
    assert.equal(harness.api.requests.length, 1);
    const warning = (await harness.events()).find((event) => event.type === "budget_warning") as EventOf<"budget_warning">;
    assert.equal(warning.kind, "usd");
  });

  it("stops when today's spending across sessions reaches the daily budget, which counts earlier sessions' logs", async () => {
    harness = await createHarness();
    const { createDailySpend } = await import("../runtime/daily-spend.ts");
    // An earlier session today spent $0.15 (10,000 output tokens at $15 per million).
    harness.api.script({ content: [{ type: "text", text: "earlier" }], usage: { input_tokens: 0, output_tokens: 10_000 } });
    await startSession(harness.task, harness.deps);
    const daily = await createDailySpend({ sessionsDir: join(harness.root, "sessions"), clock: harness.clock, limitUsd: 0.2 });
    assert.ok(Math.abs(daily.spent() - 0.15) < 1e-9, `counted ${daily.spent()}`);
    const { openSessionLog } = await import("../runtime/session-log.ts");
    const log = await openSessionLog(join(harness.root, "sessions", "s2.jsonl"), "s2");
    harness.api.respondWith(() => ({ content: [call("list_files", {})], usage: { input_tokens: 0, output_tokens: 10_000 } }));
    const result = await startSession(harness.task, { ...harness.deps, log, daily });
    await log.close();
    assert.equal(result.status, "failed");
    assert.match(result.reason!, /today's spending reached \$0\.30 of the \$0\.20 daily budget \(budget\.daily_usd\)/);
    assert.equal(result.turns, 1);
  });

  it("keeps each day's spending when the clock steps back across midnight and forward again", async () => {
    harness = await createHarness();
    const { createDailySpend } = await import("../runtime/daily-spend.ts");
    const { openSessionLog } = await import("../runtime/session-log.ts");
    const sessionsDir = join(harness.root, "sessions");
    const clock = harness.clock;
    const afterMidnight = new Date(2026, 10, 25, 0, 0, 30).getTime(); // local time, as the daily budget counts
    const beforeMidnight = new Date(2026, 10, 24, 23, 59, 50).getTime();
    const run = async (id: string) => {
      const log = await openSessionLog(join(sessionsDir, `${id}.jsonl`), id, { now: clock.now });
      try {
        return await startSession(harness!.task, { ...harness!.deps, log, daily });
      } finally {
        await log.close();
      }
    };
    // $0.15 a step (10,000 output tokens at $15 per million), the task going on until stopped.
    harness.api.respondWith(() => ({ content: [call("list_files", {})], usage: { input_tokens: 0, output_tokens: 10_000 } }));
    clock.time = afterMidnight;
    const daily = await createDailySpend({ sessionsDir, clock, limitUsd: 0.2 });
    const first = await run("s2");
    assert.equal(first.turns, 2); // $0.15, then $0.30: over the $0.20
    clock.time = beforeMidnight; // the clock steps back into yesterday, which spent nothing
    assert.equal(daily.spent(), 0);
    clock.time = afterMidnight + 60_000; // and comes forward again: today's $0.30 is still spent
    assert.ok(Math.abs(daily.spent() - 0.3) < 1e-9, `counted ${daily.spent()}`);
    const second = await run("s3");
    assert.equal(second.turns, 0);
    assert.match(second.reason!, /today's spending reached \$0\.30 of the \$0\.20 daily budget/);
  });

  it("counts the day the clock returns to from the logs when it started while the clock was back", async () => {
    harness = await createHarness();
    const { createDailySpend } = await import("../runtime/daily-spend.ts");
    const clock = harness.clock;
    const day25 = new Date(2026, 10, 25, 0, 0, 30).getTime();
    clock.time = day25;
    harness.api.script({ content: [text("done")], usage: { input_tokens: 0, output_tokens: 10_000 } });
    await startSession(harness.task, harness.deps); // $0.15 dated the 25th
    utimesSync(harness.logPath, day25 / 1000, day25 / 1000); // written then, as by a daemon on that clock
    clock.time = new Date(2026, 10, 24, 23, 59, 50).getTime(); // a restart with the clock stepped back
    const daily = await createDailySpend({ sessionsDir: join(harness.root, "sessions"), clock, limitUsd: 0.2 });
    assert.equal(daily.spent(), 0);
    clock.time = day25 + 60_000;
    assert.ok(Math.abs(daily.spent() - 0.15) < 1e-9, `counted ${daily.spent()}`);
  });

  it("counts a day the clock steps back to further than yesterday from the logs", async () => {
    harness = await createHarness();
    const { createDailySpend } = await import("../runtime/daily-spend.ts");
    const clock = harness.clock;
    const day20 = new Date(2026, 10, 20, 15, 0).getTime();
    clock.time = day20;
    harness.api.script({ content: [text("done")], usage: { input_tokens: 0, output_tokens: 10_000 } });
    await startSession(harness.task, harness.deps); // $0.15 dated the 20th
    utimesSync(harness.logPath, day20 / 1000, day20 / 1000);
    clock.time = new Date(2026, 10, 25, 9, 0).getTime();
    const daily = await createDailySpend({ sessionsDir: join(harness.root, "sessions"), clock, limitUsd: 0.2 });
    assert.equal(daily.spent(), 0);
    clock.time = day20 + 60_000; // five days back
    assert.ok(Math.abs(daily.spent() - 0.15) < 1e-9, `counted ${daily.spent()}`);
  });

  it("stops when the wall time runs out, killing the running tool", async () => {
    let clockRef: Harness["clock"] | undefined;
    const slowTool = defineTool({
      name: "wait_for_build",
      description: "waits",
      schema: z.object({}),
      execute: (_input, { signal }) =>
        new Promise<string>((resolve, reject) => {
          signal.addEventListener("abort", () => reject(signal.reason), { once: true });
          clockRef!.advance(11 * 60_000); // the build takes 11 minutes of (fake) time
          void resolve;
        }),
    });
    harness = await createHarness({ tools: [slowTool], budget: { timeout_ms: 10 * 60_000 } });
    clockRef = harness.clock;
    harness.api.script({ content: [call("wait_for_build", {})] });
    const result = await startSession(harness.task, harness.deps);
    assert.equal(result.status, "failed");
    assert.match(result.reason!, /ran out of time \(budget.timeout 10m\)/);
  });
});

describe("a follow-up", () => {
  it("continues a finished session with the earlier turns and the new message", async () => {
    harness = await createHarness();
    harness.api.script({ content: [text("The answer is 4.")] }, { content: [text("Doubled: 8.")] });
    await startSession(harness.task, harness.deps);
    const { continueSession } = await import("../runtime/loop.ts");
    const result = await continueSession("Now double it.", await harness.reopen());
    assert.equal(result.status, "done");
    assert.equal(result.answer, "Doubled: 8.");
    const messages = harness.api.requests[1]!.body.messages;
    assert.deepEqual(messages.map((message: { role: string }) => message.role), ["user", "assistant", "user"]);
    assert.equal(messages[2].content[0].text, "Now double it.");
    assert.deepEqual(types(await harness.events()).filter((type) => type === "session_end").length, 2);
  });
});

describe("resume from a log", () => {
  it("runs the tool calls that never started and reports the started one as interrupted", async () => {
    harness = await createHarness();
    const { openSessionLog } = await import("../runtime/session-log.ts");
    const log = await openSessionLog(join(harness.root, "sessions", "crafted.jsonl"), "crafted");
    const at = harness.clock.now();
    await log.append(
      { type: "session_start", at, task: harness.task },
      {
        type: "model_response", at, turn: 1, model: "claude-sonnet-5-5", stop_reason: "tool_use", cost_usd: 0, latency_ms: 1, request_bytes: 1,
        usage: { input_tokens: 1, output_tokens: 1, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
        content: [
          { type: "tool_use", id: "toolu_a", name: "write_file", input: { path: "a.txt", content: "a" } },
          { type: "tool_use", id: "toolu_b", name: "write_file", input: { path: "b.txt", content: "b" } },
          { type: "tool_use", id: "toolu_c", name: "write_file", input: { path: "c.txt", content: "c" } },
        ],
      },
      { type: "tool_start", at, id: "toolu_a", name: "write_file", input: {} },
      { type: "tool_end", at, id: "toolu_a", name: "write_file", output: "wrote 1 bytes to a.txt", is_error: false, duration_ms: 1 },
      { type: "tool_start", at, id: "toolu_b", name: "write_file", input: {} },
    );
    harness.api.script({ content: [text("resumed")] });
    const result = await resumeSession({ ...harness.deps, log });
    await log.close();
    assert.equal(result.status, "done");
    assert.equal(existsSync(join(harness.workdir, "a.txt")), false, "a finished call is not run again");
    assert.equal(existsSync(join(harness.workdir, "b.txt")), false, "an interrupted call is not run again");
    assert.equal(readFileSync(join(harness.workdir, "c.txt"), "utf8"), "c", "a call that never started runs");
    const results = harness.api.requests[0]!.body.messages.at(-1).content;
    assert.deepEqual(results.map((block: { tool_use_id: string; is_error?: boolean }) => [block.tool_use_id, block.is_error ?? false]), [
      ["toolu_a", false],
      ["toolu_b", true],
      ["toolu_c", false],
    ]);
    assert.match(results[1].content, /interrupted.*may or may not have taken effect/);
  });

  it("ignores a torn last line left by a crash mid-write", async () => {
    harness = await createHarness();
    harness.api.script({ content: [text("first")] });
    await startSession(harness.task, harness.deps);
    const { appendFileSync } = await import("node:fs");
    appendFileSync(harness.logPath, '{"type":"user","at":1,"te');
    assert.equal((await harness.events()).at(-1)!.type, "session_end");
    // Appending after the crash first cuts the torn line, so the log stays readable.
    harness.api.script({ content: [text("second")] });
    const { continueSession } = await import("../runtime/loop.ts");
    const result = await continueSession("again", await harness.reopen());
    assert.equal(result.answer, "second");
    const events = await harness.events();
    assert.deepEqual(types(events).slice(-3), ["user", "model_response", "session_end"]);
  });
});
