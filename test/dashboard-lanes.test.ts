import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { openSessionLog, type EventOf, type SessionEvent, type SpecialistReport } from "../runtime/index.ts";
import type { TaskRecord } from "../tasks/index.ts";
import { send, signedInDashboards, type Setup, taskRecord } from "./support/dashboard.ts";

const XSS = "<script>alert(1)</script>";
const ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;";
const START = Date.parse("2026-11-24T09:00:00Z"); // the fake clock's start

const signedIn = signedInDashboards();

/** A task record as the daemon keeps it (the harness's), from the CLI. */
const task = (id: string, fields: Partial<TaskRecord> = {}): TaskRecord => taskRecord(id, { origin: "cli", ...fields });

const report = (name: string, session: string, status: SpecialistReport["status"], turns: number, usd: number, text: string): SpecialistReport => ({ name, session, status, report: text, cost_usd: usd, turns });

function response(at: number, usd: number): EventOf<"model_response"> {
  return { type: "model_response", at, turn: 1, model: "claude-test", content: [{ type: "text", text: "thinking" }], stop_reason: "tool_use", usage: { input_tokens: 10, output_tokens: 1, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 }, cost_usd: usd, latency_ms: 100, request_bytes: 100 };
}

/** A specialist's own log, as runtime.ts writes it: sessions/<task>/<task>.<key>.<name>.jsonl. */
async function specialistLog(s: Setup, taskId: string, key: string, name: string, ...events: SessionEvent[]) {
  const session = `${taskId}.${key}.${name}`;
  const start: SessionEvent = { type: "session_start", at: events[0]?.at ?? START, task: { ...task("x").spec, title: `${name}: question`, parent: { session: taskId, specialist: name } } };
  const file = await openSessionLog(join(s.home, "sessions", taskId, `${session}.jsonl`), session, { now: () => s.clock.now() });
  await file.append(start, ...events);
  await file.close();
}

interface Lane {
  name: string;
  state: string;
  facts: string;
  rest: string;
}

function lanes(page: string): Lane[] {
  return [...page.matchAll(/<li class="lane"><p><strong>(.*?)<\/strong> <span class="chip ([a-z]+)">\2<\/span><\/p>\n<p class="quiet">(.*?)<\/p>\n(.*?)<\/li>/gs)].map((match) => ({ name: match[1]!, state: match[2]!, facts: match[3]!, rest: match[4]! }));
}

describe("dashboard Task page: specialists as lanes", () => {
  it("shows a finished plan, review round and consult as lanes with state, turns, cost and the report collapsed, in the order they started", async () => {
    const events: SessionEvent[] = [
      { type: "session_start", at: START, task: task("t1").spec },
      { type: "plan", at: START + 2000, report: report("planner", "t1.plan.planner", "done", 2, 0.03, `1. read ${XSS}`) },
      response(START + 3000, 0.01),
      { type: "tool_end", at: START + 9000, id: "toolu_2", name: "consult", output: "x", is_error: false, duration_ms: 4000, cost_usd: 0.05, specialists: [report("nosuch", "t1.toolu_2.nosuch", "unavailable", 0, 0, 'There is no specialist "nosuch".')] },
      { type: "review_start", at: START + 10_000, round: 1, specialists: ["reviewer", "challenger"] },
      { type: "review", at: START + 15_000, round: 1, critiques: [report("reviewer", "t1.review-1.reviewer", "done", 3, 0.04, "Looks fine."), report("challenger", "t1.review-1.challenger", "failed", 1, 0.01, "(failed: model error)")] },
    ];
    const { s, session } = await signedIn({ tasks: [task("t1")], events: { t1: events } });
    // The challenger's log says it started before the reviewer's; the unavailable one has no log.
    await specialistLog(s, "t1", "review-1", "reviewer", response(START + 11_000, 0.04));
    await specialistLog(s, "t1", "review-1", "challenger", response(START + 10_500, 0.01));
    const page = await (await send(s, "/tasks/t1", { cookie: session })).text();
    assert.match(page, /<\/dl>\n\n<section aria-labelledby="lanes"><h2 id="lanes">Specialists<\/h2>/, "right under the header");
    const drawn = lanes(page);
    assert.deepEqual(
      drawn.map(({ name, state, facts }) => ({ name, state, facts })),
      [
        { name: "planner", state: "done", facts: "plan · 2 turns · $0.0300" },
        { name: "nosuch", state: "unavailable", facts: "consult · 0 turns · $0.00" },
        { name: "challenger", state: "failed", facts: "review round 1 · 1 turns · $0.0100" },
        { name: "reviewer", state: "done", facts: "review round 1 · 3 turns · $0.0400" },
      ],
    );
    assert.equal(drawn[0]!.rest, `<details><summary>Report</summary><pre>1. read ${ESCAPED}</pre></details>`);
    assert.equal(drawn[3]!.rest, "<details><summary>Report</summary><pre>Looks fine.</pre></details>");
    assert.ok(!page.includes(XSS));
  });

  it("shows a specialist running now from its own log, with the turns and cost so far, beside a sibling that ended but was not reported yet", async () => {
    const events: SessionEvent[] = [
      { type: "session_start", at: START, task: task("t1").spec },
      response(START + 1000, 0.01),
      { type: "tool_start", at: START + 1100, id: "toolu_2", name: "consult", input: { specialists: ["reviewer", "challenger"], question: "ok?" } },
    ];
    const { s, session } = await signedIn({ tasks: [task("t1", { state: "running", started: START }), task("t2", { state: "failed" })], events: { t1: events, t2: events } });
    await specialistLog(s, "t1", "toolu_2", "reviewer", response(START + 2000, 0.02), response(START + 3000, 0.02));
    await specialistLog(s, "t1", "toolu_2", "challenger", response(START + 2500, 0.01), { type: "session_end", at: START + 2600, status: "done", answer: `It holds ${XSS}`, turns: 1, cost_usd: 0.01, tokens: { input: 10, output: 1, cache_read: 0, cache_write: 0 } });
    mkdirSync(join(s.home, "sessions", "t1"), { recursive: true });
    writeFileSync(join(s.home, "sessions", "t1", "t1.toolu_2.broken.jsonl"), "not a log\n"); // left out, not an error page
    const page = await (await send(s, "/tasks/t1", { cookie: session })).text();
    const drawn = lanes(page);
    assert.deepEqual(
      drawn.map(({ name, state, facts }) => ({ name, state, facts })),
      [
        { name: "reviewer", state: "running", facts: "consult · 2 turns · $0.0400" },
        { name: "challenger", state: "done", facts: "consult · 1 turns · $0.0100" },
      ],
    );
    assert.equal(drawn[0]!.rest, '<p class="quiet">No report yet.</p>');
    assert.equal(drawn[1]!.rest, `<details><summary>Report</summary><pre>It holds ${ESCAPED}</pre></details>`);

    // The same logs under a task that stopped: the one without an end was interrupted, not running.
    mkdirSync(join(s.home, "sessions", "t2"), { recursive: true });
    await specialistLog(s, "t2", "toolu_2", "reviewer", response(START + 2000, 0.02));
    const stopped = lanes(await (await send(s, "/tasks/t2", { cookie: session })).text());
    assert.deepEqual(stopped.map(({ name, state }) => ({ name, state })), [{ name: "reviewer", state: "interrupted" }]);
  });

  it("has no specialists section when the task had none", async () => {
    const { s, session } = await signedIn({ tasks: [task("t1")], events: { t1: [{ type: "session_start", at: START, task: task("t1").spec }, response(START + 1000, 0.01)] } });
    const page = await (await send(s, "/tasks/t1", { cookie: session })).text();
    assert.doesNotMatch(page, /id="lanes"/);
  });
});
