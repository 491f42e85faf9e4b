/**
 * Does the daemon's memory grow with its history? A real `nightshift start` (emitted JavaScript,
 * as `npm start` runs it) in a child process runs 1,500 tasks dropped into inbox/, against the
 * Messages API stand-in and, with Telegram on, the Bot API stand-in (both in this process). Each
 * task is two model calls with one sandboxed `bash` command between them, the way a small real
 * task goes. Peak RSS (VmHWM) and RSS now (VmRSS) are read from /proc after 100, 500, 1,000 and
 * 1,500 tasks, with where RSS is at that moment: V8's committed young generation, the rest of its
 * committed heap, and what lies outside the heap (bench/heap-probe.ts, loaded into the daemon with
 * `--import`, reports them). A second home holds a 5 MB MEMORY.md and runs 100 tasks. System clock, real files;
 * nothing is asserted. Run alone with `node bench/daemon-memory.ts [tasks]`, or through
 * `node bench/run.ts`. To look inside: `NIGHTSHIFT_BENCH_SNAPSHOTS=DIR` writes a heap snapshot of
 * the daemon to DIR at each checkpoint (Node's `--heapsnapshot-signal`; it pauses the daemon while
 * it writes, so the times are then not comparable).
 */

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startBotApi } from "../test/support/bot-api.ts";
import { startMessagesApi, type RecordedRequest, type Reply } from "../test/support/messages-api.ts";
import { freePort } from "../test/support/ports.ts";
import { formatRows, procKb, type Row } from "./daemon.ts";
import type { HeapReading } from "./heap-probe.ts";

const CLI = join(import.meta.dirname, "..", "dist", "cli", "nightshift.js");
/** Loaded into the daemon (`--import`) to report its heap; see its header. */
const PROBE = join(import.meta.dirname, "heap-probe.ts");
const API_KEY = "sk-ant-bench-0123456789abcdef";
const BOT_TOKEN = "424242:BENCH-telegram-token_xyz";
const USER = 4242;
/** Files dropped at once; the next batch once all their results are in outbox/. */
const BATCH = 50;

interface Reading {
  tasks: number;
  peak: number;
  rss: number;
  seconds: number;
  heap: HeapReading;
}

/** After each of `checkpoints` tasks: the daemon's VmHWM and VmRSS. */
export async function benchMemoryGrowth(checkpoints: readonly number[] = [100, 500, 1_000, 1_500]): Promise<Row[]> {
  const readings = await runTasks(checkpoints, "");
  const first = readings[0]!;
  const last = readings.at(-1)!;
  const rows: Row[] = readings.flatMap((reading) => [
    { name: `peak RSS (VmHWM) after ${reading.tasks.toLocaleString("en")} tasks`, value: reading.peak, unit: "bytes" as const },
    { name: `  RSS now (VmRSS) after ${reading.tasks.toLocaleString("en")} tasks (${reading.seconds.toFixed(0)} s in)`, value: reading.rss, unit: "bytes" as const },
    // Where RSS is: V8's committed heap by generation, and the rest (code, Node, SQLite, malloc).
    { name: `    V8 young generation, committed`, value: reading.heap.young, unit: "bytes" as const },
    { name: `    V8 old generation, code and the rest of the heap, committed`, value: reading.heap.heapTotal - reading.heap.young, unit: "bytes" as const },
    { name: `    outside the V8 heap (RSS − heap committed)`, value: reading.heap.rss - reading.heap.heapTotal, unit: "bytes" as const },
    // A full GC (runtime/heap-trim.ts) blocks the event loop: how long the daemon stopped answering.
    { name: `  longest event-loop stall so far`, value: reading.heap.stallMaxMs, unit: "ms" as const },
    { name: `  99th percentile of event-loop stalls so far`, value: reading.heap.stallP99Ms, unit: "ms" as const },
  ]);
  rows.push({ name: `peak after ${last.tasks.toLocaleString("en")} / peak after ${first.tasks}`, value: last.peak / first.peak, unit: "x", target: 1.2 });
  // 50,000 entries of about 100 bytes, far over the 12 KB cap: every session sees 12 KB of it.
  const memory = await runTasks([100], bigMemory(5 * 1024 * 1024));
  rows.push({ name: "peak RSS (VmHWM) after 100 tasks with a 5 MB MEMORY.md", value: memory[0]!.peak, unit: "bytes" });
  rows.push({ name: "  with the 5 MB MEMORY.md / without", value: memory[0]!.peak / first.peak, unit: "x", target: 1.2 });
  return rows;
}

async function runTasks(checkpoints: readonly number[], memory: string): Promise<Reading[]> {
  const model = await startMessagesApi({ responder: agent });
  const telegram = await startBotApi({ token: BOT_TOKEN, botUsername: "night_bot" });
  const dir = realpathSync(mkdtempSync(join("/var/tmp", "nightshift-bench-memory-")));
  const home = join(dir, "home");
  mkdirSync(join(home, "inbox"), { recursive: true });
  writeFileSync(
    join(home, "config.yaml"),
    `daemon:\n  concurrency: 4\ndashboard:\n  port: ${await freePort()}\nbudget:\n  daily_usd: 1000000\n` +
      // Only failures are notified: 1,500 "finished" messages would queue behind Telegram's 1 message a second.
      `telegram:\n  allowed_users: [${USER}]\n  notify: [failed]\n`,
  );
  if (memory) writeFileSync(join(home, "MEMORY.md"), memory);
  const heapFile = join(dir, "heap.json");
  const env = { ...process.env, NIGHTSHIFT_BENCH_HEAP_FILE: heapFile, NIGHTSHIFT_HOME: home, ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: API_KEY, TELEGRAM_BOT_TOKEN: BOT_TOKEN, TELEGRAM_API_ROOT: telegram.url };
  const snapshots = process.env.NIGHTSHIFT_BENCH_SNAPSHOTS;
  const options = [`--import=${PROBE}`, ...(snapshots ? ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${snapshots}`] : [])];
  const child = spawn(process.execPath, [...options, CLI, "start"], { env, cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  try {
    await until(() => output.includes("Nightshift is running") || child.exitCode !== null, "the daemon to start", 30_000);
    if (child.exitCode !== null) throw new Error(`nightshift start exited: ${output}`);
    const began = Date.now();
    const readings: Reading[] = [];
    let done = 0;
    for (const checkpoint of checkpoints) {
      while (done < checkpoint) {
        const count = Math.min(BATCH, checkpoint - done);
        const names = Array.from({ length: count }, (_, n) => `task ${done + n + 1}.md`);
        for (const name of names) writeFileSync(join(home, "inbox", name), `---\ntitle: ${name.slice(0, -3)}\n---\nCheck that the sandbox answers, then say so.\n`);
        await until(() => names.every((name) => existsSync(join(home, "outbox", name))), `${names.length} results (${done} done before): ${output.slice(-500)}`, 300_000);
        done += count;
      }
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      const seconds = (Date.now() - began) / 1000;
      // The probe writes twice a second: the next reading is at most 500 ms after this checkpoint.
      const stale = existsSync(heapFile) ? statSync(heapFile).mtimeMs : 0;
      const heap = await fresh(heapFile, stale);
      readings.push({ tasks: done, peak: procKb(status, "VmHWM") * 1024, rss: procKb(status, "VmRSS") * 1024, seconds, heap });
      if (snapshots) await snapshot(child, snapshots);
      if (process.env.NIGHTSHIFT_BENCH_VERBOSE) console.error(`${done} tasks: peak ${(readings.at(-1)!.peak / 2 ** 20).toFixed(1)} MB, rss ${(readings.at(-1)!.rss / 2 ** 20).toFixed(1)} MB, ${readings.at(-1)!.seconds.toFixed(0)} s`);
    }
    const failed = readdirSync(join(home, "outbox")).filter((name) => /^status: (?!done)/m.test(readFileSync(join(home, "outbox", name), "utf8")));
    if (failed.length) throw new Error(`${failed.length} tasks did not finish done, e.g. ${readFileSync(join(home, "outbox", failed[0]!), "utf8")}`);
    return readings;
  } finally {
    await stop(child, exited);
    await telegram.close();
    await model.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One `bash` call, then an answer quoting its output's first line. */
function agent(request: RecordedRequest): Reply {
  const last = request.body.messages.at(-1);
  const result = Array.isArray(last.content) ? last.content.find((block: { type: string }) => block.type === "tool_result") : undefined;
  if (!result) return { content: [{ type: "text", text: "Checking." }, { type: "tool_use", name: "bash", input: { command: "echo the sandbox answers" } }] };
  const said = typeof result.content === "string" ? result.content : JSON.stringify(result.content);
  return { content: [{ type: "text", text: `Done: ${said.split("\n")[0]}` }] };
}

/** MEMORY.md of about `bytes`, in the consolidator's entry format. */
function bigMemory(bytes: number): string {
  const lines = ["# Memory", ""];
  let size = 0;
  for (let n = 0; size < bytes; n++) {
    const line = `- The build of project ${n} needs Node 24 and runs its tests with node --test. <!-- m:${n.toString(36).padStart(4, "0")} sources:2026-11-01#${n + 1} added:2026-11-01 -->`;
    lines.push(line);
    size += line.length + 1;
  }
  return lines.join("\n") + "\n";
}

/** The probe's next reading: written after `stale` and whole (a read can catch it half written). */
async function fresh(file: string, stale: number): Promise<HeapReading> {
  let reading: HeapReading | undefined;
  await until(() => {
    try {
      if (statSync(file).mtimeMs === stale) return false;
      reading = JSON.parse(readFileSync(file, "utf8")) as HeapReading;
      return true;
    } catch {
      return false;
    }
  }, "the heap probe's reading", 5_000);
  return reading!;
}

/** Asks the daemon for a heap snapshot and waits until the file is whole (its size stops changing). */
async function snapshot(child: ChildProcess, dir: string): Promise<void> {
  const before = new Set(readdirSync(dir));
  child.kill("SIGUSR2");
  let file: string | undefined;
  await until(() => (file = readdirSync(dir).find((name) => name.endsWith(".heapsnapshot") && !before.has(name))) !== undefined, "a heap snapshot", 60_000);
  let size = -1;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now = statSync(join(dir, file!)).size;
    if (now === size && now > 0) return;
    size = now;
  }
}

async function stop(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

async function until(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

if (import.meta.main) {
  const total = Number(process.argv[2]) || 1_500;
  const checkpoints = [100, 500, 1_000, 1_500].filter((n) => n < total).concat(total);
  console.log(`## Daemon memory as tasks accumulate\n\n${formatRows(await benchMemoryGrowth(checkpoints))}\n`);
}
