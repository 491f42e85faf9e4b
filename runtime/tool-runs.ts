import type { MessageParam } from "@anthropic-ai/sdk/resources/messages";
import { existsSync } from "node:fs";
import { INTERRUPTED_NOTE, NOT_RUN_NOTE, toResult, type OpenTurn, type ToolUse } from "./conversation.ts";
import { PermissionDenied, Shutdown } from "./errors.ts";
import type { EventOf, SessionEvent } from "./events.ts";
import type { ParentSession, SessionDeps } from "./loop.ts";
import { checkRequests, type GateOptions } from "./policy/gate.ts";
import { writableRoots, type Grant, type PermissionRequest } from "./policy/policy.ts";
import { writeProtected } from "./policy/roots.ts";
import type { PathRules } from "./tools/paths.ts";
import { ToolError, type Tool, type ToolOutput } from "./tools/tool.ts";

/**
 * A turn's tool calls, as the session loop (runtime/loop.ts) runs them: each validated and checked
 * against the policy before it runs, its start made durable first, its result or error recorded.
 */

export interface ToolRun {
  deps: SessionDeps;
  toolsByName: Map<string, Tool>;
  record(...events: SessionEvent[]): Promise<void>;
  run: AbortSignal;
  workdir: string;
  paths: PathRules;
  gate: GateOptions;
  grants: Grant[];
  parent(): ParentSession;
  /** The session's events so far (read-only). */
  events: readonly SessionEvent[];
}

/**
 * Runs a turn's tool calls in order and returns the message with their results. Each call is
 * validated and checked against the policy first (an ask waits for its approval, which a restart
 * finds again); its start is durable before it runs, batched with the previous end. A started call
 * with no end is reported as interrupted and never run again; on abort, unstarted calls stay so.
 */
export async function runTools(turn: OpenTurn, head: SessionEvent[], context: ToolRun): Promise<MessageParam> {
  const { deps, run } = context;
  let carry = head;
  const record = async (...events: SessionEvent[]) => {
    const batch = [...carry, ...events];
    carry = [];
    await context.record(...batch);
  };
  const end = (use: ToolUse, output: string, isError: boolean, started: number, interrupted = false): EventOf<"tool_end"> => {
    const event: EventOf<"tool_end"> = { type: "tool_end", at: deps.clock.now(), id: use.id, name: use.name, output, is_error: isError, duration_ms: deps.clock.now() - started, ...(interrupted ? { interrupted } : {}) };
    turn.ends.set(use.id, event);
    return event;
  };
  try {
    for (const use of turn.uses) {
      if (turn.ends.has(use.id)) continue;
      const canResume = context.toolsByName.get(use.name)?.resumable === true;
      const resumable = turn.started.has(use.id) && canResume;
      if (turn.started.has(use.id) && !resumable) {
        await record(end(use, INTERRUPTED_NOTE, true, deps.clock.now(), true));
        continue;
      }
      if (run.aborted) break;
      const prepared = await prepare(use, turn.truncated, { ...context, record });
      if ("refusal" in prepared) {
        carry.push(end(use, prepared.refusal, true, deps.clock.now()));
        continue;
      }
      const started = deps.clock.now();
      if (!resumable) await record({ type: "tool_start", at: started, id: use.id, name: use.name, input: use.input });
      const { output, isError, extra } = run.aborted ? { output: NOT_RUN_NOTE, isError: true, extra: {} } : await execute(use, prepared, context);
      if (canResume && run.aborted && run.reason instanceof Shutdown) break; // left open: the next start runs it again, and its specialists resume
      carry = [{ ...end(use, output, isError, started), ...extra }];
      turn.ends.set(use.id, carry[0] as EventOf<"tool_end">);
    }
  } finally {
    if (carry.length) await context.record(...carry);
  }
  if (run.aborted) throw run.reason;
  return { role: "user", content: turn.uses.map((use) => toResult(turn.ends.get(use.id)!)) };
}

type Prepared = { tool: Tool; input: unknown } | { refusal: string };

/** Validation and permission checks, before anything runs. */
async function prepare(use: ToolUse, truncated: boolean, context: ToolRun): Promise<Prepared> {
  const { toolsByName, workdir, paths } = context;
  if (truncated) return { refusal: "Not run: your output was cut off at the output-token limit, so this call may be incomplete. Send it again in smaller pieces." };
  const tool = toolsByName.get(use.name);
  if (!tool) return { refusal: `There is no tool named ${use.name}. Available: ${[...toolsByName.keys()].join(", ")}.` };
  const parsed = tool.schema.safeParse(use.input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { refusal: `Invalid input for ${use.name}: ${issue.path.join(".") || "input"}: ${issue.message}` };
  }
  let requests;
  try {
    requests = tool.access?.(parsed.data, { workdir, paths, ...(context.deps.view ? { view: context.deps.view } : {}) }) ?? [];
  } catch (error) {
    return { refusal: (error as Error).message };
  }
  const verdict = await checkRequests(requests, { toolUseId: use.id, tool: use.name, input: use.input }, context.gate, context.grants, context.record, context.run);
  return verdict.allowed ? { tool, input: parsed.data } : { refusal: verdict.message };
}

async function execute(use: ToolUse, { tool, input }: { tool: Tool; input: unknown }, context: ToolRun): Promise<{ output: string; isError: boolean; extra: Pick<ToolOutput, "cost_usd" | "specialists" | "references"> }> {
  const { run, workdir, paths } = context;
  const permissions = {
    async check(requests: PermissionRequest[]) {
      const verdict = await checkRequests(requests, { toolUseId: use.id, tool: use.name, input: use.input }, context.gate, context.grants, context.record, run);
      if (!verdict.allowed) throw new PermissionDenied(verdict.message);
    },
  };
  try {
    // A tool that ignores its signal (a blocked read, say) must not hold the session past a cancel.
    const writable = writableRoots(context.gate.rules, context.gate.places, context.gate.task).filter((path) => existsSync(path));
    const readOnly = writeProtected(context.gate.rules, context.gate.places, [workdir, ...writable]).filter((path) => existsSync(path));
    const specialists = context.deps.specialists;
    const consult = specialists && ((names: string[], question: string, mode: "parallel" | "chain") => specialists({ names, question, mode, key: use.id }, context.parent()));
    // An MCP tool's result, even an error, may carry what its server read: counted like a web page (erring toward untrusted).
    const webSeen = () => context.events.some((event) => event.type === "tool_end" && ((event.name === "web_fetch" && !event.is_error) || event.name.startsWith("mcp__") || event.name === "call_tool"));
    const view = context.deps.view;
    const result = await raceAbort(tool.execute(input, { workdir, signal: run, paths, permissions, writable, readOnly, session: context.deps.log.id, webSeen, ...(consult ? { consult } : {}), ...(view ? { view } : {}) }), run);
    if (typeof result === "string") return { output: result, isError: false, extra: {} };
    return { output: result.output, isError: false, extra: { ...(result.cost_usd ? { cost_usd: result.cost_usd } : {}), ...(result.specialists ? { specialists: result.specialists } : {}), ...(result.references?.length ? { references: result.references } : {}) } };
  } catch (error) {
    if (run.aborted && error === run.reason) return { output: `${use.name} was stopped: ${(run.reason as Error)?.message ?? "cancelled"}`, isError: true, extra: {} };
    if (error instanceof ToolError || error instanceof PermissionDenied) return { output: error.message, isError: true, extra: {} };
    const err = error as NodeJS.ErrnoException;
    return { output: `${use.name} failed: ${err.code ?? err.name}: ${err.message}`, isError: true, extra: {} };
  }
}

function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  work.catch(() => {}); // a tool that fails after being abandoned must not become an unhandled rejection
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

