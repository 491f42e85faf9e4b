import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { readSessionLogFrom, sessionLogs } from "../runtime/index.ts";

/** One priced model call or checkpoint, dated, and the task it counts for. */
export interface Charge {
  task: string;
  at: number;
  usd: number;
}

/** Charges dated at or after `since`; `cached()` counts the logs whose charges are kept between calls. */
export type ChargeReader = ((since: number) => Promise<Charge[]>) & { cached(): number };

/**
 * How far before a call's `since` a log's charges are still kept: the pages ask from today (Now)
 * and from up to 31 days back (Cost: the last 30 days and the month), so this covers both.
 */
const KEEP_MS = 32 * 86_400_000;

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
 * month's history. A log last written before any page can ask for it (or gone) is forgotten, so
 * what is kept does not grow with the history. A damaged log counts as nothing.
 */
export function chargeReader(sessionsDir: string): ChargeReader {
  const known = new Map<string, FileCharges>();
  const read = async (since: number) => {
    const charges: Charge[] = [];
    const logs = sessionLogs(sessionsDir);
    const listed = new Set(logs);
    for (const path of known.keys()) if (!listed.has(path)) known.delete(path);
    for (const path of logs) {
      try {
        const { mtimeMs, size } = await stat(path);
        if (mtimeMs < since - KEEP_MS) known.delete(path);
        if (mtimeMs < since) continue;
        let entry = known.get(path);
        // Smaller than what was read: a torn tail was cut off; read it again whole.
        if (!entry || size < entry.offset) known.set(path, (entry = { offset: 0, charges: [] }));
        if (size > entry.offset) {
          const task = basename(path, ".jsonl").split(".")[0]!;
          const grown = await readSessionLogFrom(path, entry.offset);
          for (const event of grown.events) {
            if (event.type === "model_response" || event.type === "checkpoint") entry.charges.push({ task, at: event.at, usd: event.cost_usd });
          }
          entry.offset = grown.offset;
        }
        for (const charge of entry.charges) if (charge.at >= since) charges.push(charge);
      } catch {
        known.delete(path);
        continue;
      }
    }
    return charges;
  };
  return Object.assign(read, { cached: () => known.size });
}
