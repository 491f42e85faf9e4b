import { join } from "node:path";
import { createApprovalStore, systemClock, type LoadedConfig } from "../runtime/index.ts";
import { UsageError } from "./usage.ts";

/** `nightshift approve [ID] [--task]` and `nightshift deny ID [--reason TEXT]`. Without an id, lists what waits. */
export function answerCommand(kind: "approve" | "deny", id: string | undefined, options: { task?: boolean; reason?: string }, loaded: LoadedConfig): { text: string; code: number } {
  const store = createApprovalStore(join(loaded.home, "state", "approvals"), { clock: systemClock, expireMs: loaded.config.approvals.expire });
  if (!id) {
    const pending = store.pending();
    if (pending.length === 0) return { text: "No approvals are waiting.", code: 0 };
    const lines = pending.map((record) => {
      const left = Math.max(0, Math.round((record.expires_at - Date.now()) / 60_000));
      return `${record.id}  ${record.label ? `[${record.label}] ` : ""}${record.summary}\n        why: ${record.reason}; session ${record.session}; ${left} min left`;
    });
    return { text: `${lines.join("\n")}\n\nAnswer with: nightshift approve ID [--task] | nightshift deny ID [--reason TEXT]`, code: 0 };
  }
  if (kind === "approve" && options.reason) throw new UsageError("--reason goes with deny");
  if (kind === "deny" && options.task) throw new UsageError("--task goes with approve (allow for the rest of the task)");
  const decision = kind === "deny" ? "deny" : options.task ? "task" : "once";
  const result = store.answer(id, { decision, by: "cli", ...(options.reason ? { reason: options.reason } : {}) });
  if (!result.ok) return { text: result.message, code: 1 };
  const what = decision === "once" ? "allowed once" : decision === "task" ? "allowed for the rest of the task" : "denied";
  return { text: `${result.record.summary}: ${what}.`, code: 0 };
}
