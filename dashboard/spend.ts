import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { readSessionLog, sessionLogs } from "../runtime/index.ts";

/** One priced model call or checkpoint, dated, and the task it counts for. */
export interface Charge {
  task: string;
  at: number;
  usd: number;
}

/**
 * Every charge dated at or after `since`, counted as the daily budget and /budget count them (model
 * responses and checkpoints; a specialist's spending counts for its task). Opens every session log
 * written since `since`: the cost of this page grows with the number of sessions in that window.
 * Logs last written before it are not opened; a damaged log counts as nothing.
 */
export async function sessionCharges(sessionsDir: string, since: number): Promise<Charge[]> {
  const charges: Charge[] = [];
  for (const path of sessionLogs(sessionsDir)) {
    try {
      if ((await stat(path)).mtimeMs < since) continue;
      const task = basename(path, ".jsonl").split(".")[0]!;
      for (const event of await readSessionLog(path)) {
        if ((event.type === "model_response" || event.type === "checkpoint") && event.at >= since) charges.push({ task, at: event.at, usd: event.cost_usd });
      }
    } catch {
      continue;
    }
  }
  return charges;
}
