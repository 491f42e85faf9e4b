import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SessionEvent } from "../runtime/index.ts";
import type { TaskRecord } from "../tasks/index.ts";
import { send, tokenOf, type Setup, signedInDashboards, taskRecord } from "./support/dashboard.ts";

const XSS = "<img src=x onerror=alert(1)>";
const ESCAPED = "&lt;img src=x onerror=alert(1)&gt;";
const HOUR = 3_600_000;

const signedIn = signedInDashboards();

/** A running task as the daemon keeps it (the harness's record). */
const task = (id: string, fields: Partial<TaskRecord> = {}): TaskRecord => taskRecord(id, { state: "running", ...fields });

function ask(s: Setup, session: string, summary: string, target = "rm -rf build/") {
  return s.approvals.create({ session, tool_use_id: `toolu_${target.length}`, tool: "bash", input: { command: target }, summary, kind: "command", target, reason: 'rule "ask: rm *" in config.yaml' });
}

const answer = (s: Setup, session: string, id: string, body: string) =>
  send(s, `/approvals/${id}`, { method: "POST", cookie: session, type: "application/x-www-form-urlencoded", body });

describe("dashboard Now page", () => {
  it("lists a pending approval with the exact command, the rule, time left and three answer forms, escaping agent text", async () => {
    const { s, session } = await signedIn({ tasks: [task("t1", { title: `Fix ${XSS}`, state: "waiting_approval" })] });
    const record = ask(s, "t1", `delete ${XSS}`);
    s.clock.advance(5 * 60_000);
    const response = await send(s, "/", { cookie: session });
    assert.equal(response.status, 200);
    const page = await response.text();
    assert.ok(!page.includes(XSS), "agent text must come back escaped");
    assert.ok(page.includes(`delete ${ESCAPED}`), "the summary, escaped");
    assert.ok(page.includes(`Fix ${ESCAPED}`), "the task title, escaped");
    assert.match(page, /<code class="exact">rm -rf build\/<\/code>/);
    assert.match(page, /rule &quot;ask: rm \*&quot; in config\.yaml/);
    assert.match(page, /25 min left/);
    const token = await tokenOf(s, session);
    for (const decision of ["once", "task", "deny"]) {
      assert.ok(page.includes(`<form method="post" action="/approvals/${record.id}"><input type="hidden" name="_csrf" value="${token}"><input type="hidden" name="decision" value="${decision}">`), decision);
    }
    for (const label of ["Allow once", "Allow for this task", "Deny"]) assert.ok(page.includes(`>${label}</button>`), label);
    // The CSP allows no inline script or style: the page links its stylesheet and its one script, and has neither inline.
    assert.ok(page.includes(`<script src="/assets/live.js" defer></script>`));
    assert.doesNotMatch(page.replace(`<script src="/assets/live.js" defer></script>`, ""), /<script|<style|<[^>]*\s(style|on[a-z]+)=/i);
    assert.match(page, /<link rel="stylesheet" href="\/assets\/app.css">/);
    assert.match(page, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
    const css = await send(s, "/assets/app.css", { cookie: session });
    assert.match(css.headers.get("content-type") ?? "", /^text\/css/);
    assert.match(await css.text(), /min-height: 44px/);
    assert.equal((await send(s, "/assets/app.css")).status, 401, "the stylesheet is behind the session too");
  });

  it("answers an approval once through its form; a second answer says who answered first", async () => {
    const { s, session } = await signedIn({ tasks: [task("t1", { state: "waiting_approval" })] });
    const token = await tokenOf(s, session);
    const first = ask(s, "t1", "delete the build", "rm -rf build/");
    const response = await answer(s, session, first.id, `_csrf=${token}&decision=task`);
    assert.equal(response.status, 303);
    assert.equal(response.headers.get("location"), "/");
    assert.deepEqual({ ...s.approvals.answerOf(first.id), at: 0 }, { decision: "task", by: "dashboard", at: 0 });
    assert.ok(!(await (await send(s, "/", { cookie: session })).text()).includes(first.id), "no longer listed");

    const again = await answer(s, session, first.id, `_csrf=${token}&decision=deny`);
    assert.equal(again.status, 409);
    assert.match(await again.text(), /was already answered \(task\) by dashboard/);
    assert.equal(s.approvals.answerOf(first.id)?.decision, "task", "the first answer stands");

    // Answered on Telegram first: the page names who.
    const second = ask(s, "t1", "push", "git push --force");
    s.approvals.answer(second.id, { decision: "deny", by: "telegram:@ann" });
    const late = await answer(s, session, second.id, `_csrf=${token}&decision=once`);
    assert.equal(late.status, 409);
    assert.match(await late.text(), /was already answered \(deny\) by telegram:@ann/);
    assert.equal((await answer(s, session, "zzzzzzzz", `_csrf=${token}&decision=once`)).status, 404);
  });

  it("refuses an answer without the page's CSRF field and leaves the approval pending", async () => {
    const { s, session } = await signedIn({ tasks: [task("t1", { state: "waiting_approval" })] });
    const record = ask(s, "t1", "delete the build");
    const response = await answer(s, session, record.id, "decision=once");
    assert.equal(response.status, 403);
    assert.equal((await answer(s, session, record.id, "_csrf=not-the-token&decision=once")).status, 403);
    assert.equal(s.approvals.answerOf(record.id), undefined);
    assert.deepEqual(s.approvals.pending().map((pending) => pending.id), [record.id]);
  });

  it("shows the last day's failed tasks with their reason, running tasks' cost against budget, the queued count and today's spend", async () => {
    const now = Date.parse("2026-11-24T09:00:00Z");
    const spent: SessionEvent[] = [
      { type: "checkpoint", cost_usd: 0.42 } as SessionEvent,
      { type: "model_response", cost_usd: 0 } as SessionEvent,
      { type: "tool_start", at: now, id: "toolu_1", name: "bash", input: { command: `make report ${XSS}` } },
      { type: "budget_warning", at: now, kind: "usd", used: 4.1, limit: 5 },
    ];
    const { s, session } = await signedIn({
      spentToday: 3.5,
      dailyUsd: 10,
      events: { run1: spent },
      tasks: [
        task("old1", { title: "Old failure", state: "failed", finished: now - 30 * HOUR, reason: "long ago" }),
        task("bad1", { title: `Broken ${XSS}`, state: "failed", finished: now - 2 * HOUR, reason: `the model endpoint refused the key ${XSS}` }),
        task("run1", { title: "Write the report", state: "running" }),
        task("q1", { state: "queued" }),
        task("q2", { state: "queued" }),
      ],
    });
    const page = await (await send(s, "/", { cookie: session })).text();
    assert.ok(!page.includes(XSS));
    assert.match(page, /Failed in the last 24 hours \(1\)/);
    assert.ok(page.includes(`the model endpoint refused the key ${ESCAPED}`), "the failure's reason");
    assert.doesNotMatch(page, /Old failure|long ago/, "older than a day");
    assert.match(page, /<a class="task" href="\/tasks\/run1"><strong>Write the report<\/strong><\/a>[^]*running · step 1 of 10 · \$0\.4200 of \$5\.00/);
    assert.ok(page.includes(`<p class="line"><code>bash: make report ${ESCAPED}</code></p>`), "the last tool line, escaped");
    assert.ok(page.includes(`<p class="warn">Budget warning: usd $4.10 of $5.00</p>`), "a running task's budget warning");
    assert.match(page, /<a class="task" href="\/tasks\/bad1">/, "a failed task links to its page");
    assert.match(page, /queued: 2/);
    assert.match(page, /\$3\.50 of \$10\.00 \(budget\.daily_usd\)/);
    assert.doesNotMatch(page, /Task q1/, "queued tasks are counted, not listed");
  });

  it("says the daily budget is used up once today's spend reaches it", async () => {
    const { s, session } = await signedIn({ spentToday: 12, dailyUsd: 10 });
    const page = await (await send(s, "/", { cookie: session })).text();
    assert.match(page, /\$12\.00 of \$10\.00 \(budget\.daily_usd\) — the daily budget is used up/);
    assert.match(page, /No approval is waiting/);
  });
});
