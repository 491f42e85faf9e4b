import assert from "node:assert/strict";
import { utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { BOT_COMMANDS, digestText, helpText, memoryText, statusText, tasksText, traceText } from "../bot/reports.ts";
import { budgetText, spendSummary, type SpendSummary } from "../bot/spend.ts";
import type { EventOf, SessionEvent, TaskSpec } from "../runtime/events.ts";
import { openSessionLog } from "../runtime/session-log.ts";
import type { TaskRecord } from "../tasks/state.ts";
import { parseHtml } from "./support/bot-api.ts";
import { tempDir } from "./support/home.ts";

const T0 = new Date(2025, 5, 15, 12, 0, 0).getTime(); // local noon, 15 June
const SPEC: TaskSpec = { title: "Fix the build", prompt: "fix it", workdir: "/tmp/w", model: "main", budget: { max_turns: 40, max_usd: 2, timeout_ms: 3_600_000 } };

/** Parses like Telegram does (throws on bad HTML) and checks the length Telegram allows. */
function sendable(html: string): string {
  assert.ok(html.length < 4096, `too long: ${html.length} characters`);
  const { text } = parseHtml(html);
  assert.ok(text.trim().length > 0, "empty message");
  return html;
}

function task(id: string, changes: Partial<TaskRecord> = {}): TaskRecord {
  return { id, title: `Task ${id}`, origin: "telegram", priority: "normal", state: "done", spec: SPEC, created: T0, attempts: 1, crashes: 0, turns: 0, cost_usd: 0, ...changes };
}

function response(at: number, turn: number, cost: number, tools: Array<{ id: string; name: string; input: unknown }> = []): EventOf<"model_response"> {
  return {
    type: "model_response", at, turn, model: "claude-sonnet-5-5",
    content: [{ type: "text", text: "working" }, ...tools.map((tool) => ({ type: "tool_use" as const, ...tool }))],
    stop_reason: tools.length ? "tool_use" : "end_turn",
    usage: { input_tokens: 1200, output_tokens: 340, cache_read_input_tokens: 5000, cache_creation_input_tokens: 800 },
    cost_usd: cost, latency_ms: 900, request_bytes: 4000,
  };
}

/** A session with an allowed call, an approved call, a denied call, a failing call and the rest. */
function richSession(): SessionEvent[] {
  const s = (seconds: number) => T0 + seconds * 1000;
  return [
    { type: "session_start", at: s(0), task: SPEC },
    response(s(2), 1, 0.0123, [{ id: "t1", name: "bash", input: { command: "ls -la" } }]),
    { type: "permission", at: s(2), id: "t1", tool: "bash", kind: "command", target: "ls -la", action: "allow", reason: `rule "allow command ls *" (defaults)` },
    { type: "tool_start", at: s(2), id: "t1", name: "bash", input: { command: "ls -la" } },
    { type: "tool_end", at: s(3), id: "t1", name: "bash", output: "a\nb", is_error: false, duration_ms: 1200 },
    response(s(12), 2, 0.02, [{ id: "t2", name: "write_file", input: { path: "/etc/hosts", content: "x" } }]),
    { type: "permission", at: s(12), id: "t2", tool: "write_file", kind: "write", target: "/etc/hosts", action: "ask", reason: "outside the workdir" },
    { type: "approval_requested", at: s(12), approval: "a1", id: "t2", tool: "write_file", summary: "write /etc/hosts", reason: "outside the workdir", expires_at: s(1000) },
    { type: "approval_answered", at: s(40), approval: "a1", id: "t2", decision: "once", by: "telegram:@ann" },
    { type: "tool_start", at: s(40), id: "t2", name: "write_file", input: { path: "/etc/hosts", content: "x" } },
    { type: "tool_end", at: s(41), id: "t2", name: "write_file", output: "wrote 1 byte", is_error: false, duration_ms: 30 },
    response(s(60), 3, 0.03, [{ id: "t3", name: "bash", input: { command: "rm -rf ~" } }, { id: "t4", name: "bash", input: { command: "make <all>" } }]),
    { type: "permission", at: s(60), id: "t3", tool: "bash", kind: "command", target: "rm -rf ~", action: "deny", reason: `rule "deny command rm -rf *" (defaults)` },
    { type: "tool_end", at: s(60), id: "t3", name: "bash", output: "Denied: rm -rf ~", is_error: true, duration_ms: 0 },
    { type: "tool_start", at: s(61), id: "t4", name: "bash", input: { command: "make <all>" } },
    { type: "tool_end", at: s(65), id: "t4", name: "bash", output: "make: *** No rule to make target <all> & more", is_error: true, duration_ms: 4000 },
    { type: "budget_warning", at: s(120), kind: "usd", used: 1.6, limit: 2 },
    { type: "checkpoint", at: s(150), summary: "…", keep_from: 5, dropped_turns: 2, input_tokens_before: 140_000, method: "small", cost_usd: 0.004 },
    { type: "resumed", at: s(180), attempt: 2 },
    { type: "user", at: s(181), text: "also <check> the tests & docs" },
    { type: "grant", at: s(182), kind: "network", target: "example.com" },
    { type: "session_end", at: s(185), status: "failed", answer: "", reason: "spent $2.00 of the $2.00 budget", turns: 3, cost_usd: 0.0663, tokens: { input: 3600, output: 1020, cache_read: 15000, cache_write: 2400 } },
  ];
}

describe("tasksText", () => {
  it("tells how to send a first task when there are none", () => {
    const text = sendable(tasksText([], T0));
    assert.match(text, /type a message/i);
  });

  it("lists running and waiting tasks first, then the newest, at most ten", () => {
    const tasks = Array.from({ length: 14 }, (_, i) => task(`t${i}`, { created: T0 - (14 - i) * 60_000, cost_usd: i / 100 }));
    tasks[0] = task("old-running", { state: "running", created: T0 - 86_400_000 * 3 });
    tasks[1] = task("waiting", { state: "waiting_approval", created: T0 - 86_400_000 });
    tasks[2] = task("fish", { title: "Tom & Jerry <script>", created: T0 - 3600_000 });
    const text = sendable(tasksText(tasks, T0));
    const order = [...text.matchAll(/<code>([^<]+)<\/code>/g)].map((m) => m[1]);
    assert.deepEqual(order, ["waiting", "old-running", "t13", "t12", "t11", "t10", "t9", "t8", "t7", "t6"]);
    assert.match(text, /3d ago/);
    assert.match(text, /\$0\.1300/);
    assert.match(text, /4 older not shown/);
    assert.ok(!text.includes("<script>"));
  });

  it("counts the older tasks from the whole history, not from the newest it was given", () => {
    const tasks = Array.from({ length: 12 }, (_, i) => task(`t${i}`, { created: T0 - (12 - i) * 60_000 }));
    assert.match(sendable(tasksText(tasks, T0, 10_012)), /10002 older not shown/);
  });
});

describe("statusText", () => {
  it("names an unknown id and points to /tasks", () => {
    const text = sendable(statusText(undefined, "nope<&>", [], T0));
    assert.match(text, /<code>nope&lt;&amp;&gt;<\/code>/);
    assert.match(text, /\/tasks/);
  });

  it("shows a finished task's facts, its reason and its latest steps", () => {
    const events = richSession();
    const record = task("20250615-fix", { state: "failed", origin: "inbox", started: T0, finished: T0 + 185_000, turns: 3, cost_usd: 0.0663, reason: "spent $2.00 of the $2.00 <budget>" });
    const text = sendable(statusText(record, record.id, events, T0 + 600_000));
    for (const fact of ["20250615-fix", "failed", "from inbox", "Created 10m ago", "finished 6m ago", "3 turns", "21.0k tokens in", "1.0k out", "$0.0663 of $2.00 (3%)", "Reason: <i>spent $2.00 of the $2.00 &lt;budget&gt;</i>", "/trace 20250615-fix"]) {
      assert.ok(text.includes(fact), `missing ${fact} in\n${text}`);
    }
    assert.match(text, /■ failed/);
    assert.ok(!text.includes("ls -la"), "only the latest steps");
  });

  it("counts a running task's turns and cost from its log and shows what it waits for", () => {
    const events = richSession().slice(0, 8);
    const record = task("live", { state: "waiting_approval", started: T0 });
    const text = sendable(statusText(record, "live", events, T0 + 30_000));
    assert.match(text, /2 turns/);
    assert.match(text, /\$0\.0323 of \$2\.00/);
    assert.match(text, /Waiting for your answer: write \/etc\/hosts/);
  });

  it("says a queued task has not started", () => {
    assert.match(sendable(statusText(task("q", { state: "queued" }), "q", [], T0)), /Not started yet/);
  });
});

describe("traceText", () => {
  it("shows each model call, tool decision, approval, compaction, resume, warning and the end", () => {
    const text = sendable(traceText(task("20250615-fix", { state: "failed" }), "20250615-fix", richSession()));
    const expected = [
      "<code>+0s</code> ▶ start · main · budget $2.00, 40 turns, 1.0h",
      "<code>+2s</code> · turn 1 claude-sonnet-5-5: 7.0k in (5.0k cached, 800 written) · 340 out · $0.0123",
      `› bash <code>ls -la</code> · allowed by rule "allow command ls *" (defaults) · ok 1.2s`,
      "❓ asked: write /etc/hosts (outside the workdir)",
      "→ allowed once by telegram:@ann",
      "› write_file <code>/etc/hosts</code> · asked → allowed once · ok 30ms",
      `<code>+1m</code> › bash <code>rm -rf ~</code> · ⛔ denied by rule "deny command rm -rf *" (defaults) · not run: Denied: rm -rf ~`,
      "› bash <code>make &lt;all&gt;</code> · ✗ error after 4.0s: make: *** No rule to make target &lt;all&gt; &amp; more",
      "⚠ budget usd at 80% ($1.60 of $2.00)",
      "⇣ compacted (small): 2 turns summarized from 140.0k tokens · $0.0040",
      "<code>+3m</code> ↻ resumed (attempt 2)",
      "✉ follow-up: <i>also &lt;check&gt; the tests &amp; docs</i>",
      "✓ allowed for this task: network <code>example.com</code>",
      "■ failed: spent $2.00 of the $2.00 budget · 3 turns · $0.0663",
      "3 model calls · 21.0k in · 1.0k out · $0.0663 · 4 tool calls (2 failed)",
    ];
    for (const fact of expected) assert.ok(text.includes(fact), `missing ${fact} in\n${text}`);
    assert.ok(text.indexOf("ls -la") < text.indexOf("write_file") && text.indexOf("write_file") < text.indexOf("rm -rf"), "in order");
  });

  it("shows the specialist that an event names", () => {
    const events: SessionEvent[] = [
      { type: "session_start", at: T0, task: SPEC },
      { ...response(T0 + 5000, 1, 0.01), label: "reviewer" } as SessionEvent,
      { type: "tool_start", at: T0 + 6000, id: "r1", name: "read_file", input: { path: "a.md" }, label: "reviewer" } as SessionEvent,
      { type: "tool_end", at: T0 + 7000, id: "r1", name: "read_file", output: "text", is_error: false, duration_ms: 20 },
      { type: "specialist_end", at: T0 + 9000, specialist: "challenger" } as unknown as SessionEvent,
    ];
    const text = sendable(traceText(undefined, "x", events));
    assert.match(text, /\[reviewer\] · turn 1/);
    assert.match(text, /\[reviewer\] › read_file <code>a\.md<\/code> · ok 20ms/);
    assert.match(text, /\[challenger\] · specialist_end/);
  });

  it("names an unknown id, and a task with no session yet", () => {
    assert.match(sendable(traceText(undefined, "ghost", [])), /No session for <code>ghost<\/code>/);
    assert.match(sendable(traceText(task("q", { state: "queued" }), "q", [])), /no session yet \(queued\)/);
  });

  it("keeps a 2,000-event session under Telegram's limit, with its start and latest lines", () => {
    const events: SessionEvent[] = [{ type: "session_start", at: T0, task: SPEC }];
    for (let i = 0; i < 499; i++) {
      const id = `t${i}`;
      const at = T0 + i * 10_000;
      events.push(response(at, i + 1, 0.01, [{ id, name: "bash", input: { command: `echo ${"x".repeat(300)} ${i}` } }]));
      events.push({ type: "permission", at, id, tool: "bash", kind: "command", target: "echo", action: "allow", reason: `rule "allow command echo *" (defaults)` });
      events.push({ type: "tool_start", at, id, name: "bash", input: { command: `echo ${i}` } });
      events.push({ type: "tool_end", at: at + 50, id, name: "bash", output: "x", is_error: false, duration_ms: 50 });
    }
    events.push({ type: "checkpoint", at: T0 + 5_000_000, summary: "s", keep_from: 1, dropped_turns: 400, input_tokens_before: 150_000, method: "server", cost_usd: 0 });
    events.push({ type: "warning", at: T0 + 5_500_000, message: "almost out of <time>" });
    events.push({ type: "session_end", at: T0 + 6_000_000, status: "done", answer: "ok", turns: 500, cost_usd: 5, tokens: { input: 1, output: 1, cache_read: 0, cache_write: 0 } });
    assert.equal(events.length, 2000);
    const text = sendable(traceText(task("long"), "long", events));
    assert.match(text, /▶ start/);
    assert.match(text, /■ done/);
    assert.match(text, /echo 498/);
    const skipped = /… (\d+) lines skipped …/.exec(text);
    assert.ok(skipped, "says how many lines were skipped");
    const shown = text.split("\n").filter((line) => line.startsWith("<code>+")).length;
    assert.equal(shown + Number(skipped[1]), 1 + 499 * 2 + 3, "every timeline line is shown or counted");
    assert.ok(text.length > 3000, "uses the room it has");
    // The status view of the same session shows only the latest lines.
    assert.match(sendable(statusText(task("long", { turns: 500 }), "long", events, T0 + 7_000_000)), /■ done/);
  });
});

describe("spendSummary", () => {
  it("adds today's and this month's model and checkpoint costs by local day, skipping old and damaged logs", async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const day = 86_400_000;
    const write = async (id: string, events: SessionEvent[], mtime: number) => {
      const log = await openSessionLog(join(dir.path, `${id}.jsonl`), id, { sync: false, now: () => events[0]?.at ?? T0 });
      await log.append(...events);
      await log.close();
      utimesSync(join(dir.path, `${id}.jsonl`), mtime / 1000, mtime / 1000);
    };
    const start: SessionEvent = { type: "session_start", at: T0 - day, task: SPEC };
    // Began yesterday, went on today.
    await write("big", [start, response(T0 - day, 1, 1), response(T0 - 60_000, 2, 0.5), { type: "checkpoint", at: T0, summary: "s", keep_from: 1, dropped_turns: 1, input_tokens_before: 1, method: "small", cost_usd: 0.25 }], T0);
    await write("small", [{ ...start, at: T0 - 3600_000 }, response(T0 - 3600_000, 1, 0.1)], T0 - 3600_000);
    // Began last month: only this month's part counts.
    await write("spans", [{ ...start, at: T0 - 20 * day }, response(T0 - 20 * day, 1, 4), response(T0 - 2 * day, 2, 2)], T0 - 2 * day);
    // Last written last month: not even opened (its stray event dated today would otherwise count).
    await write("old", [{ ...start, at: T0 - 25 * day }, response(T0 - 25 * day, 1, 3), response(T0, 2, 100)], T0 - 25 * day);
    writeFileSync(join(dir.path, "damaged.jsonl"), "not json\n");
    writeFileSync(join(dir.path, "notes.txt"), "ignored");

    const summary = await spendSummary(dir.path, T0 + 60_000);
    assert.ok(Math.abs(summary.todayUsd - 0.85) < 1e-9, `today ${summary.todayUsd}`);
    assert.ok(Math.abs(summary.monthUsd - 3.85) < 1e-9, `month ${summary.monthUsd}`);
    assert.deepEqual(summary.todayTop.map((entry) => entry.id), ["big", "small"]);
    assert.equal(summary.days, 15);
  });

  it("is empty for a home without sessions", async () => {
    assert.deepEqual(await spendSummary("/nonexistent/sessions", T0), { todayUsd: 0, monthUsd: 0, todayTop: [], days: 15 });
  });
});

describe("budgetText", () => {
  const summary: SpendSummary = { todayUsd: 2.5, monthUsd: 30, todayTop: [{ id: "big<1>", usd: 2 }, { id: "small", usd: 0.5 }], days: 15 };

  it("shows today against the daily limit, the month and today's top tasks", () => {
    const text = sendable(budgetText(summary, { dailyUsd: 10, perTaskUsd: 2 }));
    for (const fact of ["Today: $2.50 of $10.00 (25%)", "▓▓▓░░░░░░░", "This month: $30.00 over 15 days (about $2.00 a day)", "up to $2.00", "<code>big&lt;1&gt;</code> $2.00", "<code>small</code> $0.5000"]) {
      assert.ok(text.includes(fact), `missing ${fact} in\n${text}`);
    }
  });

  it("says when the daily budget is used up", () => {
    const text = sendable(budgetText({ ...summary, todayUsd: 12 }, { dailyUsd: 10, perTaskUsd: 2 }));
    assert.match(text, /\(120%\)/);
    assert.match(text, /▓{10}/);
    assert.match(text, /used up/);
  });

  it("with several machines, holds today's spend of them all to the daily budget, names each machine's share, and one whose own budget differs", () => {
    const machines = [
      { name: "server", todayUsd: 6, monthUsd: 20, dailyUsd: 10 },
      { name: "laptop<1>", todayUsd: 0.5, monthUsd: 10, dailyUsd: 5, silentMs: 7_200_000 },
    ];
    const text = sendable(budgetText({ ...summary, todayUsd: 6.5, machines }, { dailyUsd: 10, perTaskUsd: 2 }));
    for (const fact of ["<b>Spending</b> on every machine", "Today: $6.50 of $10.00 (65%)", "▓▓▓▓▓▓▓░░░", "• server: $6.00", "• laptop&lt;1&gt;: $0.5000 (its daily budget: $5.00) (silent 2.0h: its spend as of then)", "laptop&lt;1&gt;'s own daily budget is used up", "This month: $30.00"]) {
      assert.ok(text.includes(fact), `missing ${fact} in\n${text}`);
    }
    assert.ok(!text.includes("Today's budget is used up"), text);
    const over = sendable(budgetText({ ...summary, todayUsd: 10.5, machines: [{ ...machines[0]!, todayUsd: 10 }, machines[1]!] }, { dailyUsd: 10, perTaskUsd: 2 }));
    assert.ok(over.includes("Today's budget is used up (every machine's spend counts)"), over);
  });

  it("says there is no limit for 0 or Infinity", () => {
    for (const dailyUsd of [0, Infinity]) {
      const text = sendable(budgetText({ todayUsd: 0, monthUsd: 0, todayTop: [], days: 1 }, { dailyUsd, perTaskUsd: 2 }));
      assert.match(text, /no daily limit/);
      assert.match(text, /over 1 day /);
      assert.ok(!text.includes("▓") && !text.includes("░"));
    }
  });
});

describe("help and commands", () => {
  it("lists every command once, lowercase, with short descriptions", () => {
    const names = BOT_COMMANDS.map((entry) => entry.command);
    assert.deepEqual(names, ["tasks", "status", "cancel", "trace", "approvals", "memory", "digest", "budget", "dashboard", "help"]);
    for (const { command, description } of BOT_COMMANDS) {
      assert.match(command, /^[a-z0-9_]{1,32}$/);
      assert.ok(description.length >= 3 && description.length <= 256);
    }
  });

  it("explains messages, replies, documents and each command", () => {
    const text = sendable(helpText());
    assert.match(text, /message/i);
    assert.match(text, /Reply/);
    assert.match(text, /document/i);
    for (const usage of ["/tasks", "/status ID", "/cancel ID", "/trace ID", "/approvals", "/memory", "/digest", "/budget", "/help"]) assert.ok(text.includes(`${usage} —`), usage);
  });
});

describe("the digest", () => {
  const view = (finished: TaskRecord[], machines?: Record<string, string>) => ({
    now: T0,
    finished,
    active: [],
    pendingApprovals: [],
    spend: { todayUsd: 0, monthUsd: 0, todayTop: [], days: 1 },
    limits: { dailyUsd: 10, perTaskUsd: 2 },
    runs: [],
    ...(machines ? { machines } : {}),
  });

  it("names the machines when tasks ran on more than one, and how many each ran", () => {
    const text = sendable(digestText(view([task("a"), task("b", { state: "failed", reason: "no key" }), task("c")], { a: "laptop", b: "server", c: "laptop" })));
    assert.match(text, /<b>Tasks<\/b>: 2 done, 1 failed or cancelled/);
    assert.match(text, /<b>Machines<\/b>: laptop 2, server 1/);
    assert.match(text, /❌ Task b · server — no key/);
    assert.match(text, /✅ Task a · laptop/);
  });

  it("reads as on one machine when a single machine ran every task, or none says where", () => {
    const alone = digestText(view([task("a"), task("b")]));
    assert.equal(digestText(view([task("a"), task("b")], { a: "laptop", b: "laptop" })), alone);
    assert.doesNotMatch(alone, /Machines|laptop/);
  });
});

describe("memoryText", () => {
  const view = (changes: string[]) => ({ text: "", bytes: 0, capBytes: 12 * 1024, entries: 0, runs: [{ at: T0 - 60_000, status: "applied" as const, entries: 6, changes }] });

  it("offers undo after a run that changed memory, and says a run that kept nothing kept nothing, without offering to undo the change before it", () => {
    const changed = sendable(memoryText(view(["added: The user likes tea."]), T0));
    assert.match(changed, /<b>Last change<\/b> 1m ago: 1 change from 6 journal entries\n• added: The user likes tea\.\n\/memory undo restores the version before it\./);
    const none = sendable(memoryText(view([]), T0));
    assert.match(none, /<b>Last run<\/b> 1m ago: nothing worth keeping in 6 journal entries/);
    assert.doesNotMatch(none, /undo/);
  });
});
