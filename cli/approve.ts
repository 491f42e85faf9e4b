import { join } from "node:path";
import { createApprovalStore, damageMessage, type AnswerResult, type ApprovalRecord, type ApprovalStore } from "../runtime/approvals.ts";
import { systemClock } from "../runtime/clock.ts";
import { connectDaemon, type DaemonClient } from "../tasks/control-client.ts";
import { UsageError } from "./usage.ts";

/**
 * `nightshift approve [ID] [--task]` and `nightshift deny ID [--reason TEXT]`. Without an id, lists
 * what waits. With a daemon running, the answer goes through it (one process writes state);
 * otherwise straight to the approval's answer file, which any process may create once.
 */
export async function answerCommand(kind: "approve" | "deny", id: string | undefined, options: { task?: boolean; reason?: string }, home: string): Promise<{ text: string; code: number }> {
  if (kind === "approve" && options.reason) throw new UsageError("--reason goes with deny");
  if (kind === "deny" && options.task) throw new UsageError("--task goes with approve (allow for the rest of the task)");
  const daemon = await connectDaemon(home);
  // expireMs only dates new records; this store lists and answers, it never creates one.
  const damaged: string[] = [];
  const store = createApprovalStore(join(home, "state", "approvals"), { clock: systemClock, expireMs: 0, onDamaged: (file) => damaged.push(`! ${damageMessage(file)}\n`) });
  const said = await answerWith(kind, id, options, daemon, store);
  return { ...said, text: `${damaged.join("")}${said.text}` };
}

async function answerWith(kind: "approve" | "deny", id: string | undefined, options: { task?: boolean; reason?: string }, daemon: DaemonClient | undefined, store: ApprovalStore): Promise<{ text: string; code: number }> {
  if (!id) {
    const pending: ApprovalRecord[] = daemon ? await daemon.pendingApprovals() : store.pending();
    if (pending.length === 0) return { text: "No approvals are waiting.", code: 0 };
    const lines = pending.map((record) => {
      const left = Math.max(0, Math.round((record.expires_at - Date.now()) / 60_000));
      return `${record.id}  ${record.label ? `[${record.label}] ` : ""}${record.summary}\n        why: ${record.reason}; session ${record.session}; ${left} min left`;
    });
    return { text: `${lines.join("\n")}\n\nAnswer with: nightshift approve ID [--task] | nightshift deny ID [--reason TEXT]`, code: 0 };
  }
  const decision = kind === "deny" ? "deny" : options.task ? "task" : "once";
  const result: AnswerResult = daemon ? await daemon.answer(id, decision, options.reason) : store.answer(id, { decision, by: "cli", ...(options.reason ? { reason: options.reason } : {}) });
  if (!result.ok) return { text: result.message, code: 1 };
  const what = decision === "once" ? "allowed once" : decision === "task" ? "allowed for the rest of the task" : "denied";
  return { text: `${result.record.summary}: ${what}.`, code: 0 };
}
