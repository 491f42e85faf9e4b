import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import { asidePath } from "../runtime/aside.ts";

/**
 * What the consolidator did, in `state/memory.json` (the daemon writes it; a run without a daemon
 * too): the journal cursor it reached and its last runs, for /memory, the digest and doctor.
 */
export interface ConsolidationRun {
  at: number;
  status: "nothing-new" | "applied" | "rejected" | "failed";
  entries: number;
  /** One line per edit: "added: …", "updated k3p9: …", "retired k3p9". */
  changes: string[];
  problem?: string;
  cost_usd?: number;
  /** The last journal entry of the batch it read. */
  through?: string;
}

export interface MemoryRuns {
  cursor?: string;
  runs: ConsolidationRun[];
  /** Set when the file does not read: why. The next `record` moves it aside (never overwrites it). */
  damaged?: string;
}

const KEEP = 30;


export function openMemoryRuns(stateDir: string): { read(): MemoryRuns; record(run: ConsolidationRun, cursor?: string): void } {
  const file = join(stateDir, "memory.json");
  const read = (): MemoryRuns => {
    if (!existsSync(file)) return { runs: [] };
    try {
      const data = JSON.parse(readFileSync(file, "utf8")) as MemoryRuns | null;
      if (typeof data !== "object" || data === null || !Array.isArray(data.runs)) throw new Error("not a record of consolidation runs");
      return { ...(typeof data.cursor === "string" ? { cursor: data.cursor } : {}), runs: data.runs };
    } catch (error) {
      // The next run starts from the whole journal, which is safe (edits are validated); the file is said, and kept.
      return { runs: [], damaged: (error as Error).message };
    }
  };
  return {
    read,
    record(run, cursor) {
      const current = read();
      if (current.damaged) renameSync(file, asidePath(file, "damaged", run.at));
      const next: MemoryRuns = { ...(cursor ?? current.cursor ? { cursor: cursor ?? current.cursor } : {}), runs: [...current.runs, run].slice(-KEEP) };
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      const temp = `${file}.tmp`;
      const fd = openSync(temp, "w", 0o600);
      try {
        writeSync(fd, JSON.stringify(next, null, 2));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, file);
    },
  };
}
