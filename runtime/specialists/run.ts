import type { DailySpend } from "../daily-spend.ts";
import type { SessionStatus, SpecialistReport, TaskSpec } from "../events.ts";
import type { ParentSession, SessionResult, SpecialistRunner } from "../loop.ts";
import type { AgentSpec } from "./agents.ts";

/**
 * Specialists: each named one runs its own session (own context, own log under the parent's, own
 * trace) under the parent's permissions and what is left of its budget, and comes back as a short
 * report. Parallel ones really run at once, up to a cap shared by the whole process; a chain hands
 * each report to the next. A specialist that fails is a report saying so; the others go on.
 */

export interface ChildRun {
  /** `<parent>.<key>.<name>`: the same request after a restart finds the same session. */
  id: string;
  agent: AgentSpec;
  task: TaskSpec;
  /** The parent's remaining dollars, shared by the specialists of this request. */
  pool: DailySpend;
  signal: AbortSignal;
}

export interface RunnerOptions {
  /** The specialists as they are on disk now (agents/*.md). */
  agents(): Map<string, AgentSpec>;
  /** Starts, resumes or reads back one specialist's session. */
  runChild(run: ChildRun): Promise<SessionResult>;
  /** Specialists running at once across the process. */
  concurrency: number;
}

export function createSpecialistRunner(options: RunnerOptions): SpecialistRunner {
  const gate = semaphore(options.concurrency);
  return async ({ names: asked, question, mode, key }, parent) => {
    const names = [...new Set(asked)]; // one session per name: the same name twice would share a log
    const agents = options.agents();
    const pool = sharedBudget(parent.task.budget.max_usd - parent.spentUsd);
    const one = async (name: string, prompt: string): Promise<SpecialistReport> => {
      const session = `${parent.id}.${key.replace(/[^\w-]/g, "")}.${name}`;
      const agent = agents.get(name);
      if (!agent) {
        const known = [...agents.keys()].join(", ") || "none (add agents/<name>.md)";
        return { name, session, status: "unavailable", report: `There is no specialist "${name}". Available: ${known}.`, cost_usd: 0, turns: 0 };
      }
      const release = await gate(parent.signal);
      try {
        const result = await options.runChild({ id: session, agent, task: childTask(agent, prompt, parent, pool), pool, signal: parent.signal });
        return { name, session, status: result.status, report: reportOf(result), cost_usd: result.costUsd, turns: result.turns };
      } catch (error) {
        if (parent.signal.aborted) throw error;
        return { name, session, status: "failed", report: `${name} could not run: ${(error as Error).message}`, cost_usd: 0, turns: 0 };
      } finally {
        release();
      }
    };
    if (mode === "parallel") return Promise.all(names.map((name) => one(name, question)));
    const reports: SpecialistReport[] = [];
    for (const name of names) {
      const before = reports.map((report) => `<report from="${report.name}">\n${report.report}\n</report>`).join("\n\n");
      reports.push(await one(name, before ? `${question}\n\n${before}\n\nBuild on the reports above: add what they missed, correct what they got wrong.` : question));
    }
    return reports;
  };
}

function childTask(agent: AgentSpec, prompt: string, parent: ParentSession, pool: DailySpend): TaskSpec {
  const firstLine = prompt.split("\n").find((line) => line.trim())?.trim() ?? "";
  return {
    title: `${agent.name}: ${firstLine.length > 60 ? `${firstLine.slice(0, 59)}…` : firstLine}`,
    prompt,
    workdir: parent.task.workdir,
    model: agent.model,
    budget: { max_turns: agent.max_turns, max_usd: Math.max(0, pool.limitUsd), timeout_ms: Math.max(1, parent.remainingMs) },
    source: `specialist:${parent.id}`,
    ...(parent.task.permissions ? { permissions: parent.task.permissions } : {}),
    parent: { session: parent.id, specialist: agent.name },
  };
}

/** The answer, or what stopped it (with what it had so far). */
function reportOf(result: SessionResult): string {
  const status: SessionStatus | "interrupted" = result.status;
  if (status === "done") return result.answer.trim() || "(an empty report)";
  const partial = result.answer.trim() ? `\nWhat it had so far:\n${result.answer.trim()}` : "";
  return `(${status}: ${result.reason ?? "no reason recorded"})${partial}`;
}

/** Dollars left for a request's specialists, counted as they spend. */
function sharedBudget(limitUsd: number): DailySpend {
  let spent = 0;
  return { limitUsd, spent: () => spent, add: (usd) => void (spent += usd) };
}

/** At most `limit` holders; `acquire` resolves with the release, or rejects when the signal aborts first. */
function semaphore(limit: number): (signal: AbortSignal) => Promise<() => void> {
  let active = 0;
  const waiting: Array<() => void> = [];
  const release = () => {
    active--;
    waiting.shift()?.();
  };
  return (signal) =>
    new Promise((resolve, reject) => {
      const take = () => {
        signal.removeEventListener("abort", onAbort);
        active++;
        let released = false;
        resolve(() => {
          if (!released) (released = true), release();
        });
      };
      const onAbort = () => {
        const index = waiting.indexOf(take);
        if (index >= 0) waiting.splice(index, 1);
        reject(signal.reason);
      };
      if (signal.aborted) return reject(signal.reason);
      if (active < limit) return take();
      waiting.push(take);
      signal.addEventListener("abort", onAbort, { once: true });
    });
}
