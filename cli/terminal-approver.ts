import { createInterface } from "node:readline/promises";
import type { ApprovalRecord, ApprovalStore, Approver } from "../runtime/index.ts";

/**
 * Asks in the terminal `nightshift run` was started from. The answer goes to the approval store like
 * any other, so `nightshift approve` from another terminal can answer first; the prompt then closes.
 */
export function createTerminalApprover(store: ApprovalStore, input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Approver {
  const open = new Map<string, AbortController>();
  return {
    name: "terminal",
    notify(record) {
      const controller = new AbortController();
      open.set(record.id, controller);
      void prompt(record, controller.signal).finally(() => open.delete(record.id));
    },
    settled(record, answer) {
      const controller = open.get(record.id);
      if (!controller) return;
      controller.abort();
      output.write(`  (answered elsewhere: ${answer.decision} by ${answer.by})\n`);
    },
  };

  async function prompt(record: ApprovalRecord, signal: AbortSignal): Promise<void> {
    const minutes = Math.round((record.expires_at - record.asked_at) / 60_000);
    output.write(
      `\n? ${record.label ? `[${record.label}] ` : ""}Approve ${record.summary}?\n` +
        `  why: ${record.reason}\n` +
        `  ${record.tool} ${clip(JSON.stringify(record.input))}\n` +
        `  [o] allow once  [t] allow for this task  [d] deny   (id ${record.id}; denied in ${minutes} min without an answer)\n`,
    );
    const lines = createInterface({ input, output, terminal: false });
    try {
      for (;;) {
        const reply = (await lines.question("> ", { signal })).trim().toLowerCase();
        const decision = reply.startsWith("o") ? "once" : reply.startsWith("t") ? "task" : reply.startsWith("d") ? "deny" : undefined;
        if (!decision) {
          output.write("  type o, t or d\n");
          continue;
        }
        const reason = decision === "deny" ? (await lines.question("  reason for the agent (optional): ", { signal })).trim() : "";
        const result = store.answer(record.id, { decision, by: "terminal", ...(reason ? { reason } : {}) });
        if (!result.ok) output.write(`  ${result.message}\n`);
        return;
      }
    } catch {
      // Aborted: answered elsewhere, or the run ended.
    } finally {
      lines.close();
    }
  }
}

function clip(text: string | undefined): string {
  if (!text) return "";
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
