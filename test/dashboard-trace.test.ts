import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { openSessionLog, type EventOf, type SessionEvent, type Usage } from "../runtime/index.ts";
import type { TaskRecord } from "../tasks/index.ts";
import { send, signedInDashboards, type Setup, taskRecord } from "./support/dashboard.ts";

const XSS = "<script>alert(1)</script>";
const ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;";
const START = Date.parse("2026-11-24T09:00:00Z"); // the fake clock's start

const signedIn = signedInDashboards();

/** A task record as the daemon keeps it (the harness's), from the CLI. */
const task = (id: string, fields: Partial<TaskRecord> = {}): TaskRecord => taskRecord(id, { origin: "cli", ...fields });

function response(turn: number, at: number, latency: number, usage: Partial<Usage>, usd: number): EventOf<"model_response"> {
  const full = { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, ...usage };
  return { type: "model_response", at, turn, model: "claude-test", content: [{ type: "text", text: "ok" }], stop_reason: "tool_use", usage: full, cost_usd: usd, latency_ms: latency, request_bytes: 100 };
}

/** Two model calls around a failing tool call: bars at 0–1 s, 1.1–3.6 s and 4–5 s of a 5 s axis. */
function scriptedLog(): SessionEvent[] {
  return [
    { type: "session_start", at: START, task: task("t1").spec },
    response(1, START + 1000, 1000, { input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 300, cache_creation_input_tokens: 100 }, 0.01),
    { type: "tool_start", at: START + 1100, id: "toolu_1", name: "bash", input: { command: `echo ${XSS}` } },
    { type: "tool_end", at: START + 3600, id: "toolu_1", name: "bash", output: "no", is_error: true, duration_ms: 2500 },
    response(2, START + 5000, 1000, { input_tokens: 100, output_tokens: 50, cache_read_input_tokens: 400 }, 0.02),
  ];
}

/** A specialist's own log, as runtime.ts writes it under sessions/<task>/. */
async function specialistLog(s: Setup, taskId: string, session: string, ...events: SessionEvent[]) {
  const file = await openSessionLog(join(s.home, "sessions", taskId, `${session}.jsonl`), session, { now: () => s.clock.now() });
  await file.append(...events);
  await file.close();
}

interface Row {
  label: string;
  kind: string;
  x: number;
  width: number;
}

function rows(page: string): Row[] {
  return [...page.matchAll(/<li class="call"><p>(.*?)<\/p>\n<svg class="span" viewBox="0 0 1000 10"[^>]*><rect class="track"[^>]*\/><rect class="bar ([^"]+)" x="([\d.]+)" y="0" width="([\d.]+)" height="10"\/><\/svg><\/li>/g)].map((match) => ({
    label: match[1]!,
    kind: match[2]!,
    x: Number(match[3]),
    width: Number(match[4]),
  }));
}

describe("dashboard Trace page", () => {
  it("draws each model and tool call as a row, in the order they started, with its bar placed on a shared time axis", async () => {
    const { s, session } = await signedIn({ tasks: [task("t1")], events: { t1: scriptedLog() } });
    const response = await send(s, "/tasks/t1/trace", { cookie: session });
    assert.equal(response.status, 200);
    const page = await response.text();
    const drawn = rows(page);
    assert.deepEqual(
      drawn.map(({ kind, x, width }) => ({ kind, x, width })),
      [
        { kind: "model", x: 0, width: 200 },
        { kind: "tool error", x: 220, width: 500 },
        { kind: "model", x: 800, width: 200 },
      ],
    );
    assert.equal(drawn[0]!.label, "<strong>Turn 1</strong> · claude-test · 1.0 s · in 100 · out 20 · cache read 300 · written 100 · $0.0100 <span class=\"quiet\">at 0.0 s</span>");
    assert.match(drawn[1]!.label, /^<strong>bash<\/strong> <code>echo .*<\/code> · 2\.5 s · <span class="outcome error">error<\/span> <span class="quiet">at 1\.1 s<\/span>$/);
    assert.match(drawn[2]!.label, /Turn 2.* · out 50 · cache read 400 · written 0 · \$0\.0200 .*at 4\.0 s/);
    assert.match(page, /Calls 1–3 of 3, in the order they started\. The bars share one time axis, from the first drawn call's start \(0 s\) to 5\.0 s\./);
    assert.match(page, /<dt>Model calls<\/dt><dd>2<\/dd>/);
    assert.match(page, /<dt>Tool calls<\/dt><dd>1<\/dd>/);
    assert.match(page, /<dt>Tokens in<\/dt><dd>200<\/dd>/);
    assert.match(page, /<dt>Tokens out<\/dt><dd>70<\/dd>/);
    assert.match(page, /<dt>Cache read \/ written<\/dt><dd>700 \/ 100<\/dd>/);
    assert.match(page, /<dt>Cache hits<\/dt><dd>70%<\/dd>/, "700 read of 1,000 input tokens");
    assert.match(page, /<dt>Cost<\/dt><dd>\$0\.0300<\/dd>/);
    assert.match(page, /<a class="more" href="\/tasks\/t1">Back to the task<\/a>/);
  });

  it("puts the specialists' own model and tool calls in the waterfall, named, and counts their cost apart", async () => {
    const { s, session } = await signedIn({ tasks: [task("t1")], events: { t1: scriptedLog() } });
    await specialistLog(
      s,
      "t1",
      "t1.toolu_1.reviewer",
      { type: "session_start", at: START + 1500, task: { ...task("x").spec, title: "reviewer: ok?", parent: { session: "t1", specialist: "reviewer" } } },
      response(1, START + 2500, 500, { input_tokens: 50, output_tokens: 10 }, 0.05),
      { type: "tool_start", at: START + 2600, id: "toolu_9", name: "read_file", input: { path: "notes.txt" } },
      { type: "tool_end", at: START + 2700, id: "toolu_9", name: "read_file", output: "hi", is_error: false, duration_ms: 100 },
    );
    const page = await (await send(s, "/tasks/t1/trace", { cookie: session })).text();
    const drawn = rows(page);
    assert.deepEqual(drawn.map((row) => row.kind), ["model", "tool error", "model specialist", "tool specialist", "model"]);
    assert.match(drawn[2]!.label, /^<strong>Turn 1<\/strong> · <span class="who">reviewer<\/span> · claude-test · 0\.5 s · in 50/);
    assert.deepEqual({ x: drawn[2]!.x, width: drawn[2]!.width }, { x: 400, width: 100 });
    assert.match(drawn[3]!.label, /^<strong>read_file<\/strong> · <span class="who">reviewer<\/span> <code>notes\.txt<\/code> · 0\.1 s/);
    assert.match(page, /<dt>Model calls<\/dt><dd>3<\/dd>/);
    assert.match(page, /<dt>Cost<\/dt><dd>\$0\.0800 \(specialists \$0\.0500\)<\/dd>/);
  });

  it("draws a tool call still running to now, and one a stopped task never finished as a point", async () => {
    const events: SessionEvent[] = [
      { type: "session_start", at: START, task: task("r1").spec },
      response(1, START + 1000, 1000, { input_tokens: 10 }, 0.01),
      { type: "tool_start", at: START + 1000, id: "toolu_1", name: "bash", input: { command: "sleep 60" } },
    ];
    const { s, session } = await signedIn({ tasks: [task("r1", { state: "running" }), task("r2", { state: "failed" })], events: { r1: events, r2: events } });
    s.clock.advance(4000);
    const running = rows(await (await send(s, "/tasks/r1/trace", { cookie: session })).text());
    assert.deepEqual(running.map(({ kind, x, width }) => ({ kind, x, width })), [{ kind: "model", x: 0, width: 250 }, { kind: "tool running", x: 250, width: 750 }]);
    assert.match(running[1]!.label, /<code>sleep 60<\/code> · running/);
    const stopped = rows(await (await send(s, "/tasks/r2/trace", { cookie: session })).text());
    assert.deepEqual(stopped.map(({ kind, width }) => ({ kind, width })), [{ kind: "model", width: 1000 }, { kind: "tool unfinished", width: 2 }]);
  });

  it("escapes tool names and inputs", async () => {
    const events: SessionEvent[] = [
      { type: "session_start", at: START, task: task("t1").spec },
      { type: "tool_start", at: START + 10, id: "toolu_1", name: XSS, input: { command: XSS, other: `"><img src=x onerror=alert(1)>` } },
      { type: "tool_end", at: START + 20, id: "toolu_1", name: XSS, output: XSS, is_error: false, duration_ms: 10 },
    ];
    const { s, session } = await signedIn({ tasks: [task("t1", { title: XSS })], events: { t1: events } });
    const page = await (await send(s, "/tasks/t1/trace", { cookie: session })).text();
    assert.ok(!page.includes(XSS), "no raw script from the log");
    assert.ok(!/<script|<img/i.test(page.replace(`<script src="/assets/live.js" defer></script>`, "")), "no element from the log");
    assert.ok(page.includes(`<strong>${ESCAPED}</strong>`), "the tool's name, escaped");
    assert.ok(page.includes("&lt;img src=x onerror=alert(1)&gt;"), "the input, escaped");
    assert.ok(page.includes(`<h1>Trace: ${ESCAPED}</h1>`), "the title, escaped");
  });

  it("draws the last 100 calls of a 5,000-event log, totals all of them, and 'load earlier' draws the 100 before", async () => {
    const events: SessionEvent[] = [];
    for (let turn = 1; turn <= 1250; turn++) {
      const at = START + turn * 10_000;
      events.push(
        response(turn, at, 1000, { input_tokens: 10, output_tokens: 1 }, 0.001),
        { type: "tool_start", at: at + 100, id: `toolu_${turn}`, name: "bash", input: { command: `step ${turn}` } },
        { type: "tool_end", at: at + 600, id: `toolu_${turn}`, name: "bash", output: "ok", is_error: false, duration_ms: 500 },
        { type: "warning", at: at + 700, message: "not a call" },
      );
    }
    const { s, session } = await signedIn({ tasks: [task("big")], events: { big: events } });
    const page = await (await send(s, "/tasks/big/trace", { cookie: session })).text();
    const turns = (text: string) => [...text.matchAll(/<strong>Turn (\d+)<\/strong>/g)].map((match) => Number(match[1]));
    assert.equal(rows(page).length, 100);
    assert.deepEqual(turns(page), Array.from({ length: 50 }, (_, i) => 1201 + i));
    assert.match(page, /Calls 2401–2500 of 2500/);
    assert.match(page, /<dt>Model calls<\/dt><dd>1250<\/dd>/);
    assert.match(page, /<dt>Tool calls<\/dt><dd>1250<\/dd>/);
    assert.match(page, /<dt>Cost<\/dt><dd>\$1\.25<\/dd>/);
    const earlier = /<a class="more" href="([^"]+)">Load earlier \(2400 more\)<\/a>/.exec(page)?.[1];
    assert.equal(earlier, "/tasks/big/trace?before=2400");
    const before = await (await send(s, earlier, { cookie: session })).text();
    assert.deepEqual(turns(before), Array.from({ length: 50 }, (_, i) => 1151 + i));
    assert.match(before, /Calls 2301–2400 of 2500/);
    assert.match(before, /<a class="more" href="\/tasks\/big\/trace">Latest calls<\/a>/);
  });

  it("is linked from the Task page's header, says when there are no calls yet, and answers 404 for an unknown task", async () => {
    const { s, session } = await signedIn({ tasks: [task("t1"), task("q1", { state: "queued" })], events: { t1: scriptedLog() } });
    const taskPage = await (await send(s, "/tasks/t1", { cookie: session })).text();
    assert.match(taskPage, /<a class="more" href="\/tasks\/t1\/trace">Trace<\/a>/);
    assert.match(await (await send(s, "/tasks/q1/trace", { cookie: session })).text(), /No model or tool calls yet\./);
    const missing = await send(s, `/tasks/${encodeURIComponent(XSS)}/trace`, { cookie: session });
    assert.equal(missing.status, 404);
    const page = await missing.text();
    assert.match(page, /<h1>No such task<\/h1>/);
    assert.ok(page.includes(ESCAPED) && !page.includes(XSS));
  });

  it("needs a session", async () => {
    const { s } = await signedIn({ tasks: [task("t1")], events: { t1: scriptedLog() } });
    for (const path of ["/tasks/t1/trace", "/tasks/t1/trace?before=2", "/tasks/nope/trace"]) {
      assert.equal((await send(s, path)).status, 401, path);
      assert.equal((await send(s, path, { cookie: "forged" })).status, 401, path);
    }
  });
});
