import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { z } from "zod";
import { INTERRUPTED_NOTE } from "../runtime/conversation.ts";
import type { SessionEvent } from "../runtime/events.ts";
import { resumeSession } from "../runtime/loop.ts";
import { openSessionLog, readSessionLog, readSessionLogFrom } from "../runtime/session-log.ts";
import { defineTool } from "../runtime/tools/tool.ts";
import { nightshift } from "./support/cli.ts";
import { tempDir } from "./support/home.ts";
import { createHarness, type Harness } from "./support/session.ts";

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

const text = (value: string) => ({ type: "text" as const, text: value });

/** A tool that counts its runs: a second run of one call is visible. */
function counter() {
  const runs: string[] = [];
  const tool = defineTool({
    name: "count",
    description: "counts",
    schema: z.object({ label: z.string() }),
    execute: async ({ label }) => {
      runs.push(label);
      return `counted ${label}`;
    },
  });
  return { tool, runs };
}

/** A log as the loop writes it up to a turn with these tool calls: session_start, model_response. */
async function turnWith(h: Harness, labels: string[]): Promise<void> {
  const at = h.clock.now();
  const events: SessionEvent[] = [
    { type: "session_start", at, task: h.task },
    {
      type: "model_response", at, turn: 1, model: "claude-sonnet-5-5", stop_reason: "tool_use", cost_usd: 0, latency_ms: 1, request_bytes: 1,
      usage: { input_tokens: 1, output_tokens: 1, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
      content: labels.map((label) => ({ type: "tool_use" as const, id: `toolu_${label}`, name: "count", input: { label } })),
    },
  ];
  await h.deps.log.append(...events);
}

describe("a session log whose last line was cut short", () => {
  it("never runs again a tool call whose tool_start line was cut short, and keeps the cut bytes", async () => {
    const { tool, runs } = counter();
    harness = await createHarness({ tools: [tool] });
    await turnWith(harness, ["a", "b"]);
    // The tool_start of `a` was written short (a full disk returns a short count without an error),
    // so the call ran; the process then died before its tool_end.
    const torn = `{"type":"tool_start","at":${harness.clock.now()},"id":"toolu_a","na`;
    appendFileSync(harness.logPath, torn);
    harness.api.script({ content: [text("checked")] });
    const result = await resumeSession(await harness.reopen());
    assert.equal(result.status, "done");
    assert.deepEqual(runs, [], "neither call ran: the log cannot prove that either did not start");
    const results = harness.api.requests[0]!.body.messages.at(-1).content;
    assert.deepEqual(results.map((block: { content: string }) => block.content), [INTERRUPTED_NOTE, INTERRUPTED_NOTE]);
    assert.ok(readFileSync(harness.logPath, "utf8").includes(`${torn}\n`), "the cut line is kept in the log");
    const events = await readSessionLog(harness.logPath);
    assert.equal(events.filter((event) => event.type === "warning" && event.torn !== undefined).length, 1);
    assert.deepEqual((await readSessionLogFrom(harness.logPath, 0)).events, events, "a reader following the log skips the cut line too");
  });

  it("reports the cut turn's calls as interrupted and runs the next turn's calls", async () => {
    const { tool, runs } = counter();
    harness = await createHarness({ tools: [tool] });
    await turnWith(harness, ["a"]);
    appendFileSync(harness.logPath, '{"type":"tool_st');
    harness.api.script({ content: [{ type: "tool_use", id: "toolu_c", name: "count", input: { label: "c" } }] }, { content: [text("done")] });
    const result = await resumeSession(await harness.reopen());
    assert.equal(result.status, "done");
    assert.deepEqual(runs, ["c"]);
  });
});

describe("a session log whose first event was cut short", () => {
  it("is cut back to its header, so the session starts as new and its session_start is its first event", async () => {
    const dir = tempDir();
    const path = join(dir.path, "s1.jsonl");
    const header = JSON.stringify({ format: "nightshift-session", version: 1, id: "s1", created: new Date(0).toISOString() });
    writeFileSync(path, `${header}\n{"type":"session_start","at":1,"task":{"tit`);
    assert.deepEqual(await readSessionLog(path), [], "nothing was acknowledged: the session never started");
    const log = await openSessionLog(path, "s1");
    assert.equal(log.torn, undefined);
    await log.append({ type: "session_start", at: 2, task: { title: "t" } } as SessionEvent);
    await log.close();
    assert.deepEqual((await readSessionLog(path)).map((event) => event.type), ["session_start"], "a marker before it would hide the start from every reader");
    assert.equal(readFileSync(path, "utf8").split("\n").length, 3);
    dir.cleanup();
  });
});

describe("nightshift status on a damaged session log", () => {
  it("shows the events before the damaged line and names it, instead of an unexpected error", async () => {
    const dir = tempDir();
    try {
      const home = join(dir.path, "home");
      mkdirSync(join(home, "sessions"), { recursive: true });
      writeFileSync(join(home, "config.yaml"), "");
      const task = { title: "Count", prompt: "Count once.", workdir: dir.path, model: "main", budget: { max_turns: 5, max_usd: 1, timeout_ms: 60_000 } };
      const lines = [
        { format: "nightshift-session", version: 1, id: "s1", created: new Date(0).toISOString() },
        { type: "session_start", at: 1_000, task },
        { type: "tool_start", at: 2_000, id: "toolu_a", name: "bash", input: { command: "echo ran" } },
      ].map((line) => JSON.stringify(line));
      // A torn tool_end with the next event glued to it (a short write on a full disk).
      writeFileSync(join(home, "sessions", "s1.jsonl"), `${lines.join("\n")}\n{"type":"tool_end","at":3{"type":"resumed","at":4000,"attempt":1}\n`);
      const status = await nightshift(["status", "s1"], { ...process.env, NIGHTSHIFT_HOME: home });
      assert.equal(status.code, 0, status.stderr);
      assert.doesNotMatch(status.stderr, /a bug/);
      assert.match(status.stdout, /bash/);
      assert.match(status.stdout, /! .*s1\.jsonl:4: damaged line: the session log is damaged there; what follows it is not shown/);
    } finally {
      dir.cleanup();
    }
  });
});
