import { Hono } from "hono";
import { changesBody, changesLink, type StagedSources } from "./changes-page.ts";
import { deleteCookie, setCookie } from "hono/cookie";
import { html } from "hono/html";
import type { ApprovalStore, Clock, TraceLogger } from "../runtime/index.ts";
import type { TaskReader } from "../tasks/index.ts";
import { createAuthStore, csrfTokenOf, SESSION_TTL_MS, type AuthStore } from "./auth-store.ts";
import { guard, hostOf, originsFor, securityHeaders, SESSION_COOKIE } from "./guard.ts";
import { journalBody, noJournalBody } from "./journal-page.ts";
import { LOGIN_SCRIPT } from "./login-script.ts";
import { costBody, readCost, type CostSources } from "./cost-page.ts";
import { healthBody, type HealthSources } from "./health-page.ts";
import { memoryBody, readMemory, type MemorySources } from "./memory-page.ts";
import { nowBody, readNow, type NowSources } from "./now.ts";
import { APP_CSS } from "./style.ts";
import { liveStream, type LiveSources } from "./live.ts";
import { LIVE_SCRIPT } from "./live-script.ts";
import { approvalsOf, findTask, fullOutput, readTask, taskBody, taskHead, taskPath, type TaskPageSources } from "./task-page.ts";
import { lanesOf } from "./lanes.ts";
import { tasksBody, type SharedList } from "./tasks-list.ts";
import { readTrace, traceBody } from "./trace-page.ts";

export interface DashboardDeps extends Omit<NowSources, "tasks"> {
  /** What the bot reads too (`daemon.tasks`): Now's questions, the Tasks page's indexed `list`, a task by id. */
  tasks: NowSources["tasks"] & Pick<TaskReader, "list" | "find">;
  /** `state/dashboard/`: login links and sessions (hashes only). */
  dir: string;
  clock: Clock;
  /** Logins and failed attempts are written here, never a secret. */
  trace: Pick<TraceLogger, "info" | "warn">;
  /** `dashboard.port`: the loopback Host names and origins it answers to. */
  port: number;
  /** `dashboard.public_url`: the tunnel's https origin, also answered to. */
  publicUrl?: string;
  /** Where answers given on the page go; `by` is "dashboard". First answer wins, whoever gives it. */
  approvals: NowSources["approvals"] & Pick<ApprovalStore, "answer">;
  /** MEMORY.md, its history and the journal its sources cite, and the memory service's undo. */
  memory: MemorySources;
  /** Priced charges since a time, counted as the daily budget counts them (the daemon: `chargeReader`). */
  charges: CostSources["charges"];
  /** Several machines: the others' spend and every machine's costliest tasks, for the Cost page. */
  costElsewhere?: CostSources["elsewhere"];
  /** A task's specialists' own logs, for their lanes on the Task page and their calls on the Trace page (the daemon: `specialistLogs`). */
  readSpecialists: TaskPageSources["readSpecialists"];
  /** Several machines: another machine's task, for its Task and Trace pages (its log is the store's copy: `readEvents`). */
  findElsewhere?: TaskPageSources["findElsewhere"];
  /** Several machines: the Tasks page lists every machine's tasks from the store. */
  listShared?: SharedList;
  /** What `nightshift doctor` checks, run when the Health page is loaded. */
  checks: HealthSources["checks"];
  /** Live updates: the daemon's events as they are emitted, and a task's log read from where a stream left off. */
  watch: LiveSources["watch"];
  readLogFrom: LiveSources["readLogFrom"];
  /** The daemon's cancel, as `nightshift cancel` and /cancel use it. */
  cancel(id: string, reason: string): Promise<"cancelling" | "cancelled" | "unknown" | "finished">;
  /** Staged tasks' copies: their changes, apply and discard (the same as `nightshift changes|apply|discard`). */
  staged?: StagedSources;
}

const DECISIONS = new Set(["once", "task", "deny"]);

/**
 * The dashboard as a Hono app: security layer, one-time-link login, the Now page and the answers
 * to approvals. Serve it with `serveDashboard`; tests call `app.request()`.
 */
export function createDashboard(deps: DashboardDeps): Hono<{ Variables: { session: string } }> {
  const auth: AuthStore = createAuthStore(deps.dir, deps.clock);
  const origins = originsFor(deps.port, deps.publicUrl);
  const app = new Hono<{ Variables: { session: string } }>();
  app.use(securityHeaders());
  app.use(guard({ origins, auth }));

  app.get("/assets/login.js", (c) => c.body(LOGIN_SCRIPT, 200, { "Content-Type": "text/javascript; charset=utf-8" }));
  // A GET never spends a link: link previews and prefetchers load pages.
  app.get("/login", (c) => c.html(page("Sign in", html`<h1>Nightshift</h1>
<p><button id="login" type="button">Sign in to the dashboard</button></p>
<p id="status" role="status"></p>
<script src="/assets/login.js"></script>`)));

  app.post("/login", async (c) => {
    const host = hostOf(c);
    const body = (await c.req.json().catch(() => undefined)) as { secret?: unknown } | undefined;
    const secret = typeof body?.secret === "string" ? body.secret : "";
    const result = auth.spendLink(secret);
    if (result !== "ok") {
      deps.trace.warn({ event: "dashboard_login_failed", reason: result, host }, `dashboard login refused (${result} link)`);
      return c.text("This login link was already used, has expired or is not one: run `nightshift dashboard` or send /dashboard to the bot for a new one.\n", 403);
    }
    const session = auth.createSession();
    setCookie(c, SESSION_COOKIE, session.id, {
      httpOnly: true,
      sameSite: "Strict",
      path: "/",
      maxAge: SESSION_TTL_MS / 1000,
      secure: new URL(c.req.url).protocol === "https:" || host === origins.secureHost,
    });
    deps.trace.info({ event: "dashboard_login", host }, "dashboard login");
    return c.json({ ok: true });
  });

  app.get("/assets/app.css", (c) => c.body(APP_CSS, 200, { "Content-Type": "text/css; charset=utf-8" }));
  app.get("/assets/live.js", (c) => c.body(LIVE_SCRIPT, 200, { "Content-Type": "text/javascript; charset=utf-8" }));
  app.get("/live", (c) => {
    const session = c.get("session");
    const csrf = csrfTokenOf(session);
    return liveStream(c, {
      signedIn: () => auth.hasSession(session),
      problem: (message) => deps.trace.warn({ event: "dashboard_live_problem", message }, message),
      clock: deps.clock,
      watch: deps.watch,
      readLogFrom: deps.readLogFrom,
      find: (id) => findTask(deps, id),
      head: async (task, events) => {
        const lanes = lanesOf(task, events, await deps.readSpecialists(task.id).catch(() => []));
        return String(taskHead(task, events, approvalsOf(deps.approvals.pending(), task.id), lanes, deps.clock.now(), csrf));
      },
    });
  });
  app.get("/", async (c) => c.html(page("Nightshift · Now", nowBody(await readNow(deps, deps.clock.now()), csrfTokenOf(c.get("session"))), true)));

  app.get("/tasks", async (c) => c.html(page("Nightshift · Tasks", await tasksBody(deps.tasks, c.req.query(), deps.clock.now(), deps.listShared), true)));
  app.get("/tasks/:id", async (c) => {
    const view = await readTask(deps, c.req.param("id"), c.req.query("before"));
    if (!view) return c.html(noSuchTask(c.req.param("id")), 404);
    const staged = deps.staged?.has(view.task.id) ? changesLink(view.task.id) : "";
    return c.html(page(`Nightshift · ${view.task.title || "Task"}`, html`${staged}${taskBody(view, deps.clock.now(), csrfTokenOf(c.get("session")))}`, true));
  });
  // The same cancel as `nightshift cancel` and /cancel; the guard has checked Origin and the CSRF token.
  app.post("/tasks/:id/cancel", async (c) => {
    const task = await findTask(deps, c.req.param("id"));
    if (!task) return c.html(page("Not cancelled", html`<h1>Not cancelled</h1><p>No task has the id <code>${c.req.param("id")}</code>.</p>${back}`, true), 404);
    const result = await deps.cancel(task.id, "cancelled on the dashboard");
    deps.trace.info({ event: "dashboard_cancel", session: task.id, result }, `task ${task.id} cancel on the dashboard: ${result}`);
    if (result === "finished") return c.html(page("Not cancelled", html`<h1>Not cancelled</h1><p>The task had already ended.</p><p><a href="${taskPath(task.id)}">Back to the task</a></p>`, true), 409);
    return c.redirect(taskPath(task.id), 303);
  });
  app.get("/tasks/:id/changes", async (c) => {
    const task = deps.tasks.find(c.req.param("id"));
    const view = task && deps.staged?.has(task.id) ? await deps.staged.view(task.id) : undefined;
    if (!task || !view) return c.html(page("No changes", html`<h1>No staged changes</h1><p>Task <code>${c.req.param("id")}</code> has no staged copy: it worked in its folder directly, or its changes were applied or discarded.</p>${back}`, true), 404);
    return c.html(page(`Nightshift · Changes · ${task.title || "Task"}`, changesBody(task.id, task.title, view, csrfTokenOf(c.get("session"))), true));
  });
  // Apply and Discard, as `nightshift apply|discard`; the guard has checked Origin and the CSRF token.
  for (const action of ["apply", "discard"] as const) {
    app.post(`/tasks/:id/${action}`, async (c) => {
      const task = deps.tasks.find(c.req.param("id"));
      if (!task || !deps.staged?.has(task.id)) return c.html(page("Nothing to do", html`<h1>Nothing to ${action}</h1><p>Task <code>${c.req.param("id")}</code> has no staged copy (any more).</p>${back}`, true), 404);
      const result = await deps.staged[action](task.id).catch((error: unknown) => ({ ok: false, message: (error as Error).message }));
      deps.trace.info({ event: `dashboard_${action}`, session: task.id, ok: result.ok }, `task ${task.id} ${action} on the dashboard: ${result.message.split("\n")[0]}`);
      return c.html(page(result.ok ? "Done" : "Not all done", html`<h1>${action === "apply" ? "Apply" : "Discard"}</h1><pre class="result">${result.message}</pre><p><a href="${taskPath(task.id)}">Back to the task</a></p>`, true), result.ok ? 200 : 409);
    });
  }
  app.get("/tasks/:id/trace", async (c) => {
    const view = await readTrace(deps, c.req.param("id"), c.req.query("before"), deps.clock.now());
    if (!view) return c.html(noSuchTask(c.req.param("id")), 404);
    return c.html(page(`Nightshift · Trace · ${view.task.title || "Task"}`, traceBody(view), true));
  });
  // "Show all" of a cut output: plain text (with nosniff), so nothing in it can run.
  app.get("/tasks/:id/output/:tool", async (c) => {
    const view = await readTask(deps, c.req.param("id"), undefined);
    const text = view && fullOutput(view.events, c.req.param("tool"));
    return text === undefined ? c.text("No such tool call.\n", 404) : c.text(text);
  });

  // A form post from the Now page; the guard has checked Origin and the CSRF token.
  app.post("/approvals/:id", async (c) => {
    const form = await c.req.parseBody();
    const decision = form["decision"];
    // Answered from a Task page, the answer returns there; anything else returns to Now.
    const to = typeof form["back"] === "string" && /^\/tasks\/[\w.%-]+$/.test(form["back"]) ? form["back"] : "/";
    if (typeof decision !== "string" || !DECISIONS.has(decision)) return c.html(page("Not answered", html`<h1>Not answered</h1><p>The answer must be once, task or deny.</p>${back}`, true), 400);
    const result = deps.approvals.answer(c.req.param("id"), { decision: decision as "once" | "task" | "deny", by: "dashboard" });
    if (!result.ok) return c.html(page("Not answered", html`<h1>Not answered</h1><p>${capital(result.message)}.</p>${back}`, true), result.problem === "unknown" ? 404 : 409);
    deps.trace.info({ event: "dashboard_approval_answered", approval: result.record.id, session: result.record.session, decision }, `approval ${result.record.id} answered on the dashboard (${decision})`);
    return c.redirect(to, 303);
  });

  app.get("/memory", async (c) => c.html(page("Nightshift · Memory", memoryBody(await readMemory(deps.memory), csrfTokenOf(c.get("session"))), true)));
  // The same undo as `/memory undo` on Telegram; the guard has checked Origin and the CSRF token.
  app.post("/memory/undo", (c) => {
    const said = deps.memory.undo();
    deps.trace.info({ event: "dashboard_memory_undo" }, `memory undo on the dashboard: ${said}`);
    return c.redirect("/memory", 303);
  });

  // A day of the journal, where the Memory page's sources link to. The journal reads only a name
  // of the form YYYY-MM-DD, so nothing else (`..`, a slash) can name a file.
  // Several machines: `?machine=` names whose journal; another machine's day is read from the shared store.
  app.get("/memory/journal/:day", async (c) => {
    const day = c.req.param("day");
    const machine = c.req.query("machine");
    const elsewhere = deps.memory.elsewhere;
    const theirs = machine && elsewhere && machine !== elsewhere.machine ? machine : undefined;
    const entries = theirs ? await elsewhere!.day(theirs, day).catch(() => undefined) : deps.memory.journal.day(day);
    if (!entries) return c.html(page("No such journal day", noJournalBody(day, theirs), true), 404);
    return c.html(page(`Nightshift · Journal ${day}`, journalBody(day, entries, theirs), true));
  });

  app.get("/cost", async (c) => c.html(page("Nightshift · Cost", costBody(await readCost({ ...deps, ...(deps.costElsewhere ? { elsewhere: deps.costElsewhere } : {}) }, deps.clock.now())), true)));

  app.get("/health", async (c) => c.html(page("Nightshift · Health", await healthBody(deps, deps.clock.now()), true)));

  app.post("/logout", (c) => {
    auth.endSession(c.get("session"));
    deleteCookie(c, SESSION_COOKIE, { path: "/" });
    deps.trace.info({ event: "dashboard_logout", host: hostOf(c) }, "dashboard logout");
    return c.html(page("Signed out", html`<h1>Signed out</h1><p>Run <code>nightshift dashboard</code> for a new login link.</p>`));
  });

  app.notFound((c) => c.text("Not found.\n", 404));
  return app;
}

const nav = html`<nav class="top"><a href="/">Now</a><a href="/tasks">Tasks</a><a href="/memory">Memory</a><a href="/cost">Cost</a><a href="/health">Health</a></nav>`;
const back = html`<p><a href="/">Back to Now</a></p>`;
const noSuchTask = (id: string) => page("No such task", html`<h1>No such task</h1><p>No task has the id <code>${id}</code>.</p><p><a href="/tasks">All tasks</a></p>`, true);
const capital = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

/** `styled`: pages behind the session link the stylesheet (itself behind the session). */
function page(title: string, body: ReturnType<typeof html>, styled = false) {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${title}</title>${styled ? html`<link rel="stylesheet" href="/assets/app.css">` : ""}</head>
<body>${styled ? nav : ""}${body}${styled ? html`<script src="/assets/live.js" defer></script>` : ""}</body></html>`;
}
