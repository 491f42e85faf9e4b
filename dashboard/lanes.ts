import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { readSessionLog, spentIn, type SessionEvent, type SpecialistReport } from "../runtime/index.ts";
import type { TaskRecord } from "../tasks/index.ts";
import { runningNow } from "./format.ts";

/**
 * A task's specialists as lanes: one per specialist session (a plan, a review round's critic, a
 * consult's answerer), with its state, turns and cost. A finished one is what the parent's log
 * kept (its report); one still running is only in its own log (sessions/<task>/<session>.jsonl,
 * see runtime/runtime.ts `runChild`) until it ends, so both are read.
 */

/** One specialist session's own log. */
export interface SpecialistLog {
  /** `<task>.<key>.<name>`: the key is `plan`, `review-N` or the consult's tool_use id. */
  session: string;
  events: SessionEvent[];
}

export type LaneState = SpecialistReport["status"] | "running";

export interface Lane {
  name: string;
  session: string;
  /** "plan", "review round N" or "consult". */
  part: string;
  state: LaneState;
  turns: number;
  cost_usd: number;
  /** The report as the parent got it (or the answer in its log); none while it runs. */
  report?: string;
  /** When it started (its log's first event), else when its report came back: the lanes' order. */
  at: number;
}

/**
 * Every readable log in sessions/<task>/. A damaged log is left out (a finished specialist still
 * shows from its report in the parent's log); no folder is no specialists. Each log is read whole:
 * a specialist's log is bounded by its agent's `max_turns` (at most 100).
 */
export async function specialistLogs(sessionsDir: string, task: string): Promise<SpecialistLog[]> {
  if (!/^[\w-][\w.-]*$/.test(task)) return []; // a task id never names another folder
  const dir = join(sessionsDir, task);
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => name.endsWith(".jsonl")).sort();
  } catch {
    return [];
  }
  const logs = await Promise.all(
    names.map(async (name) => {
      try {
        return { session: name.slice(0, -".jsonl".length), events: await readSessionLog(join(dir, name)) };
      } catch {
        return undefined;
      }
    }),
  );
  return logs.filter((log) => log !== undefined);
}

/** The lanes of a task, in the order they started. */
export function lanesOf(task: TaskRecord, events: readonly SessionEvent[], logs: readonly SpecialistLog[]): Lane[] {
  const started = new Map(logs.map((log) => [log.session, log.events[0]?.at]));
  const lanes = new Map<string, Lane>();
  const reported = (report: SpecialistReport, at: number) =>
    lanes.set(report.session, { name: report.name, session: report.session, part: partOf(task.id, report.session, report.name), state: report.status, turns: report.turns, cost_usd: report.cost_usd, report: report.report, at: started.get(report.session) ?? at });
  for (const event of events) {
    if (event.type === "plan") reported(event.report, event.at);
    else if (event.type === "review") for (const critique of event.critiques) reported(critique, event.at);
    else if (event.type === "tool_end") for (const report of event.specialists ?? []) reported(report, event.at);
  }
  // Without a report in the parent's log: running now, or ended while its siblings still run, or
  // stopped with its task (a restart resumes it).
  const active = runningNow(task);
  for (const log of logs) {
    if (lanes.has(log.session)) continue;
    const first = log.events[0];
    const end = log.events.findLast((event) => event.type === "session_end");
    const name = specialistName(log);
    lanes.set(log.session, {
      name,
      session: log.session,
      part: partOf(task.id, log.session, name),
      state: end ? end.status : active ? "running" : "interrupted",
      turns: end ? end.turns : log.events.filter((event) => event.type === "model_response").length,
      cost_usd: end ? end.cost_usd : spentIn(log.events),
      ...(end ? { report: end.answer } : {}),
      at: first?.at ?? 0,
    });
  }
  return [...lanes.values()].sort((a, b) => a.at - b.at);
}

/** The specialist's name, from its session's start (else the end of its session id). */
export function specialistName(log: SpecialistLog): string {
  const first = log.events[0];
  return (first?.type === "session_start" ? first.task.parent?.specialist : undefined) ?? log.session.split(".").at(-1) ?? log.session;
}

/** What asked for the specialist, from the key in its session id (runtime/specialists/run.ts). */
function partOf(task: string, session: string, name: string): string {
  const key = session.startsWith(`${task}.`) && session.endsWith(`.${name}`) ? session.slice(task.length + 1, -(name.length + 1)) : "";
  if (key === "plan") return "plan";
  const round = /^review-(\d+)$/.exec(key);
  return round ? `review round ${round[1]}` : "consult";
}
