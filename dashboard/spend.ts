import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { readSessionLogFrom, sessionLogs } from "../runtime/index.ts";

/** One priced model call or checkpoint, dated, and the task it counts for. */
export interface Charge {
  task: string;
  at: number;
  usd: number;
}

interface FileCharges {
  /** Bytes of the log read so far (it is append-only); its charges up to there. */
  offset: number;
  charges: Charge[];
}

/**
 * Charges dated at or after a time, counted as the daily budget and /budget count them (model
 * responses and checkpoints; a specialist's spending counts for its task). Logs last written
 * before that time are not opened. Each log's charges are kept from one call to the next, with the
 * byte it was read to: a log that grew is read from there, one that did not is not read at all, so
 * the Now page (refetched while tasks run) and the Cost page cost what was written since, not the
 * month's history. A damaged log counts as nothing.
 */
export function chargeReader(sessionsDir: string): (since: number) => Promise<Charge[]> {
  const known = new Map<string, FileCharges>();
  return async (since) => {
    const charges: Charge[] = [];
    for (const path of sessionLogs(sessionsDir)) {
      try {
        const { mtimeMs, size } = await stat(path);
        if (mtimeMs < since) continue;
        let entry = known.get(path);
        // Smaller than what was read: a torn tail was cut off; read it again whole.
        if (!entry || size < entry.offset) known.set(path, (entry = { offset: 0, charges: [] }));
        if (size > entry.offset) {
          const task = basename(path, ".jsonl").split(".")[0]!;
          const read = await readSessionLogFrom(path, entry.offset);
          for (const event of read.events) {
            if (event.type === "model_response" || event.type === "checkpoint") entry.charges.push({ task, at: event.at, usd: event.cost_usd });
          }
          entry.offset = read.offset;
        }
        for (const charge of entry.charges) if (charge.at >= since) charges.push(charge);
      } catch {
        known.delete(path);
        continue;
      }
    }
    return charges;
  };
}
