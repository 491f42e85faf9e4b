/**
 * What the dashboard costs: how fast its pages render in a phone-sized headless Chromium with a big
 * history behind them, and what the daemon holds while the dashboard waits for someone. A real
 * `nightshift start` (dist/, as `npm start` runs it) in a child process, its home under /var/tmp
 * seeded before the start; Debian's chromium-headless-shell driven by playwright-core. Run alone
 * with `node bench/dashboard.ts [--before DIR]`, or with the other benches through `node bench/run.ts`.
 * System clock, real processes; nothing is asserted.
 */

import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import type { EventOf, SessionEvent } from "../runtime/index.ts";
import { openSessionLog } from "../runtime/session-log.ts";
import { openState } from "../tasks/state.ts";
import { freePort, launchChromium, PHONE, signIn, startDashboardDaemon, type DashboardDaemon } from "../test/support/browser.ts";
import { syntheticId, writeV1State } from "../test/support/state-history.ts";
import { clockTicks, cpuMs, formatRows, median, procKb, type Row } from "./daemon.ts";

const ROOT = join(import.meta.dirname, "..");
/** The daemon as `npm start` runs it: emitted JavaScript (`npm run build`). */
const distCli = (root: string) => join(root, "dist", "cli", "nightshift.js");
const RENDER_GOAL_MS = 300;

// ---------------------------------------------------------------- first render

/**
 * Navigation start → load event end, first contentful paint and the server's part (request sent →
 * first byte) of one page, from the browser's own Navigation and Paint Timing entries. Each run
 * opens a new tab in the signed-in context (the stylesheet is `no-store`, so it is fetched every
 * time, as on a phone); one untimed run first.
 */
async function firstRender(page: Page, url: string, runs: number): Promise<{ load: number[]; paint: number[]; server: number[]; bytes: number }> {
  const load: number[] = [];
  const paint: number[] = [];
  const server: number[] = [];
  let bytes = 0;
  for (let run = -1; run < runs; run++) {
    const tab = await page.context().newPage();
    const response = await tab.goto(url, { waitUntil: "load" });
    if (response?.status() !== 200) throw new Error(`${url} answered ${response?.status()}`);
    // A string: the project has no DOM types. loadEventEnd is set once the load handlers are done;
    // the first paint may come after the load event, so it is awaited (buffered: one already made counts).
    const timing = await tab.evaluate<{ load: number; paint: number; server: number; bytes: number }>(`new Promise((resolve) => {
      const nav = performance.getEntriesByType("navigation")[0];
      const done = (paint) => resolve({ load: nav.loadEventEnd, paint, server: nav.responseStart - nav.requestStart, bytes: nav.decodedBodySize });
      new PerformanceObserver((list) => {
        const entry = list.getEntriesByName("first-contentful-paint")[0];
        if (entry) done(entry.startTime);
      }).observe({ type: "paint", buffered: true });
      setTimeout(() => done(NaN), 5000);
    })`);
    await tab.close();
    if (run < 0) continue;
    load.push(timing.load);
    paint.push(timing.paint);
    server.push(timing.server);
    bytes = timing.bytes;
  }
  return { load, paint, server, bytes };
}

function renderRows(what: string, figures: Awaited<ReturnType<typeof firstRender>>): Row[] {
  const runs = figures.load.length;
  return [
    { name: `${what}: navigation → first contentful paint, median of ${runs}`, value: median(figures.paint), unit: "ms", target: RENDER_GOAL_MS },
    { name: "  navigation → load event, median", value: median(figures.load), unit: "ms", target: RENDER_GOAL_MS },
    { name: "  slowest run (load event)", value: Math.max(...figures.load), unit: "ms" },
    { name: "  of which the daemon (request → first byte), median", value: median(figures.server), unit: "ms" },
    { name: "  page size (HTML)", value: figures.bytes, unit: "bytes" },
  ];
}

/** A finished task's log of `count` events: turns of a model response (text and a bash call), its permission, start and end. */
async function writeLongLog(home: string, id: string, count: number): Promise<void> {
  const at = Date.now() - 3_600_000;
  const log = await openSessionLog(join(home, "sessions", `${id}.jsonl`), id, { sync: false });
  const events: SessionEvent[] = [{ type: "session_start", at, task: { title: "A long session", prompt: "Work through the items one by one.", workdir: join(home, "workspace"), model: "main", budget: { max_turns: 5_000, max_usd: 100, timeout_ms: 86_400_000 } } }];
  for (let turn = 1; events.length < count - 1; turn++) {
    const toolId = `toolu_01Bench${String(turn).padStart(6, "0")}`;
    const input = { command: `grep -rn "watchConfig" src/ --include=*.ts | head -n 20  # step ${turn}` };
    const output = Array.from({ length: 6 }, (_, line) => `src/config/watch-${line}.ts:${turn + line * 7}:  const handle = watchConfig(path, { debounceMs: 200, onChange: "reload" });`).join("\n");
    const step: SessionEvent[] = [
      { type: "model_response", at: at + turn * 400, turn, model: "claude-sonnet-4-5", content: [{ type: "text", text: `Step ${turn}: looking for the next place the config is watched.` }, { type: "tool_use", id: toolId, name: "bash", input }], stop_reason: "tool_use", usage: { input_tokens: 12, output_tokens: 180, cache_read_input_tokens: 21_400, cache_creation_input_tokens: 950 }, cost_usd: 0.0043, latency_ms: 2140, request_bytes: 18_000 },
      { type: "permission", at: at + turn * 400 + 1, id: toolId, tool: "bash", kind: "command", target: input.command, action: "allow", reason: 'allowed by rule "allow command grep *" (default)' },
      { type: "tool_start", at: at + turn * 400 + 2, id: toolId, name: "bash", input },
      { type: "tool_end", at: at + turn * 400 + 60, id: toolId, name: "bash", output, is_error: false, duration_ms: 58 },
    ];
    events.push(...step.slice(0, count - 1 - events.length));
  }
  const end: EventOf<"session_end"> = { type: "session_end", at: at + 3_000_000, status: "done", answer: "Every place the config is watched is listed above.", turns: 1, cost_usd: 5.4, tokens: { input: 0, output: 0, cache_read: 0, cache_write: 0 } };
  events.push(end);
  for (let index = 0; index < events.length; index += 500) await log.append(...events.slice(index, index + 500));
  await log.close();
}

/** A home whose state holds `tasks` finished tasks, a minute apart up to now (every tenth failed), moved into SQLite before the daemon starts. */
async function seedTasks(home: string, tasks: number): Promise<void> {
  writeV1State(home, tasks, Date.now(), { queued: false });
  (await openState(home, Date.now)).store.close();
}

/**
 * First render of Now with 1,000 tasks in the state (all finished within the last 17 hours, so the
 * 100 failed ones are on the page), of Tasks with 10,000, and of a Task whose log has 5,000 events.
 */
export async function benchFirstRender(runs = 7, cli = distCli(ROOT)): Promise<Row[]> {
  const logged = syntheticId(9_998);
  const daemons: DashboardDaemon[] = [];
  let browser: Browser | undefined;
  try {
    browser = await launchChromium();
    const rows: Row[] = [];
    const small = await startDashboardDaemon({ cli, seed: (home) => seedTasks(home, 1_000) });
    daemons.push(small);
    rows.push(...renderRows("Now, 1,000 tasks", await firstRender(await signIn(browser, small), `${small.origin}/`, runs)));
    await small.stop();
    const big = await startDashboardDaemon({ cli, seed: async (home) => (await seedTasks(home, 10_000), await writeLongLog(home, logged, 5_000)) });
    daemons.push(big);
    const page = await signIn(browser, big);
    rows.push(...renderRows("Now, 10,000 tasks", await firstRender(page, `${big.origin}/`, runs)));
    rows.push(...renderRows("Tasks, 10,000 tasks", await firstRender(page, `${big.origin}/tasks`, runs)));
    rows.push(...renderRows("Task, a log of 5,000 events", await firstRender(page, `${big.origin}/tasks/${logged}`, runs)));
    return rows;
  } finally {
    await browser?.close();
    for (const daemon of daemons) await daemon.close();
  }
}

// ---------------------------------------------------------------- live updates

/**
 * Events into one open Task page: the dashboard app served for real on loopback (the test
 * harness's, over a temporary home), a signed-in phone-sized tab on a running task, and a writer
 * doing what a session does per event: append it to the log, then emit. Two figures: one event at a
 * time (append → drawn on the page, what a person watching feels), and a burst of `burst` events
 * written as fast as the writer can (throughput, the page keeping up). Turns of four events: a
 * model response with a tool call, its permission, start and end.
 */
export async function benchLiveEvents(singles = 30, burst = 2_000): Promise<Row[]> {
  const { serveDashboard } = await import("../dashboard/server.ts");
  const { setupDashboard, taskRecord } = await import("../test/support/dashboard.ts");
  const port = await freePort();
  const s = setupDashboard({ port, tasks: [taskRecord("live", { state: "running" })] });
  const server = await serveDashboard(s.app.fetch, port);
  const log = await openSessionLog(join(s.home, "sessions", "live.jsonl"), "live", { sync: false });
  const browser = await launchChromium();
  try {
    await log.append({ type: "session_start", at: Date.now(), task: taskRecord("live").spec });
    const page = await (await browser.newContext({ viewport: PHONE })).newPage();
    await page.goto(`http://127.0.0.1:${port}/login#${s.link()}`);
    await page.getByRole("button", { name: "Sign in to the dashboard" }).click();
    await page.waitForURL(`http://127.0.0.1:${port}/`);
    const streaming = page.waitForResponse((response) => response.url().includes("/live?"));
    await page.goto(`http://127.0.0.1:${port}/tasks/live`);
    await streaming;
    let turn = 0;
    const write = async () => {
      turn++;
      const id = `toolu_live${turn}`;
      const at = Date.now();
      const input = { command: `grep -rn "watchConfig" src/ # step ${turn}` };
      const events: SessionEvent[] = [
        { type: "model_response", at, turn, model: "claude-sonnet-4-5", content: [{ type: "text", text: `Step ${turn}.` }, { type: "tool_use", id, name: "bash", input }], stop_reason: "tool_use", usage: { input_tokens: 12, output_tokens: 180, cache_read_input_tokens: 21_400, cache_creation_input_tokens: 950 }, cost_usd: 0.0043, latency_ms: 2140, request_bytes: 18_000 },
        { type: "permission", at, id, tool: "bash", kind: "command", target: input.command, action: "allow", reason: 'rule "allow command grep *" (default)' },
        { type: "tool_start", at, id, name: "bash", input },
        { type: "tool_end", at, id, name: "bash", output: `src/config/watch.ts:${turn}: watchConfig(path)`, is_error: false, duration_ms: 58 },
      ];
      for (const event of events) {
        await log.append(event);
        s.emit("live");
      }
      return id;
    };
    // A locator, not waitForFunction: the page's CSP forbids the eval that a string predicate needs.
    const drawn = (id: string) => page.locator(`#tool-${id} .outcome`, { hasText: "ok" }).waitFor({ timeout: 60_000 });

    const single: number[] = [];
    for (let run = 0; run < singles; run++) {
      const started = performance.now();
      await drawn(await write());
      single.push(performance.now() - started);
    }
    const started = performance.now();
    let last = "";
    for (let written = 0; written < burst; written += 4) last = await write();
    const wrote = performance.now() - started;
    await drawn(last);
    const elapsed = performance.now() - started;
    const blocks = await page.evaluate<number>("document.querySelectorAll('#log .turn').length");
    return [
      { name: `one turn at a time (4 events): first append → its tool call drawn "ok", median of ${singles}`, value: median(single), unit: "ms" },
      { name: "  slowest", value: Math.max(...single), unit: "ms" },
      { name: `a burst of ${burst} events: all drawn on the page`, value: elapsed, unit: "ms" },
      { name: "  events per second into the page", value: Math.round(burst / (elapsed / 1000)), unit: "count" },
      { name: "  of which the writer (append + emit, no fsync)", value: wrote, unit: "ms" },
      { name: "  turns on the page afterwards (each once)", value: blocks, unit: "count" },
    ];
  } finally {
    await browser.close();
    await log.close();
    await server.close();
    s.cleanup();
  }
}

// ---------------------------------------------------------------- the idle daemon

/**
 * `nightshift start` with nothing to do, watched for `seconds` from the dashboard's line: CPU time
 * (utime + stime from /proc/<pid>/stat, the daemon alone) and VmRSS at the end. Three ways: the
 * dashboard served with nobody signed in; served with a signed-in tab open on Now all the while;
 * and not served (its port taken before the start: the daemon says so and runs on, Hono loaded but
 * nothing listening). `before`: a checkout from before the dashboard, its dist/ built, measured the
 * same way, for "unchanged from today".
 */
export async function benchIdleDashboard(seconds = 10, before?: string): Promise<Row[]> {
  const rows: Row[] = [];
  const ticks = clockTicks();
  const watch = async (what: string, daemon: DashboardDaemon, target: boolean) => {
    const pid = daemon.child().pid!;
    const cpuAtStart = cpuMs(pid, ticks);
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const cpu = cpuMs(pid, ticks) - cpuAtStart;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    rows.push(
      { name: `${what}: RSS after ${seconds} s idle (VmRSS)`, value: procKb(status, "VmRSS") * 1024, unit: "bytes", ...(target ? { target: 120 * 1024 * 1024 } : {}) },
      { name: `  CPU time over ${seconds} s`, value: cpu, unit: "ms", ...(target ? { target: seconds * 10 } : {}) },
      { name: "  model requests", value: daemon.api.requests.length, unit: "count" },
    );
  };

  const served = await startDashboardDaemon({ cli: distCli(ROOT) });
  try {
    await watch("dashboard on, nobody signed in", served, true);
  } finally {
    await served.close();
  }

  const watched = await startDashboardDaemon({ cli: distCli(ROOT) });
  const browser = await launchChromium();
  try {
    await signIn(browser, watched);
    await watch("dashboard on, a tab open on Now", watched, true);
  } finally {
    await browser.close();
    await watched.close();
  }

  const port = await freePort();
  const blocker: Server = createServer();
  await new Promise<void>((resolve) => blocker.listen(port, "127.0.0.1", resolve));
  try {
    const unserved = await startDashboardDaemon({ cli: distCli(ROOT), port, dashboard: "port taken" });
    try {
      await watch("dashboard not served (its port taken)", unserved, false);
    } finally {
      await unserved.close();
    }
  } finally {
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
  }

  if (before) {
    if (!existsSync(distCli(before))) throw new Error(`${distCli(before)} is missing: run npm run build in ${before}`);
    const old = await startDashboardDaemon({ cli: distCli(before), dashboard: "none" });
    try {
      await watch(`before the dashboard (${before})`, old, false);
    } finally {
      await old.close();
    }
  }
  return rows;
}

if (import.meta.main) {
  const at = process.argv.indexOf("--before");
  const before = at > 0 ? process.argv[at + 1] : undefined;
  console.log(`## Dashboard: first render at ${PHONE.width}×${PHONE.height}\n\n${formatRows(await benchFirstRender())}\n`);
  console.log(`## Dashboard: live updates into one Task page\n\n${formatRows(await benchLiveEvents())}\n`);
  console.log(`## Dashboard: the idle daemon\n\n${formatRows(await benchIdleDashboard(10, before))}\n`);
}
