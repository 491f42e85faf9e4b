import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, describe, it } from "node:test";
import type { SessionEvent } from "../runtime/index.ts";
import type { TaskRecord } from "../tasks/index.ts";
import { openTaskDb, type TaskDb } from "../tasks/state-db.ts";
import { dbReader } from "../tasks/task-reader.ts";
import { login, send, setupDashboard, type Setup, type SetupOptions, taskRecord } from "./support/dashboard.ts";
import { tempDir } from "./support/home.ts";

const XSS = "<script>alert(1)</script>";
const ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;";
const HOUR = 3_600_000;
const START = Date.parse("2026-11-24T09:00:00Z"); // the fake clock's start

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

async function signedIn(options: SetupOptions = {}): Promise<{ s: Setup; session: string }> {
  const s = setupDashboard(options);
  cleanups.push(s.cleanup);
  return { s, session: (await login(s)).session };
}

/** A task record as the daemon keeps it (the harness's), from the Telegram chat unless said otherwise. */
const task = (id: string, fields: Partial<TaskRecord> = {}): TaskRecord => taskRecord(id, fields);

/** The daemon's own table and reader over a temporary file: the Tasks page's filters run as SQL. */
function database(tasks: TaskRecord[]): { file: string; reader: ReturnType<typeof dbReader> } {
  const dir = tempDir("nightshift-tasks-db-");
  const file = join(dir.path, "nightshift.db");
  const db: TaskDb = openTaskDb(file);
  cleanups.push(() => (db.close(), dir.cleanup()));
  db.transaction(() => {
    for (const t of tasks) db.put({ id: t.id, state: t.state, created: t.created, finished: t.finished, name: t.name, source: t.spec.source }, JSON.stringify(t), "insert");
  });
  return { file, reader: dbReader(db, new Map(), (json) => JSON.parse(json) as TaskRecord) };
}

const titles = (page: string) => [...page.matchAll(/<a class="task" href="\/tasks\/([^"]+)">/g)].map((match) => decodeURIComponent(match[1]!));

describe("dashboard Tasks page", () => {
  // 120 tasks, one a minute: every third failed, every fourth from the CLI.
  const many = Array.from({ length: 120 }, (_, i) =>
    task(`t${String(i).padStart(3, "0")}`, { created: START - HOUR + i * 60_000, state: i % 3 === 0 ? "failed" : "done", origin: i % 4 === 0 ? "cli" : "telegram", cost_usd: 0.25, started: START - HOUR + i * 60_000, finished: START - HOUR + i * 60_000 + 90_000 }),
  );

  it("lists the newest 50 with state, source, cost and duration, each linking to its page, and pages by 'Older' links", async () => {
    const { reader } = database(many);
    const { s, session } = await signedIn({ reader });
    const first = await (await send(s, "/tasks", { cookie: session })).text();
    assert.deepEqual(titles(first), many.slice(70).reverse().map((t) => t.id));
    assert.match(first, /<a class="task" href="\/tasks\/t119">Task t119<\/a>\n<p class="quiet"><span class="state done">done<\/span> · telegram · \$0\.2500 · 1 min · <code>t119<\/code>/);
    assert.match(first, /<nav class="top"><a href="\/">Now<\/a><a href="\/tasks">Tasks<\/a>/);
    const older = /<a class="more" href="([^"]+)">Older<\/a>/.exec(first)?.[1];
    assert.ok(older, "an Older link");
    const second = await (await send(s, older.replaceAll("&amp;", "&"), { cookie: session })).text();
    assert.deepEqual(titles(second), many.slice(20, 70).reverse().map((t) => t.id));
    const thirdLink = /<a class="more" href="([^"]+)">Older<\/a>/.exec(second)![1]!;
    const third = await (await send(s, thirdLink.replaceAll("&amp;", "&"), { cookie: session })).text();
    assert.deepEqual(titles(third), many.slice(0, 20).reverse().map((t) => t.id));
    assert.doesNotMatch(third, />Older</, "the last page has no Older link");
  });

  it("filters by state and by source through the query, and pages within the filter", async () => {
    const { reader } = database(many);
    const { s, session } = await signedIn({ reader });
    const failed = await (await send(s, "/tasks?state=failed", { cookie: session })).text();
    assert.deepEqual(titles(failed), many.filter((t) => t.state === "failed").reverse().map((t) => t.id));
    assert.match(failed, /<option value="failed" selected>/);
    const both = await (await send(s, "/tasks?state=failed&origin=cli", { cookie: session })).text();
    assert.deepEqual(titles(both), many.filter((t) => t.state === "failed" && t.origin === "cli").reverse().map((t) => t.id));
    const cli = await (await send(s, "/tasks?origin=cli", { cookie: session })).text();
    assert.equal(titles(cli).length, 30);
    const telegram = await (await send(s, "/tasks?origin=telegram", { cookie: session })).text();
    const next = /<a class="more" href="([^"]+)">Older<\/a>/.exec(telegram)![1]!.replaceAll("&amp;", "&");
    assert.match(next, /^\/tasks\?origin=telegram&before=/);
    const rest = await (await send(s, next, { cookie: session })).text();
    assert.deepEqual(titles(rest), many.filter((t) => t.origin === "telegram").reverse().slice(50).map((t) => t.id));
  });

  it("answers a filter over 10,000 tasks from an index, not a scan of the table", () => {
    const { file } = database([task("a")]);
    const plan = (sql: string) => {
      const db = new DatabaseSync(file, { readOnly: true });
      try {
        return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>).map((row) => row.detail).join("\n");
      } finally {
        db.close();
      }
    };
    assert.match(plan("SELECT record FROM tasks WHERE state = 'failed' ORDER BY created DESC, id DESC LIMIT 51"), /USING INDEX tasks_state_created/);
    assert.match(plan("SELECT record FROM tasks WHERE json_extract(record, '$.origin') = 'cli' ORDER BY created DESC, id DESC LIMIT 51"), /USING INDEX tasks_origin_created/);
  });
});


const usage = { input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };

function response(turn: number, at: number, content: Extract<SessionEvent, { type: "model_response" }>["content"]): SessionEvent {
  return { type: "model_response", at, turn, model: "claude-test", content, stop_reason: "tool_use", usage, cost_usd: 0.01, latency_ms: 1200, request_bytes: 500 };
}

/** A task that asked before running a command whose output is long and hostile. */
function hostileLog(): SessionEvent[] {
  const spec = task("t1").spec;
  return [
    { type: "session_start", at: START, task: spec },
    response(1, START + 1000, [
      { type: "text", text: `Reading the notes ${XSS}` },
      { type: "tool_use", id: "toolu_1", name: "bash", input: { command: "cat notes.txt\nwc -l notes.txt" } },
    ]),
    { type: "permission", at: START + 1100, id: "toolu_1", tool: "bash", kind: "command", target: "cat notes.txt", action: "ask", reason: 'rule "ask: cat *" in config.yaml' },
    { type: "approval_requested", at: START + 1200, approval: "a1", id: "toolu_1", tool: "bash", summary: "run cat notes.txt", reason: 'rule "ask: cat *"', expires_at: START + 1800_000 },
    { type: "approval_answered", at: START + 5000, approval: "a1", id: "toolu_1", decision: "once", by: "dashboard" },
    { type: "tool_start", at: START + 5100, id: "toolu_1", name: "bash", input: { command: "cat notes.txt" } },
    { type: "tool_end", at: START + 7600, id: "toolu_1", name: "bash", output: `${XSS}\n${"x".repeat(10_000)}`, is_error: false, duration_ms: 2500 },
    { type: "model_retry", at: START + 8000, attempt: 2, delay_ms: 4000, reason: "overloaded (529)" },
    { type: "budget_warning", at: START + 9000, kind: "usd", used: 4, limit: 5 },
    { type: "checkpoint", at: START + 9500, summary: "Read the notes.", keep_from: 5, dropped_turns: 3, input_tokens_before: 150_000, method: "small", cost_usd: 0.02 },
    { type: "plan", at: START + 9600, report: { name: "planner", session: "t1.plan.planner", status: "done", report: `1. read ${XSS}`, cost_usd: 0.03, turns: 2 } },
    response(2, START + 10_000, [{ type: "text", text: "Asking." }, { type: "tool_use", id: "toolu_2", name: "consult", input: { specialist: "reviewer", question: "ok?" } }]),
    { type: "tool_end", at: START + 12_000, id: "toolu_2", name: "consult", output: "reviewer: fine", is_error: false, duration_ms: 2000, cost_usd: 0.05, specialists: [{ name: "reviewer", session: "t1.toolu_2.reviewer", status: "done", report: "Looks fine.", cost_usd: 0.05, turns: 3 }] },
  ];
}

describe("dashboard Task page", () => {
  it("draws a turn's text, its tool call on one line with the decision chip and rule, the approval and who answered, the output collapsed and cut, and retries, warnings, checkpoints, plans and specialist reports inline", async () => {
    const { s, session } = await signedIn({ tasks: [task("t1", { state: "running", started: START, cost_usd: 0 })], events: { t1: hostileLog() } });
    s.clock.advance(90_000);
    const response = await send(s, "/tasks/t1", { cookie: session });
    assert.equal(response.status, 200);
    const page = await response.text();
    assert.match(page, /<h3>Turn 1 /);
    assert.match(page, /<p class="text">Reading the notes /);
    assert.match(page, /<p class="line"><strong>bash<\/strong> <code>cat notes.txt ⏎ wc -l notes.txt<\/code><\/p>/);
    assert.match(page, /<span class="chip ask">ask<\/span> command <code>cat notes.txt<\/code> · rule &quot;ask: cat \*&quot; in config\.yaml/);
    assert.match(page, /Asked: run cat notes\.txt/);
    assert.match(page, /Answered: once by dashboard/);
    assert.match(page, /<span class="outcome ok">ok<\/span> · 2\.5 s/);
    const details = /<details><summary>Output · 9\.8 KB \(first 4\.0 KB shown\)<\/summary><pre>([^<]*)<\/pre>/.exec(page);
    assert.ok(details, "the output in a closed <details>, with its full size");
    assert.equal(details[1]!.replaceAll("&lt;", "<").replaceAll("&gt;", ">").length, 4096, "cut to 4 KB");
    assert.match(page, /<a class="more" href="\/tasks\/t1\/output\/toolu_1">Show all 9\.8 KB<\/a>/);
    const full = await send(s, "/tasks/t1/output/toolu_1", { cookie: session });
    assert.match(full.headers.get("content-type") ?? "", /^text\/plain/);
    assert.equal((await full.text()).length, XSS.length + 1 + 10_000);
    assert.match(page, /Model call retried \(attempt 2, after 4\.0 s\): overloaded \(529\)/);
    assert.match(page, /Budget warning: usd \$4\.00 of \$5\.00/);
    assert.match(page, /Compacted: 3 turns dropped \(150000 input tokens before, small, \$0\.0200\)/);
    assert.match(page, /Plan<details class="report"><summary>planner · done · 2 turns · \$0\.0300<\/summary><pre>1\. read &lt;script&gt;/);
    assert.match(page, /<summary>reviewer · done · 3 turns · \$0\.0500<\/summary><pre>Looks fine\.<\/pre>/);
    assert.match(page, /<dt>Turns<\/dt><dd>2 of 10<\/dd>/);
    assert.match(page, /<dt>Cost<\/dt><dd class="">\$0\.1200 of \$5\.00<\/dd>/);
    assert.match(page, /<dt>Elapsed<\/dt><dd>1 min<\/dd>/);
    assert.match(page, /<dt>Model<\/dt><dd>claude-test<\/dd>/);
  });

  it("escapes what the model and a tool wrote", async () => {
    const { s, session } = await signedIn({ tasks: [task("t1")], events: { t1: hostileLog() } });
    const page = await (await send(s, "/tasks/t1", { cookie: session })).text();
    assert.ok(!page.includes(XSS), "no raw script from the log");
    assert.ok(!/<script/i.test(page.replace(`<script src="/assets/live.js" defer></script>`, "")), "no script element but the page's own");
    assert.ok(page.includes(`Reading the notes ${ESCAPED}`), "the model's text, escaped");
    assert.ok(page.includes(`<pre>${ESCAPED}\nxxx`), "the tool's output, escaped");
  });

  it("draws the last 200 events of a 1,000-event log, and 'load earlier' draws the 200 before them", async () => {
    const events: SessionEvent[] = [{ type: "session_start", at: START, task: task("big").spec }];
    for (let i = 1; i < 1000; i++) events.push({ type: "warning", at: START + i, message: `note ${i}` });
    const { s, session } = await signedIn({ tasks: [task("big")], events: { big: events } });
    const page = await (await send(s, "/tasks/big", { cookie: session })).text();
    const notes = (text: string) => [...text.matchAll(/<p class="event warn">note (\d+)<\/p>/g)].map((match) => Number(match[1]));
    assert.deepEqual(notes(page), Array.from({ length: 200 }, (_, i) => 800 + i));
    assert.match(page, /Events 801–1000 of 1000/);
    const earlier = /<a class="more" href="([^"]+)">Load earlier \(800 more\)<\/a>/.exec(page)?.[1];
    assert.equal(earlier, "/tasks/big?before=800");
    const before = await (await send(s, earlier, { cookie: session })).text();
    assert.deepEqual(notes(before), Array.from({ length: 200 }, (_, i) => 600 + i));
    assert.match(before, /href="\/tasks\/big\?before=600">Load earlier \(600 more\)/);
    const first = await (await send(s, "/tasks/big?before=150", { cookie: session })).text();
    assert.deepEqual(notes(first), Array.from({ length: 149 }, (_, i) => 1 + i));
    assert.match(first, /Started: Task big/);
    assert.doesNotMatch(first, /Load earlier/);
  });

  it("answers 404 with a page for an unknown task, and escapes the id it was given", async () => {
    const { s, session } = await signedIn({ tasks: [task("t1")] });
    const response = await send(s, `/tasks/${encodeURIComponent(XSS)}`, { cookie: session });
    assert.equal(response.status, 404);
    const page = await response.text();
    assert.match(page, /<h1>No such task<\/h1>/);
    assert.ok(page.includes(ESCAPED) && !page.includes(XSS));
    assert.equal((await send(s, "/tasks/t1/output/toolu_9", { cookie: session })).status, 404);
  });

  it("a task with no session log yet shows its header and says so", async () => {
    const { s, session } = await signedIn({ tasks: [task("q1", { state: "queued" })] });
    const page = await (await send(s, "/tasks/q1", { cookie: session })).text();
    assert.match(page, /No session log yet\./);
    assert.match(page, /<dt>Elapsed<\/dt><dd>not started<\/dd>/);
  });

  it("both pages and the full output need a session", async () => {
    const { s } = await signedIn({ tasks: [task("t1")], events: { t1: hostileLog() } });
    for (const path of ["/tasks", "/tasks?state=failed", "/tasks/t1", "/tasks/t1?before=3", "/tasks/t1/output/toolu_1", "/tasks/nope"]) {
      assert.equal((await send(s, path)).status, 401, path);
      assert.equal((await send(s, path, { cookie: "forged" })).status, 401, path);
    }
  });
});
