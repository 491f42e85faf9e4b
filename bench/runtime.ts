/**
 * What the runtime itself costs, apart from the model and the tools: the loop's overhead per step,
 * a durable append early and late in a long log, and reading back a 1,000-step session on resume.
 * Run alone with `node bench/runtime.ts`, or with the other benches through `node bench/run.ts`.
 * Wall time is real here (system clock, real fdatasync on a real file); nothing is asserted.
 */

import { copyFileSync, mkdtempSync, realpathSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { z } from "zod";
import { systemClock } from "../runtime/clock.ts";
import type { ResolvedRole } from "../runtime/config.ts";
import { configSchema } from "../runtime/config.ts";
import { rebuild } from "../runtime/conversation.ts";
import type { EventOf, SessionEvent, TaskSpec } from "../runtime/events.ts";
import { resumeSession, startSession, type SessionDeps } from "../runtime/loop.ts";
import { createModelClient, type ModelClient } from "../runtime/model.ts";
import { createUnsandboxed } from "../runtime/sandbox/index.ts";
import { openSessionLog, readSessionLog, type SessionLog } from "../runtime/session-log.ts";
import { createTools } from "../runtime/runtime.ts";
import { defineTool, type Tool } from "../runtime/tools/index.ts";
import { DEFAULT_IDENTITY } from "../memory/identity.ts";
import { startMessagesApi, type MessagesApi, type Reply } from "../test/support/messages-api.ts";

/** One measured figure. `target` is an upper bound in the figure's unit. */
export interface Figure {
  name: string;
  value: number;
  unit: "ms" | "x" | "bytes";
  target?: number;
}

const API_KEY = "sk-ant-bench-0123456789abcdef";
const MODEL = "claude-sonnet-5-5";

// ---------------------------------------------------------------- harness overhead per step

/**
 * Runs `sessions` sessions of `steps` tool calls each (plus a final answer) against the local
 * Messages API stand-in with zero latency, through the real SDK, a real log with fdatasync and a
 * trivial tool. A step runs from one model call's start to the next; its harness time is what is
 * left after the model call and the tool: log appends, conversation bookkeeping, events, input
 * validation. One more session with `sync: false` shows how much of that is the flush.
 */
export async function benchHarnessOverhead(steps = 200, sessions = 3): Promise<Figure[]> {
  const api = await startMessagesApi();
  const dir = tempDir();
  try {
    await runToolSession(api, dir, "warmup", 30, true); // JIT, SDK and socket warm-up; discarded
    const samples: StepSample[] = [];
    for (let run = 0; run < sessions; run++) samples.push(...(await runToolSession(api, dir, `measured-${run}`, steps, true)));
    const unsynced = await runToolSession(api, dir, "unsynced", steps, false);
    const harness = (list: StepSample[]) => list.map((s) => s.stepMs - s.modelMs - s.toolMs);
    return [
      { name: `harness per step, median (${sessions} sessions × ${steps} steps)`, value: median(harness(samples)), unit: "ms", target: 2 },
      { name: "harness per step, p90", value: percentile(harness(samples), 0.9), unit: "ms" },
      { name: "  of which log appends (2 appends, 2 fdatasyncs), median", value: median(samples.map((s) => s.logMs)), unit: "ms" },
      { name: "  of which the rest (bookkeeping, events, input validation), median", value: median(samples.map((s) => s.stepMs - s.modelMs - s.toolMs - s.logMs)), unit: "ms" },
      { name: "same session with `sync: false` (no fdatasync): harness per step, median", value: median(harness(unsynced)), unit: "ms" },
      { name: "model call (SDK + loopback HTTP + stand-in), median", value: median(samples.map((s) => s.modelMs)), unit: "ms" },
      { name: "model call, p90", value: percentile(samples.map((s) => s.modelMs), 0.9), unit: "ms" },
      { name: "tool execute (noop), median", value: median(samples.map((s) => s.toolMs)), unit: "ms" },
    ];
  } finally {
    await api.close();
    dir.cleanup();
  }
}

interface StepSample {
  stepMs: number;
  modelMs: number;
  toolMs: number;
  logMs: number;
}

async function runToolSession(api: MessagesApi, dir: { path: string }, id: string, steps: number, sync: boolean): Promise<StepSample[]> {
  let served = 0;
  api.respondWith((): Reply => {
    const step = ++served;
    if (step > steps) return { content: [{ type: "text", text: `Done: ran ${steps} steps.` }] };
    return { content: [{ type: "text", text: `Step ${step}: checking the next item.` }, { type: "tool_use", name: "noop", input: { note: `item ${step}` } }] };
  });

  const calls: { start: number; modelMs: number; toolMs: number; logMs: number }[] = [];
  const current = () => calls.at(-1);
  const inner = createModelClient(role(api.url), API_KEY, { clock: systemClock, retry: { attempts: 0, initial_delay: 1000, max_delay: 1000, request_timeout: 30_000 } });
  const model: ModelClient = {
    model: inner.model,
    role: inner.role,
    async complete(request, options) {
      const call = { start: performance.now(), modelMs: 0, toolMs: 0, logMs: 0 };
      calls.push(call);
      const reply = await inner.complete(request, options);
      call.modelMs = performance.now() - call.start;
      return reply;
    },
  };
  const noop = defineTool({
    name: "noop",
    description: "Does nothing and answers ok.",
    schema: z.object({ note: z.string() }),
    async execute() {
      const start = performance.now();
      const output = "ok";
      const call = current();
      if (call) call.toolMs += performance.now() - start;
      return output;
    },
  });
  const log = timedLog(await openSessionLog(join(dir.path, `${id}.jsonl`), id, { sync }), (ms) => {
    const call = current();
    if (call) call.logMs += ms;
  });
  const seen: SessionEvent[] = []; // a subscriber, as a trace writer would be
  const deps = sessionDeps(log, model, [noop], (event) => seen.push(event));
  try {
    const result = await startSession(task(dir.path, steps * 10), deps);
    if (result.status !== "done" || result.turns !== steps + 1) throw new Error(`bench session ended ${result.status} after ${result.turns} turns: ${result.reason ?? ""}`);
  } finally {
    await log.close();
  }
  // The last call gave the final answer; every earlier one opened a step that ended at the next call.
  return calls.slice(0, -1).map((call, index) => ({ stepMs: calls[index + 1]!.start - call.start, modelMs: call.modelMs, toolMs: call.toolMs, logMs: call.logMs }));
}

function timedLog(inner: SessionLog, onAppend: (ms: number) => void): SessionLog {
  return {
    id: inner.id,
    async append(...events) {
      const start = performance.now();
      await inner.append(...events);
      onAppend(performance.now() - start);
    },
    read: () => inner.read(),
    close: () => inner.close(),
  };
}

// ---------------------------------------------------------------- durable append, early vs late

/**
 * Appends `steps` realistic steps with fdatasync (model_response + tool_start as one write, then
 * tool_end, as the loop does) and compares a step's append cost near the start with near the end.
 * A ratio near 1 means appends do not grow with the log. Each window is pooled over `repeats` runs;
 * the log is written to `steps + 5` so the late window is centred on `steps`.
 */
export async function benchDurableAppend(steps = 1000, repeats = 5): Promise<Figure[]> {
  const early: number[] = [];
  const late: number[] = [];
  let size = 0;
  for (let run = 0; run < repeats; run++) {
    const dir = tempDir();
    try {
      const path = join(dir.path, "append.jsonl");
      const log = await openSessionLog(path, "append", { sync: true });
      await log.append(sessionStart(dir.path));
      for (let step = 1; step <= steps + 5; step++) {
        const [response, start, end] = stepEvents(step);
        const began = performance.now();
        await log.append(response, start);
        await log.append(end);
        const ms = performance.now() - began;
        if (step >= 5 && step <= 15) early.push(ms);
        if (step >= steps - 5 && step <= steps + 5) late.push(ms);
      }
      await log.close();
      size = statSync(path).size;
    } finally {
      dir.cleanup();
    }
  }
  const ratio = median(late) / median(early);
  return [
    { name: `step append (2 writes + 2 fdatasyncs) at steps 5-15, median of ${early.length}`, value: median(early), unit: "ms" },
    { name: `step append at steps ${steps - 5}-${steps + 5}, median of ${late.length}`, value: median(late), unit: "ms" },
    { name: `late / early`, value: ratio, unit: "x", target: 1.2 },
    { name: `log size after ${steps + 5} steps`, value: size, unit: "bytes" },
  ];
}

// ---------------------------------------------------------------- resume a long session

/**
 * Writes a realistic `steps`-step log, then times what resume does before its first request:
 * readSessionLog + rebuild (median of `runs`). For context it also times the whole path from
 * resumeSession to the moment it calls the model, on a fresh copy of the log each time.
 */
export async function benchResume(steps = 1000, runs = 10): Promise<Figure[]> {
  const dir = tempDir();
  try {
    const path = join(dir.path, "long.jsonl");
    const log = await openSessionLog(path, "long", { sync: false });
    await log.append(sessionStart(dir.path));
    for (let step = 1; step <= steps; step++) {
      const [response, start, end] = stepEvents(step);
      await log.append(response, start);
      await log.append(end);
    }
    await log.close();

    const read: number[] = [];
    const built: number[] = [];
    for (let run = -1; run < runs; run++) {
      const began = performance.now();
      const events = await readSessionLog(path);
      const parsed = performance.now();
      const state = rebuild(events);
      const done = performance.now();
      if (state.turns !== steps || state.openTurn) throw new Error(`rebuilt ${state.turns} turns, expected ${steps} closed turns`);
      if (run >= 0) {
        read.push(parsed - began);
        built.push(done - parsed);
      }
    }
    const total = read.map((ms, index) => ms + built[index]!);

    const toFirstRequest: number[] = [];
    const tools = realTools();
    for (let run = -1; run < runs; run++) {
      const copy = join(dir.path, `copy-${run + 1}.jsonl`);
      copyFileSync(path, copy);
      const copyLog = await openSessionLog(copy, "long", { sync: true });
      let began = 0;
      const firstCall: ModelClient = {
        model: MODEL,
        role: "main",
        async complete() {
          if (run >= 0) toFirstRequest.push(performance.now() - began);
          return { model: MODEL, content: [{ type: "text", text: "Done." }], stopReason: "end_turn", usage: usage(), latencyMs: 0, requestBytes: 0 };
        },
      };
      began = performance.now();
      await resumeSession(sessionDeps(copyLog, firstCall, tools));
      await copyLog.close();
    }

    return [
      { name: `readSessionLog + rebuild, ${steps} steps, median of ${runs}`, value: median(total), unit: "ms", target: 300 },
      { name: "  of which readSessionLog (read + JSON.parse)", value: median(read), unit: "ms" },
      { name: "  of which rebuild", value: median(built), unit: "ms" },
      { name: `log file size`, value: statSync(path).size, unit: "bytes" },
      { name: "resumeSession until its first model call, median", value: median(toFirstRequest), unit: "ms" },
    ];
  } finally {
    dir.cleanup();
  }
}

// ---------------------------------------------------------------- realistic events

const FILE_TEXT =
  "The parser reads the config once at startup and caches the result; reloads go through watchConfig(), which " +
  "debounces file events by 200 ms. Next I will check how the cache is invalidated when the file is replaced " +
  "atomically (rename over), since inotify reports that as a different inode.";

/** One step as the loop records it: a response with text and a tool call, its start and its end. */
function stepEvents(step: number): [EventOf<"model_response">, EventOf<"tool_start">, EventOf<"tool_end">] {
  const at = Date.parse("2026-11-24T09:00:00Z") + step * 4000;
  const id = `toolu_01Bench${String(step).padStart(6, "0")}XyZabcdEfgh`;
  const input = { command: `grep -rn "watchConfig" src/ --include=*.ts | head -n 20  # step ${step}` };
  const output = Array.from({ length: 6 }, (_, line) => `src/config/watch-${line}.ts:${step + line * 7}:  const handle = watchConfig(path, { debounceMs: 200, onChange: "reload" });`).join("\n");
  return [
    {
      type: "model_response",
      at,
      turn: step,
      model: MODEL,
      content: [{ type: "text", text: `Step ${step}. ${FILE_TEXT}` }, { type: "tool_use", id, name: "bash", input }],
      stop_reason: "tool_use",
      usage: usage(),
      cost_usd: 0.0043,
      latency_ms: 2140,
      request_bytes: 18_000 + step * 900,
    },
    { type: "tool_start", at: at + 5, id, name: "bash", input },
    { type: "tool_end", at: at + 60, id, name: "bash", output: output.slice(0, 500), is_error: false, duration_ms: 55 },
  ];
}

function usage() {
  return { input_tokens: 12, output_tokens: 180, cache_read_input_tokens: 21_400, cache_creation_input_tokens: 950 };
}

function sessionStart(workdir: string): SessionEvent {
  return { type: "session_start", at: Date.parse("2026-11-24T09:00:00Z"), task: task(workdir, 2000) };
}

function task(workdir: string, maxTurns: number): TaskSpec {
  return {
    title: "Benchmark task",
    prompt: "Work through the items one by one.",
    workdir,
    model: "main",
    budget: { max_turns: maxTurns, max_usd: 10_000, timeout_ms: 24 * 3_600_000 },
  };
}

function sessionDeps(log: SessionLog, model: ModelClient, tools: Tool[], emit?: (event: SessionEvent) => void): SessionDeps {
  return {
    log,
    model,
    small: model,
    tools,
    clock: systemClock,
    loadPrefix: async () => ({ identity: DEFAULT_IDENTITY, memory: "" }),
    prices: configSchema.parse({}).prices,
    compaction: { threshold: 0.7, contextWindow: 200_000, keepRecentTurns: 4 },
    ...(emit ? { emit } : {}),
  };
}

/** The default tool set, as a real session sends it (bash is never run here). */
function realTools(): Tool[] {
  const sandbox = createUnsandboxed({ env: { PATH: process.env.PATH } });
  return createTools(sandbox, { timeoutMs: 30_000, maxOutputBytes: 10_000 });
}

function role(url: string): ResolvedRole {
  return {
    role: "main",
    model: MODEL,
    base_url: url,
    baseURL: url,
    api_key_env: "ANTHROPIC_API_KEY",
    apiKeyEnv: "ANTHROPIC_API_KEY",
    apiKey: API_KEY,
    context_window: 200_000,
    max_tokens: 1024,
    server_compaction: "off",
    tool_references: "off",
  };
}

// ---------------------------------------------------------------- helpers

function tempDir(): { path: string; cleanup(): void } {
  const path = realpathSync(mkdtempSync(join(tmpdir(), "nightshift-bench-")));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN;
}

function median(values: readonly number[]): number {
  return percentile(values, 0.5);
}

function formatValue(value: number, unit: Figure["unit"]): string {
  if (unit === "ms") return `${value.toFixed(value < 10 ? 2 : 1)} ms`;
  if (unit === "x") return `${value.toFixed(2)}×`;
  return value >= 1024 * 1024 ? `${(value / 1024 / 1024).toFixed(2)} MB` : `${(value / 1024).toFixed(1)} KB`;
}

/** A markdown table; the target and result columns appear when some figure has a target. */
export function formatFigures(figures: readonly Figure[]): string {
  const withTargets = figures.some((figure) => figure.target !== undefined);
  const head = withTargets ? ["| measure | value | target | result |", "|---|---:|---:|---|"] : ["| measure | value |", "|---|---:|"];
  const rows = figures.map((figure) => {
    const cells = [figure.name, formatValue(figure.value, figure.unit)];
    if (withTargets) {
      const target = figure.target;
      cells.push(target === undefined ? "" : `≤ ${formatValue(target, figure.unit)}`, target === undefined ? "" : figure.value <= target ? "met" : "**missed**");
    }
    return `| ${cells.join(" | ")} |`;
  });
  return [...head, ...rows].join("\n");
}

if (import.meta.main) {
  for (const [title, bench] of [
    ["Harness overhead per step", () => benchHarnessOverhead()],
    ["Durable append, step 10 vs step 1000", () => benchDurableAppend()],
    ["Resume a 1,000-step session", () => benchResume()],
  ] as const) {
    console.log(`## ${title}\n\n${formatFigures(await bench())}\n`);
  }
}
