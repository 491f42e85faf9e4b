/**
 * `nightshift changes ID`, `nightshift apply ID`, `nightshift discard ID`: what a staged task
 * changed, with the diff; putting it into the folder; throwing it away. Apply and discard take the
 * task's session lock, so they never run while the task does.
 */

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { lockSession } from "../runtime/session-lock.ts";
import { planApply, readPlan, runApply, type ApplyPlan } from "../runtime/stage/apply.ts";
import { discardStage, mountStage, readStage, stageDir, summarizeStage } from "../runtime/stage/overlay.ts";
import { UsageError } from "./usage.ts";

export interface ChangesResult {
  text: string;
  code: number;
}

function lockTask(home: string, id: string, doing: string): () => void {
  mkdirSync(join(home, "sessions"), { recursive: true });
  return lockSession(join(home, "sessions", `${id}.jsonl`), process.pid, `task ${id}`, `wait until it finishes (or cancel it), then ${doing}`);
}

function staged(home: string, id: string | undefined, command: string) {
  if (!id) throw new UsageError(`nightshift ${command} needs the task's id (nightshift status lists them)`);
  const info = readStage(home, id);
  if (!info) throw new UsageError(`task ${id} has no staged copy (it worked in its folder directly, or its changes were applied or discarded)`);
  return info;
}

export async function changesCommand(home: string, id: string | undefined): Promise<ChangesResult> {
  const info = staged(home, id, "changes");
  const mount = await mountStage(home, info.id);
  try {
    const { changes, diff } = summarizeStage(home, mount);
    if (changes.length === 0) return { text: `Task ${info.id} changed nothing in ${info.original}.`, code: 0 };
    return { text: [`Task ${info.id} changed ${changes.length} file${changes.length === 1 ? "" : "s"} in its staged copy of ${info.original}:`, ...changes, "", diff.trimEnd(), "", `Apply: nightshift apply ${info.id}    Discard: nightshift discard ${info.id}`].join("\n"), code: 0 };
  } finally {
    await mount.close();
  }
}

/** Applies, or finishes an apply a kill interrupted; the copy is dropped once nothing of it is left to apply. */
export async function applyCommand(home: string, id: string | undefined): Promise<ChangesResult> {
  const info = staged(home, id, "apply");
  const unlock = lockTask(home, info.id, "apply");
  try {
    let plan: ApplyPlan | undefined = readPlan(home, info.id);
    const resumed = plan !== undefined && plan.done < plan.steps.length;
    if (!plan || !resumed) {
      const mount = await mountStage(home, info.id);
      try {
        plan = planApply(home, mount);
      } finally {
        await mount.close();
      }
    }
    plan = runApply(home, info.id);
    const lines = [`${resumed ? "Finished an apply that was interrupted: " : ""}applied ${plan.steps.length} change${plan.steps.length === 1 ? "" : "s"} to ${info.original}.`];
    if (plan.merged.length) lines.push(`Merged with your own edits: ${plan.merged.join(", ")}.`);
    if (plan.conflicts.length) {
      lines.push("Not applied (your folder keeps its version):", ...plan.conflicts.map((conflict) => `  ${conflict.path}: ${conflict.reason}`));
      lines.push(`The task's versions stay in ${join(stageDir(home, info.id), "upper")}; take what you want by hand, then: nightshift discard ${info.id}`);
      return { text: lines.join("\n"), code: 1 };
    }
    discardStage(home, info.id);
    return { text: lines.join("\n"), code: 0 };
  } finally {
    unlock();
  }
}

export function discardCommand(home: string, id: string | undefined): ChangesResult {
  const info = staged(home, id, "discard");
  const plan = readPlan(home, info.id);
  if (plan && plan.done > 0 && plan.done < plan.steps.length) {
    return { text: `An apply of task ${info.id} was interrupted after ${plan.done} of ${plan.steps.length} changes; finish it first: nightshift apply ${info.id}`, code: 1 };
  }
  const unlock = lockTask(home, info.id, "discard");
  try {
    discardStage(home, info.id);
  } finally {
    unlock();
  }
  return { text: `Discarded task ${info.id}'s staged changes; ${info.original} was never touched.`, code: 0 };
}
