/**
 * What the daemon costs around the sessions it runs: how fast a dropped file becomes a session, how
 * 50 sessions at once compare with one, what an idle daemon holds, and how long `nightshift start`
 * takes to be ready. Every figure comes from a real `nightshift start` (a child process, or the same
 * code in this process where the event loop must be watched) against the local Messages API
 * stand-in (`test/support/messages-api.ts`), with NIGHTSHIFT_HOME in a fresh folder under /var/tmp.
 * Run alone with `node bench/daemon.ts`, or with the other benches through `node bench/run.ts`.
 * System clock, real files, real processes; nothing is asserted.
 */

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import { startDaemon } from "../cli/start.ts";
import { loadConfig, systemClock, type EventOf, type SessionEvent } from "../runtime/index.ts";
import { readSessionLog } from "../runtime/session-log.ts";
import { openState } from "../tasks/state.ts";
import { startMessagesApi, type MessagesApi, type RecordedRequest, type Reply } from "../test/support/messages-api.ts";
import { writeV1State } from "../test/support/state-history.ts";

/** One measured row. `target` is an upper bound in the row's unit. */
export interface Row {
  name: string;
  value: number;
  unit: "ms" | "µs" | "x" | "bytes" | "count" | "%";
  target?: number;
}

/** The daemon as `npm start` runs it: emitted JavaScript (`npm run build`), not type-stripped TypeScript. */
const CLI = join(import.meta.dirname, "..", "dist", "cli", "nightshift.js");
const API_KEY = "sk-ant-bench-0123456789abcdef";
const STAND_IN_FLAG = "--stand-in";
/** The inbox's settle time (tasks/inbox.ts, `settleMs` default): a file is read once it has been unchanged this long. */
const INBOX_SETTLE_MS = 200;

// ---------------------------------------------------------------- 1. pickup latency

/**
 * Drops `files` task files into a running daemon's inbox one at a time (open, write, close; the next
 * once the previous result is in outbox/) and measures from the close to the `at` of the session's
 * `session_start` event in sessions/<id>.jsonl: the moment the loop has the task and logs it. Both
 * clocks are the system's wall clock (Date.now, whole ms) in two processes. The trace's `task_queued`
 * line splits it into intake (settle, validation, queue write) and queue → start; the stand-in's
 * first request for the task shows what follows the start.
 */
export async function benchPickup(files = 20): Promise<Row[]> {
  const api = await startMessagesApi({ responder: () => ({ content: [{ type: "text", text: "Done." }] }) });
  const home = tempHome();
  const daemon = spawnDaemon(home.path, api.url);
  try {
    await daemon.ready;
    const samples: { toStart: number; toQueued: number; toRequest: number }[] = [];
    for (let n = 1; n <= files; n++) {
      const name = `pickup ${n}.md`;
      const marker = `[pickup-${n}]`;
      const closed = dropTask(join(home.path, "inbox", name), `Pickup ${n}`, `Answer ${marker} in one word.`);
      const result = join(home.path, "outbox", name);
      await until(() => existsSync(result), `the result of ${name}`);
      const id = sessionOf(result);
      const [start] = await readSessionLog(join(home.path, "sessions", `${id}.jsonl`));
      if (start?.type !== "session_start") throw new Error(`sessions/${id}.jsonl starts with ${start?.type}`);
      const [queued = Number.NaN] = traceTimes(home.path, [id], "task_queued");
      const request = api.requests.find((candidate) => candidate.rawBody.includes(marker));
      if (!request) throw new Error(`no model request carried ${marker}`);
      samples.push({ toStart: start.at - closed, toQueued: queued - closed, toRequest: request.at - closed });
    }
    const toStart = samples.map((s) => s.toStart);
    return [
      { name: `file closed → session_start, median of ${files}`, value: median(toStart), unit: "ms", target: 300 },
      { name: "file closed → session_start, p90", value: percentile(toStart, 0.9), unit: "ms" },
      { name: `  of which closed → queued (settle ${INBOX_SETTLE_MS} ms by design, validate, state write), median`, value: median(samples.map((s) => s.toQueued)), unit: "ms" },
      { name: "  of which queued → session_start (state write, workdir, session log), median", value: median(samples.map((s) => s.toStart - s.toQueued)), unit: "ms" },
      { name: "file closed → first model request reaches the stand-in, median", value: median(samples.map((s) => s.toRequest)), unit: "ms" },
    ];
  } finally {
    await daemon.stop("SIGTERM");
    await api.close();
    home.cleanup();
  }
}

// ---------------------------------------------------------------- 2. 50 tasks at once

/**
 * Runs the daemon in this process (`startDaemon`, system clock) with `daemon.concurrency` = `tasks`,
 * so `monitorEventLoopDelay` sees its event loop. The stand-in runs in a child process (this file
 * with `--stand-in`) so its work is not in the measurement; it answers after `latencyMs` with a
 * `list_files` call until the request holds `steps - 1` assistant messages, then with an answer:
 * `steps` model calls per task. list_files, not bash, so the sandbox's spawn cost does not dominate.
 * Wall time runs from the first file's drop to the last result in outbox/: one task alone (median of
 * 3, after a warm-up task), then `tasks` files dropped at once.
 */
export async function benchConcurrency(tasks = 50, steps = 10, latencyMs = 200): Promise<Row[]> {
  const standIn = await spawnStandIn(latencyMs, steps);
  const home = tempHome(`daemon:\n  concurrency: ${tasks}\n`);
  const output = collect();
  const loaded = loadConfig({ ...process.env, NIGHTSHIFT_HOME: home.path, ANTHROPIC_BASE_URL: standIn.url, ANTHROPIC_API_KEY: API_KEY });
  const daemon = await startDaemon({ loaded, clock: systemClock, stderr: output.stream }).catch(async (error: unknown) => {
    await standIn.close();
    home.cleanup();
    throw error;
  });
  const lagResolutionMs = 10;
  try {
    const batch = async (prefix: string, count: number) => {
      const lag = monitorEventLoopDelay({ resolution: lagResolutionMs });
      const names = Array.from({ length: count }, (_, n) => `${prefix} ${n + 1}.md`);
      lag.enable();
      const cpuBefore = process.cpuUsage();
      const began = Date.now();
      for (const name of names) dropTask(join(home.path, "inbox", name), name.slice(0, -3), `Look around, then say what you found. [${name}]`);
      await until(() => names.every((name) => existsSync(join(home.path, "outbox", name))), `${count} results`, 120_000);
      const wall = Date.now() - began;
      const cpu = process.cpuUsage(cpuBefore);
      lag.disable();
      const ids = names.map((name) => sessionOf(join(home.path, "outbox", name)));
      const logs = await Promise.all(ids.map((id) => readSessionLog(join(home.path, "sessions", `${id}.jsonl`))));
      for (const [index, events] of logs.entries()) {
        const end = events.find((event) => event.type === "session_end");
        if (end?.status !== "done" || end.turns !== steps) throw new Error(`${names[index]} ended ${end?.status} after ${end?.turns} turns, expected done after ${steps}: ${output.text()}`);
      }
      const lagMs = (p: number) => Math.max(0, lag.percentile(p) / 1e6 - lagResolutionMs);
      return {
        wall,
        cpuMs: (cpu.user + cpu.system) / 1000,
        lagP50: lagMs(50),
        lagP99: lagMs(99),
        lagMax: Math.max(0, lag.max / 1e6 - lagResolutionMs),
        lastQueued: Math.max(...traceTimes(home.path, ids, "task_queued")) - began,
        lastStart: Math.max(...logs.map((events) => events[0]!.at)) - began,
        sessions: logs.map((events) => events.at(-1)!.at - events[0]!.at),
        modelMs: logs.flatMap((events) => responses(events).map((event) => event.latency_ms)),
        harnessMs: logs.flatMap(harnessPerStep),
      };
    };
    await batch("warm-up", 1); // JIT, SDK, sockets; discarded
    const alone = [await batch("alone-a", 1), await batch("alone-b", 1), await batch("alone-c", 1)];
    const before = await standIn.count();
    const many = await batch("many", tasks);
    const served = (await standIn.count()) - before;
    const oneWall = median(alone.map((run) => run.wall));
    return [
      { name: "one task alone: drop → result, median of 3", value: oneWall, unit: "ms" },
      { name: `${tasks} tasks at once: first drop → last result`, value: many.wall, unit: "ms" },
      { name: `${tasks} tasks / one task`, value: many.wall / oneWall, unit: "x", target: 1.3 },
      { name: `event-loop lag p99 while ${tasks} run (daemon in this process, stand-in not)`, value: many.lagP99, unit: "ms", target: 50 },
      { name: "event-loop lag p50", value: many.lagP50, unit: "ms" },
      { name: "event-loop lag max", value: many.lagMax, unit: "ms" },
      { name: "event-loop lag p99 while one task runs", value: median(alone.map((run) => run.lagP99)), unit: "ms" },
      { name: `first drop → last of ${tasks} task_queued (settle ${INBOX_SETTLE_MS} ms, then intake one by one)`, value: many.lastQueued, unit: "ms" },
      { name: `first drop → last of ${tasks} session_start`, value: many.lastStart, unit: "ms" },
      { name: "drop → session_start, one task alone, median of 3", value: median(alone.map((run) => run.lastStart)), unit: "ms" },
      { name: `session (session_start → session_end), median of ${tasks}`, value: median(many.sessions), unit: "ms" },
      { name: `session, slowest of ${tasks}`, value: Math.max(...many.sessions), unit: "ms" },
      { name: "session alone, median of 3", value: median(alone.flatMap((run) => run.sessions)), unit: "ms" },
      { name: `model call (stand-in answers in ${latencyMs} ms), median while ${tasks} run`, value: median(many.modelMs), unit: "ms" },
      { name: `model call, p90 while ${tasks} run`, value: percentile(many.modelMs, 0.9), unit: "ms" },
      { name: "model call, median alone", value: median(alone.flatMap((run) => run.modelMs)), unit: "ms" },
      { name: `CPU time of this process (daemon, all its threads) for the ${tasks} tasks`, value: many.cpuMs, unit: "ms" },
      { name: "  per task", value: many.cpuMs / tasks, unit: "ms" },
      { name: "  as a share of the wall time (cores busy, on average)", value: (many.cpuMs / many.wall) * 100, unit: "%" },
      { name: `harness per step (step − model call: appends, tool, bookkeeping, waiting for the loop), median while ${tasks} run`, value: median(many.harnessMs), unit: "ms" },
      { name: `harness per step, p90 while ${tasks} run`, value: percentile(many.harnessMs, 0.9), unit: "ms" },
      { name: "harness per step, median alone", value: median(alone.flatMap((run) => run.harnessMs)), unit: "ms" },
      { name: `model requests served for the ${tasks} tasks (${tasks} × ${steps})`, value: served, unit: "count" },
    ];
  } finally {
    await daemon.stop();
    await standIn.close();
    home.cleanup();
  }
}

// ---------------------------------------------------------------- 3. idle daemon

/**
 * Starts `nightshift start` with nothing to do, and from its ready line watches it for `seconds`:
 * CPU time from /proc/<pid>/stat (utime + stime, this process only) over the window, RSS from
 * /proc/<pid>/status at its end, and every request the stand-in saw since the spawn.
 */
export async function benchIdle(seconds = 10): Promise<Row[]> {
  const api = await startMessagesApi({ responder: () => ({ content: [{ type: "text", text: "Done." }] }) });
  const home = tempHome();
  const daemon = spawnDaemon(home.path, api.url);
  try {
    await daemon.ready;
    const pid = daemon.child.pid!;
    const ticks = clockTicks();
    const cpuAtReady = cpuMs(pid, ticks);
    await sleep(seconds * 1000);
    const cpuIdle = cpuMs(pid, ticks) - cpuAtReady;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return [
      { name: `RSS after ${seconds} s idle (VmRSS)`, value: procKb(status, "VmRSS") * 1024, unit: "bytes", target: 120 * 1024 * 1024 },
      { name: "  peak RSS since spawn (VmHWM)", value: procKb(status, "VmHWM") * 1024, unit: "bytes" },
      { name: `CPU time (user + system) over ${seconds} s idle`, value: cpuIdle, unit: "ms", target: seconds * 10 },
      { name: "  as a share of one core", value: (cpuIdle / (seconds * 1000)) * 100, unit: "%" },
      { name: "  CPU time from spawn to ready, for comparison", value: cpuAtReady, unit: "ms" },
      { name: "model requests since spawn", value: api.requests.length, unit: "count", target: 0 },
    ];
  } finally {
    await daemon.stop("SIGTERM");
    await api.close();
    home.cleanup();
  }
}

// ---------------------------------------------------------------- 4. start → ready

/**
 * Spawn → the "Nightshift is running" line on stderr (state loaded, interrupted sessions queued,
 * control socket, inbox and schedules watched, sandbox probed), median of `runs`, for three homes:
 * empty (a fresh folder each run), one with `tasks` finished tasks, and one with `tasks` sessions
 * that were killed mid-request and are resumed at start. Node's own start and the loading of the
 * daemon's modules are inside these figures; `node -e 0` and importing those modules alone show
 * their share.
 */
export async function benchStartup(runs = 5, tasks = 20): Promise<Row[]> {
  const api = await startMessagesApi({ responder: () => ({ content: [{ type: "text", text: "Done." }] }) });
  const homes: { cleanup(): void }[] = [];
  const fresh = (config = "") => {
    const home = tempHome(config);
    homes.push(home);
    return home.path;
  };
  const daemons: ChildDaemon[] = []; // killed in `finally`, so a failed run leaves no daemon behind
  const start = (home: string) => {
    const daemon = spawnDaemon(home, api.url);
    daemons.push(daemon);
    return daemon;
  };
  try {
    const bare = await timeRuns(runs, () => exitTime([process.execPath, "-e", "0"]));
    // What `start` imports before it does anything (the CLI itself loads nothing until a command runs).
    const daemonModules = [join(CLI, "..", "start.js"), join(CLI, "..", "..", "runtime", "config.js")].map((file) => `await import(${JSON.stringify(file)});`).join(" ");
    const loadOnly = await timeRuns(runs, () => exitTime([process.execPath, "--input-type=module", "-e", daemonModules]));

    const empty = await timeRuns(runs, async () => {
      const daemon = start(fresh());
      const ms = await daemon.ready;
      await daemon.stop("SIGTERM");
      return ms;
    });

    const finishedHome = fresh();
    const filler = start(finishedHome);
    await filler.ready;
    for (let n = 1; n <= tasks; n++) dropTask(join(finishedHome, "inbox", `finished ${n}.md`), `Finished ${n}`, "Say done.");
    await until(() => readdirSync(join(finishedHome, "outbox")).length === tasks, `${tasks} results`);
    await filler.stop("SIGTERM");
    const finished = await timeRuns(runs, async () => {
      const daemon = start(finishedHome);
      const ms = await daemon.ready;
      await daemon.stop("SIGTERM");
      return ms;
    });

    // Every request stalls, so each start resumes all `tasks` sessions and is then killed mid-request again.
    api.respondWith(() => ({ stall: true }));
    const resumeHome = fresh(`daemon:\n  concurrency: ${tasks}\n  max_crashes: 100\n`);
    const crashing = start(resumeHome);
    await crashing.ready;
    for (let n = 1; n <= tasks; n++) dropTask(join(resumeHome, "inbox", `resumed ${n}.md`), `Resumed ${n}`, "Say done.");
    const before = api.requests.length;
    await until(() => api.requests.length === before + tasks, `${tasks} stalled requests`);
    await crashing.stop("SIGKILL");
    const allResumed: number[] = [];
    const resumed = await timeRuns(runs, async () => {
      const seen = api.requests.length;
      const daemon = start(resumeHome);
      const ms = await daemon.ready;
      if (!daemon.output().includes(`resuming ${tasks} tasks`)) throw new Error(`expected to resume ${tasks} tasks: ${daemon.output()}`);
      await until(() => api.requests.length >= seen + tasks, `${tasks} resumed requests`);
      allResumed.push(api.requests[seen + tasks - 1]!.at - daemon.spawnedAt);
      await daemon.stop("SIGKILL");
      return ms;
    });

    return [
      { name: `start → ready, empty home, median of ${runs}`, value: median(empty), unit: "ms", target: 500 },
      { name: `start → ready, ${tasks} finished tasks in state, median of ${runs}`, value: median(finished), unit: "ms", target: 500 },
      { name: `start → ready, ${tasks} interrupted sessions to resume, median of ${runs}`, value: median(resumed), unit: "ms", target: 500 },
      { name: `  spawn → all ${tasks} resumed sessions' requests at the stand-in, median`, value: median(allResumed), unit: "ms" },
      { name: "  of which Node alone (`node -e 0`, spawn → exit), median", value: median(bare), unit: "ms" },
      { name: "  of which Node + loading the daemon's modules (cli/start.js, runtime/config.js), median", value: median(loadOnly), unit: "ms" },
    ];
  } finally {
    for (const daemon of daemons) await daemon.stop("SIGKILL");
    await api.close();
    for (const home of homes) home.cleanup();
  }
}

// ---------------------------------------------------------------- 5. state changes as history grows

/**
 * The method: `openState` on a home whose state holds `n` finished tasks and one queued
 * one (`test/support/state-history.ts`: a version-1 state file as earlier versions wrote it, each
 * record about 1.2 KB as real ones are; the first open moves it into state/nightshift.db, timed
 * once), then one state change of the queued task (queued ↔ running), `changes` times; the median
 * is one change, durable on disk. Open time is the median of `opens` later opens (open, read the
 * active tasks and cursors, close). State on disk counts every file in state/ but the kept
 * version-1 file, measured between opens (no WAL). Each home is under /var/tmp (a real disk, as a home is).
 */
export async function benchStateHistory(sizes: readonly number[] = [100, 1_000, 10_000], changes = 21, opens = 5): Promise<Row[]> {
  const rows: Row[] = [];
  const perSize: Array<{ n: number; change: number }> = [];
  for (const n of sizes) {
    const home = tempHome();
    try {
      writeV1State(home.path, n, Date.now());
      const label = `${n.toLocaleString("en")} finished tasks`;
      const migrationBegan = performance.now();
      (await openState(home.path, Date.now)).store.close();
      rows.push({ name: `${label}: first open (moves the version-1 file into SQLite), once`, value: performance.now() - migrationBegan, unit: "ms" });
      const openMs: number[] = [];
      for (let run = 0; run < opens; run++) {
        const began = performance.now();
        const { store } = await openState(home.path, Date.now);
        openMs.push(performance.now() - began);
        store.close();
      }
      const stateDir = join(home.path, "state");
      const stateBytes = readdirSync(stateDir).filter((name) => !name.includes(".migrated-")).reduce((sum, name) => sum + statSync(join(stateDir, name)).size, 0);
      const { store } = await openState(home.path, Date.now);
      const changeMs: number[] = [];
      const cpuMs: number[] = [];
      for (let run = 0; run < changes; run++) {
        const cpu = process.cpuUsage();
        const began = performance.now();
        await store.change("hot-task", { state: store.get("hot-task")!.state === "queued" ? "running" : "queued" });
        changeMs.push(performance.now() - began);
        const used = process.cpuUsage(cpu);
        cpuMs.push((used.user + used.system) / 1000);
      }
      store.close();
      perSize.push({ n, change: median(changeMs) });
      rows.push(
        { name: `${label}: state on disk`, value: stateBytes, unit: "bytes" },
        { name: `${label}: open, median of ${opens}`, value: median(openMs), unit: "ms", ...(n === 10_000 ? { target: 100 } : {}) },
        { name: `${label}: one state change, median of ${changes}`, value: median(changeMs), unit: "ms" },
        { name: `${label}:   its CPU time (user + system; the rest is waiting for fsync), median`, value: median(cpuMs), unit: "ms" },
      );
    } finally {
      home.cleanup();
    }
  }
  const smallest = perSize[0];
  const largest = perSize.at(-1);
  if (smallest && largest && largest !== smallest) {
    rows.push({ name: `one state change at ${largest.n.toLocaleString("en")} vs ${smallest.n.toLocaleString("en")} finished tasks`, value: largest.change / smallest.change, unit: "x", target: 1.5 });
  }
  return rows;
}

// ---------------------------------------------------------------- the daemon as a child process

interface ChildDaemon {
  child: ChildProcess;
  /** Date.now() just before the spawn. */
  spawnedAt: number;
  /** Milliseconds from the spawn to the "Nightshift is running" line; rejects if it exits first. */
  ready: Promise<number>;
  output(): string;
  /** Sends `signal` and waits for the exit. */
  stop(signal: "SIGTERM" | "SIGKILL"): Promise<void>;
}

function spawnDaemon(home: string, apiUrl: string): ChildDaemon {
  const env = { ...process.env, NIGHTSHIFT_HOME: home, ANTHROPIC_BASE_URL: apiUrl, ANTHROPIC_API_KEY: API_KEY };
  const spawnedAt = Date.now();
  const began = performance.now();
  const child = spawn(process.execPath, [CLI, "start"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const ready = new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk;
      if (output.includes("Nightshift is running")) resolve(performance.now() - began);
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    void exited.then(() => reject(new Error(`nightshift start exited before it was ready: ${output}`)));
  });
  ready.catch(() => {}); // observed by the caller; this keeps an early exit during stop() quiet
  return {
    child,
    spawnedAt,
    ready,
    output: () => output,
    async stop(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

// ---------------------------------------------------------------- the stand-in as a child process

interface StandInChild {
  url: string;
  /** Requests to /v1/messages served so far. */
  count(): Promise<number>;
  close(): Promise<void>;
}

/** Starts this file with `--stand-in`: the Messages API stand-in in its own process, so its work stays off our event loop. */
async function spawnStandIn(latencyMs: number, steps: number): Promise<StandInChild> {
  const child = spawn(process.execPath, [import.meta.filename, STAND_IN_FLAG, String(latencyMs), String(steps)], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const nextLine = async () => {
    const line = await lines.next();
    if (line.done) throw new Error("the stand-in process ended");
    return JSON.parse(line.value) as { url?: string; requests?: number };
  };
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const { url } = await nextLine();
  return {
    url: url!,
    async count() {
      child.stdin!.write("count\n");
      return (await nextLine()).requests!;
    },
    async close() {
      child.stdin!.end();
      await exited;
    },
  };
}

/** The child's side: prints its URL, answers `count` on stdin, and closes when stdin ends. */
async function serveStandIn(latencyMs: number, steps: number): Promise<void> {
  const respond = (request: RecordedRequest): Reply => {
    const assistants = (request.body.messages as { role: string }[]).filter((message) => message.role === "assistant").length;
    if (assistants < steps - 1) return { content: [{ type: "text", text: `Step ${assistants + 1}: looking.` }, { type: "tool_use", name: "list_files", input: { path: "." } }] };
    return { content: [{ type: "text", text: `Found nothing after ${assistants} looks.` }] };
  };
  const api: MessagesApi = await startMessagesApi({ latencyMs, responder: respond });
  process.stdout.write(`${JSON.stringify({ url: api.url })}\n`);
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === "count") process.stdout.write(`${JSON.stringify({ requests: api.requests.length })}\n`);
  }
  await api.close();
}

// ---------------------------------------------------------------- helpers

/** A fresh NIGHTSHIFT_HOME under /var/tmp (a real disk, as a home is; /tmp may be tmpfs) with this config.yaml. */
function tempHome(config = ""): { path: string; cleanup(): void } {
  const dir = realpathSync(mkdtempSync(join("/var/tmp", "nightshift-bench-daemon-")));
  const path = join(dir, "home");
  mkdirSync(path);
  writeFileSync(join(path, "config.yaml"), config);
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes a task file as an editor would (open, write, close) and returns Date.now() right after the close. */
function dropTask(path: string, title: string, body: string): number {
  const fd = openSync(path, "w");
  writeSync(fd, `---\ntitle: ${title}\n---\n${body}\n`);
  closeSync(fd);
  return Date.now();
}

function sessionOf(resultFile: string): string {
  const id = /\nsession: (\S+)\n/.exec(readFileSync(resultFile, "utf8"))?.[1];
  if (!id) throw new Error(`${resultFile} names no session`);
  return id;
}

function responses(events: readonly SessionEvent[]): EventOf<"model_response">[] {
  return events.filter((event): event is EventOf<"model_response"> => event.type === "model_response");
}

/** Per step after the first: the time between two model responses less the second one's model call. */
function harnessPerStep(events: readonly SessionEvent[]): number[] {
  const list = responses(events);
  return list.slice(1).map((response, index) => response.at - list[index]!.at - response.latency_ms);
}

/** The pino `time` (Date.now() in the daemon) of each session's `event` line in the trace, in the order of `sessions`. */
function traceTimes(home: string, sessions: readonly string[], event: string): number[] {
  const times = new Map<string, number>();
  for (const line of readFileSync(join(home, "logs", "trace.jsonl"), "utf8").split("\n")) {
    if (!line.includes(`"${event}"`)) continue;
    const record = JSON.parse(line) as { session?: string; event?: string; time?: number };
    if (record.session && record.event === event && typeof record.time === "number") times.set(record.session, record.time);
  }
  // The trace is written asynchronously: a line not there yet shows as NaN, not as a wrong figure.
  return sessions.map((session) => times.get(session) ?? Number.NaN);
}

/** Clock ticks per second, the unit of /proc/<pid>/stat's times (USER_HZ, 100 on common Linux builds). */
export function clockTicks(): number {
  const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
  return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
}

/** utime + stime of `pid` in ms (the process itself, not its children). */
export function cpuMs(pid: number, ticksPerSecond: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields[0] is field 3 (state)
  return ((Number(fields[11]) + Number(fields[12])) / ticksPerSecond) * 1000;
}

export function procKb(status: string, key: string): number {
  const match = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status);
  return match ? Number(match[1]) : Number.NaN;
}

async function exitTime(argv: string[]): Promise<number> {
  const began = performance.now();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: "ignore" });
  await new Promise((resolve) => child.once("close", resolve));
  return performance.now() - began;
}

async function timeRuns(runs: number, once: () => Promise<number>): Promise<number[]> {
  const times: number[] = [];
  for (let run = 0; run < runs; run++) times.push(await once());
  return times;
}

/** A stream for startDaemon's messages, kept for error reports. */
function collect(): { stream: Writable; text(): string } {
  let text = "";
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += chunk;
      done();
    },
  });
  return { stream, text: () => text };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls real processes and files every 5 ms. */
async function until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN;
}

export function median(values: readonly number[]): number {
  return percentile(values, 0.5);
}

function formatValue(value: number, unit: Row["unit"]): string {
  if (unit === "ms") return `${value.toFixed(value < 10 ? 2 : value < 1000 ? 1 : 0)} ms`;
  if (unit === "µs") return `${value.toFixed(value < 100 ? 1 : 0)} µs`;
  if (unit === "x") return `${value.toFixed(2)}×`;
  if (unit === "count") return String(value);
  if (unit === "%") return `${value.toFixed(2)} %`;
  return value >= 1024 * 1024 ? `${(value / 1024 / 1024).toFixed(1)} MB` : `${(value / 1024).toFixed(1)} KB`;
}

/** A markdown table in the shape of bench/runtime.ts's `formatFigures`, with counts and shares as well. */
export function formatRows(rows: readonly Row[]): string {
  const head = ["| measure | value | target | result |", "|---|---:|---:|---|"];
  const body = rows.map((row) => {
    const target = row.target;
    const cells = [row.name, formatValue(row.value, row.unit), target === undefined ? "" : `≤ ${formatValue(target, row.unit)}`, target === undefined ? "" : row.value <= target ? "met" : "**missed**"];
    return `| ${cells.join(" | ")} |`;
  });
  return [...head, ...body].join("\n");
}

if (import.meta.main) {
  if (process.argv[2] === STAND_IN_FLAG) {
    await serveStandIn(Number(process.argv[3]), Number(process.argv[4]));
  } else {
    for (const [title, bench] of [
      ["Pickup latency, file closed → session started", () => benchPickup()],
      ["50 tasks at concurrency 50", () => benchConcurrency()],
      ["Idle daemon", () => benchIdle()],
      ["Start → ready", () => benchStartup()],
      ["State changes as history grows", () => benchStateHistory()],
    ] as const) {
      console.log(`## ${title}\n\n${formatRows(await bench())}\n`);
    }
  }
}
