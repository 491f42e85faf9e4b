import assert from "node:assert/strict";
import { appendFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createAuthStore } from "../dashboard/auth-store.ts";
import { openSessionLog, readSessionLogFrom, type SessionEvent, type SessionLog } from "../runtime/index.ts";
import { until } from "./support/cli.ts";
import { send, signedInDashboards, sseReader, taskRecord, tokenOf, type Setup } from "./support/dashboard.ts";

const signedIn = signedInDashboards();
const START = Date.parse("2026-11-24T09:00:00Z");
const XSS = "<img src=x onerror=alert(1)>";
const usage = { input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };

const turn = (n: number, text: string, tool?: string): SessionEvent => ({
  type: "model_response",
  at: START + n * 1000,
  turn: n,
  model: "claude-test",
  content: [{ type: "text", text }, ...(tool ? [{ type: "tool_use" as const, id: tool, name: "bash", input: { command: "ls" } }] : [])],
  stop_reason: tool ? "tool_use" : "end_turn",
  usage,
  cost_usd: 0.01,
  latency_ms: 800,
  request_bytes: 400,
});

/** A real session log under the harness's home, written as a session writes it. */
async function logOf(s: Setup, id: string, events: SessionEvent[]): Promise<SessionLog> {
  const log = await openSessionLog(join(s.home, "sessions", `${id}.jsonl`), id, { sync: false, now: () => START });
  await log.append(...events);
  return log;
}

const stream = (s: Setup, session: string, path: string, headers: Record<string, string> = {}) => send(s, path, { cookie: session, headers });

describe("dashboard live updates (SSE)", () => {
  it("refuses a stream without a session", async () => {
    const { s } = await signedIn({ tasks: [taskRecord("t1")] });
    assert.equal((await send(s, "/live?task=t1")).status, 401);
    assert.equal((await send(s, "/assets/live.js")).status, 401);
  });

  it("sends each new event of a task's log once, as `event: log` with its place in the log as id, and escapes what the model wrote", async () => {
    const { s, session } = await signedIn({ tasks: [taskRecord("t1", { state: "running" })] });
    const log = await logOf(s, "t1", [{ type: "session_start", at: START, task: taskRecord("t1").spec }, turn(1, "First.")]);
    const response = await stream(s, session, "/live?task=t1&after=2");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    const sse = sseReader(response);
    const [ready, head] = await sse.next(2);
    assert.deepEqual([ready!.event, ready!.retry], ["ready", "2000"]);
    assert.equal(head!.event, "head", "the header as it stands now");
    assert.match(JSON.parse(head!.data).html, /<dt>Turns<\/dt><dd>1 of 10<\/dd>/);

    await log.append(turn(2, `Second ${XSS}`, "toolu_1"));
    s.emit("t1");
    const [second] = await sse.next();
    assert.equal(second!.event, "log");
    assert.equal(second!.id, "3");
    const fragment = JSON.parse(second!.data) as { append: string };
    assert.ok(!fragment.append.includes(XSS), "model text comes back escaped");
    assert.match(fragment.append, /Second &lt;img src=x onerror=alert\(1\)&gt;/);
    assert.match(fragment.append, /<section class="tool" id="tool-toolu_1">/);

    // A tool call's later events redraw its block where the turn drew it.
    await log.append({ type: "permission", at: START + 3100, id: "toolu_1", tool: "bash", kind: "command", target: "ls", action: "allow", reason: 'rule "allow: ls" in config.yaml' });
    await log.append({ type: "tool_end", at: START + 3500, id: "toolu_1", name: "bash", output: XSS, is_error: false, duration_ms: 400 });
    s.emit("t1");
    const events = (await sse.next(3)).filter((event) => event.event === "log");
    assert.deepEqual(events.map((event) => event.id), ["4", "5"]);
    const redrawn = JSON.parse(events[1]!.data) as { tool: string; html: string };
    assert.equal(redrawn.tool, "tool-toolu_1");
    assert.match(redrawn.html, /<span class="chip allow">allow<\/span> command <code>ls<\/code> · rule &quot;allow: ls&quot;/);
    assert.match(redrawn.html, /<pre>&lt;img src=x onerror=alert\(1\)&gt;<\/pre>/);
    await sse.close();
    await log.close();
  });

  it("resumes after Last-Event-ID without gaps or doubles, even when it is ahead of the page", async () => {
    const { s, session } = await signedIn({ tasks: [taskRecord("t1", { state: "running" })] });
    const log = await logOf(s, "t1", [turn(1, "one"), turn(2, "two"), turn(3, "three"), turn(4, "four")]);
    // The page was drawn with 1 event; the stream had sent up to id 3 before the connection dropped.
    const sse = sseReader(await stream(s, session, "/live?task=t1&after=1", { "last-event-id": "3" }));
    const events = await sse.next(3);
    const logs = events.filter((event) => event.event === "log");
    assert.deepEqual(logs.map((event) => event.id), ["4"]);
    assert.match(JSON.parse(logs[0]!.data).append, /four/);
    await sse.close();
    await log.close();
  });

  it("redraws the header with an approval pinned on top when the task asks", async () => {
    const { s, session } = await signedIn({ tasks: [taskRecord("t1", { state: "waiting_approval" })] });
    const log = await logOf(s, "t1", [turn(1, "one", "toolu_1")]);
    const sse = sseReader(await stream(s, session, "/live?task=t1&after=1"));
    await sse.next(2);
    const record = s.approvals.create({ session: "t1.toolu_1.reviewer", tool_use_id: "toolu_9", tool: "bash", input: { command: "rm -rf build" }, summary: "delete build", kind: "command", target: "rm -rf build", reason: 'rule "ask: rm *"' });
    s.emit("t1.toolu_1.reviewer"); // a specialist of the task asked
    const [head] = await sse.next();
    assert.equal(head!.event, "head");
    const html = JSON.parse(head!.data).html as string;
    assert.ok(html.includes(`action="/approvals/${record.id}"`), html);
    assert.ok(html.includes(`<input type="hidden" name="back" value="/tasks/t1">`));
    await sse.close();
    await log.close();
  });

  it("pings every 15 s on the daemon's clock, so tunnels keep the stream", async () => {
    const { s, session } = await signedIn({ tasks: [taskRecord("t1")] });
    const sse = sseReader(await stream(s, session, "/live"));
    assert.equal((await sse.next())[0]!.event, "ready");
    s.clock.advance(15_000);
    assert.equal((await sse.next())[0]!.event, "ping");
    s.clock.advance(15_000);
    assert.equal((await sse.next())[0]!.event, "ping");
    await sse.close();
  });

  it("tells the Now page once per burst that something changed", async () => {
    const { s, session } = await signedIn({ tasks: [taskRecord("t1")] });
    const sse = sseReader(await stream(s, session, "/live"));
    await sse.next();
    s.emit("t1");
    s.emit("t2");
    s.emit("t1.toolu_1.reviewer");
    const [changed] = await sse.next();
    assert.equal(changed!.event, "changed");
    s.clock.advance(15_000);
    assert.equal((await sse.next())[0]!.event, "ping", "one `changed` for the burst, then nothing until the ping");
    await sse.close();
  });

  it("ends a finished task's stream after its last events, and cleans up after a tab that closed at once", async () => {
    const { s, session } = await signedIn({ tasks: [taskRecord("t1", { state: "done" })] });
    const log = await logOf(s, "t1", [turn(1, "one"), { type: "session_end", at: START + 5000, status: "done", answer: "All done.", turns: 1, cost_usd: 0.01, tokens: { input: 1, output: 1, cache_read: 0, cache_write: 0 } }]);
    const sse = sseReader(await stream(s, session, "/live?task=t1&after=1"));
    const events = await sse.next(4);
    assert.deepEqual(events.map((event) => event.event), ["ready", "log", "head", "gone"]);
    assert.equal(events[1]!.id, "2");
    await assert.rejects(sse.next(), /the stream ended/, "nothing more comes");
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(s.watching(), 0);

    // A tab closed before the stream has read the log.
    const running = await signedIn({ tasks: [taskRecord("t2", { state: "running" })] });
    const early = sseReader(await stream(running.s, running.session, "/live?task=t2"));
    await early.close();
    // The stream's first read of the log is I/O: wait for it to finish, then for the cleanup.
    await until(() => running.s.watching() === 0, "the closed stream's cleanup");
    assert.equal(running.s.watching(), 0, "its watcher is gone");
    await log.close();
  });

  it("ends a stream whose session was logged out, at the next ping", async () => {
    const { s, session } = await signedIn({ tasks: [taskRecord("t1")] });
    const sse = sseReader(await stream(s, session, "/live"));
    await sse.next();
    createAuthStore(join(s.home, "state", "dashboard"), s.clock).logoutAll();
    s.clock.advance(15_000);
    const [gone] = await sse.next();
    assert.deepEqual([gone!.event, gone!.data], ["gone", "Signed out."]);
    await assert.rejects(sse.next(), /the stream ended/);
  });

  it("goes on past an event it cannot draw, and says so in the trace", async () => {
    const { s, session } = await signedIn({ tasks: [taskRecord("t1", { state: "running" })] });
    const log = await logOf(s, "t1", [turn(1, "one", "toolu_1")]);
    const sse = sseReader(await stream(s, session, "/live?task=t1&after=1"));
    await sse.next(2);
    await log.append({ type: "tool_end", at: START, id: "toolu_1", name: "bash" } as SessionEvent, turn(2, "two"));
    s.emit("t1");
    const [broken, next] = (await sse.next(3)).filter((event) => event.event === "log");
    assert.deepEqual([broken!.id, broken!.data], ["2", "{}"]);
    assert.equal(next!.id, "3");
    assert.match(JSON.parse(next!.data).append, /two/);
    assert.match(readFileSync(s.traceFile, "utf8"), /"event":"dashboard_live_problem".*event 2 could not be drawn/);
    await sse.close();
    await log.close();
  });

  it("says a task is gone instead of following an unknown id", async () => {
    const { s, session } = await signedIn();
    const sse = sseReader(await stream(s, session, "/live?task=nope"));
    const [gone] = await sse.next();
    assert.deepEqual([gone!.event, gone!.data], ["gone", "No such task."]);
  });
});

describe("dashboard Task page actions", () => {
  it("is live at the log's tail only, and loads its one script", async () => {
    const { s, session } = await signedIn({ tasks: [taskRecord("t1", { state: "running" })] });
    const log = await logOf(s, "t1", Array.from({ length: 250 }, (_, i) => turn(i + 1, `turn ${i + 1}`)));
    const tail = await (await send(s, "/tasks/t1", { cookie: session })).text();
    assert.match(tail, /<div id="live" data-live="task" data-task="t1" data-after="250">/);
    assert.ok(tail.includes(`<script src="/assets/live.js" defer></script>`));
    const earlier = await (await send(s, "/tasks/t1?before=50", { cookie: session })).text();
    assert.doesNotMatch(earlier, /data-live=/, "an earlier window does not grow");
    const script = await send(s, "/assets/live.js", { cookie: session });
    assert.equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.match(await script.text(), /new EventSource\(/);
    await log.close();
  });

  it("pins the task's pending approval on top; answered there, it returns to the task", async () => {
    const { s, session } = await signedIn({ tasks: [taskRecord("t1", { state: "waiting_approval" }), taskRecord("t2", { state: "waiting_approval" })] });
    const mine = s.approvals.create({ session: "t1", tool_use_id: "toolu_1", tool: "bash", input: { command: "rm x" }, summary: `delete ${XSS}`, kind: "command", target: "rm x", reason: "rule" });
    const other = s.approvals.create({ session: "t2", tool_use_id: "toolu_2", tool: "bash", input: { command: "rm y" }, summary: "delete y", kind: "command", target: "rm y", reason: "rule" });
    const page = await (await send(s, "/tasks/t1", { cookie: session })).text();
    const head = page.slice(page.indexOf('<div id="head">'), page.indexOf("<h2>Session log</h2>"));
    assert.ok(head.includes(`action="/approvals/${mine.id}"`), "pinned in the header");
    assert.ok(!page.includes(`action="/approvals/${other.id}"`), "another task's approval is not");
    assert.ok(!page.includes(XSS));
    const token = await tokenOf(s, session);
    const answered = await send(s, `/approvals/${mine.id}`, { method: "POST", cookie: session, type: "application/x-www-form-urlencoded", body: `_csrf=${token}&decision=once&back=%2Ftasks%2Ft1` });
    assert.equal(answered.status, 303);
    assert.equal(answered.headers.get("location"), "/tasks/t1");
    // A `back` elsewhere is not followed.
    const elsewhere = await send(s, `/approvals/${other.id}`, { method: "POST", cookie: session, type: "application/x-www-form-urlencoded", body: `_csrf=${token}&decision=deny&back=https%3A%2F%2Fevil.example%2F` });
    assert.equal(elsewhere.headers.get("location"), "/");
  });

  it("cancels a running task with the page's token; a finished one has no button and says so", async () => {
    const { s, session } = await signedIn({ tasks: [taskRecord("t1", { state: "running" }), taskRecord("t2", { state: "done" })] });
    const running = await (await send(s, "/tasks/t1", { cookie: session })).text();
    assert.match(running, /<form method="post" action="\/tasks\/t1\/cancel" class="cancel">/);
    assert.doesNotMatch(await (await send(s, "/tasks/t2", { cookie: session })).text(), /\/cancel"/);
    const token = await tokenOf(s, session);
    const form = { method: "POST", cookie: session, type: "application/x-www-form-urlencoded" };
    assert.equal((await send(s, "/tasks/t1/cancel", { ...form, body: "_csrf=wrong" })).status, 403);
    assert.deepEqual(s.cancelled, [], "no cancel without the token");
    const cancelled = await send(s, "/tasks/t1/cancel", { ...form, body: `_csrf=${token}` });
    assert.equal(cancelled.status, 303);
    assert.equal(cancelled.headers.get("location"), "/tasks/t1");
    assert.deepEqual(s.cancelled, ["t1"]);
    const late = await send(s, "/tasks/t2/cancel", { ...form, body: `_csrf=${token}` });
    assert.equal(late.status, 409);
    assert.match(await late.text(), /already ended/);
    assert.equal((await send(s, "/tasks/zzz/cancel", { ...form, body: `_csrf=${token}` })).status, 404);
  });
});

describe("a staged task's changes on the dashboard", () => {
  it("links them from the task, shows the list and the escaped diff, and applies or discards with the page's token", async () => {
    const done: string[] = [];
    const staged = {
      has: (id: string) => id === "t1" && !done.includes("t1"),
      view: async () => ({ original: "/home/ann/app", changes: ["M index.html (+1 −1)"], diff: "diff --git a/index.html b/index.html\n-<p>old</p>\n+<script>alert(1)</script>\n" }),
      apply: async (id: string) => (done.push(id), { ok: true, message: "applied 1 change to /home/ann/app." }),
      discard: async (id: string) => (done.push(id), { ok: true, message: "Discarded." }),
    };
    const { s, session } = await signedIn({ tasks: [taskRecord("t1", { state: "done" }), taskRecord("t2", { state: "done" })], staged });
    assert.match(await (await send(s, "/tasks/t1", { cookie: session })).text(), /<a href="\/tasks\/t1\/changes">review its changes, then apply or discard them<\/a>/);
    assert.doesNotMatch(await (await send(s, "/tasks/t2", { cookie: session })).text(), /\/changes"/);
    const page = await (await send(s, "/tasks/t1/changes", { cookie: session })).text();
    assert.match(page, /<li><code>M index\.html \(\+1 −1\)<\/code><\/li>/);
    assert.match(page, /\+&lt;script&gt;alert\(1\)&lt;\/script&gt;/, "the diff is text, never markup");
    assert.match(page, /<form method="post" action="\/tasks\/t1\/apply" class="inline">/);
    assert.equal((await send(s, "/tasks/t2/changes", { cookie: session })).status, 404);
    const form = { method: "POST", cookie: session, type: "application/x-www-form-urlencoded" };
    assert.equal((await send(s, "/tasks/t1/apply", { ...form, body: "_csrf=wrong" })).status, 403);
    assert.deepEqual(done, [], "nothing without the token");
    const applied = await send(s, "/tasks/t1/apply", { ...form, body: `_csrf=${await tokenOf(s, session)}` });
    assert.equal(applied.status, 200);
    assert.match(await applied.text(), /applied 1 change to \/home\/ann\/app\./);
    assert.equal((await send(s, "/tasks/t1/discard", { ...form, body: `_csrf=${await tokenOf(s, session)}` })).status, 404, "nothing left to discard");
  });
});

describe("following a growing session log (readSessionLogFrom)", () => {
  it("reads each complete line once, leaves a line still being written for the next read, and names a damaged line", async () => {
    const { s } = await signedIn();
    const path = join(s.home, "sessions", "t1.jsonl");
    const log = await logOf(s, "t1", [turn(1, "one")]);
    const first = await readSessionLogFrom(path, 0);
    assert.deepEqual(first.events.map((event) => event.type), ["model_response"]);
    assert.deepEqual(await readSessionLogFrom(path, first.offset), { events: [], offset: first.offset }, "nothing new");
    await log.append(turn(2, "two"));
    await log.close();
    appendFileSync(path, '{"type":"warning","at":1,"mess'); // a write under way
    const second = await readSessionLogFrom(path, first.offset);
    assert.deepEqual(second.events.map((event) => (event as { turn?: number }).turn), [2]);
    appendFileSync(path, 'age":"late"}\n');
    const third = await readSessionLogFrom(path, second.offset);
    assert.deepEqual(third.events, [{ type: "warning", at: 1, message: "late" }]);
    appendFileSync(path, "{broken\n");
    await assert.rejects(readSessionLogFrom(path, third.offset), /t1\.jsonl:1 after byte \d+: damaged line/);
    await assert.rejects(readSessionLogFrom(path, 0), /t1\.jsonl:5: damaged line/, "from the start, the file's own line number");
  });
});
