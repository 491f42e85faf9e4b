import { createInterface, type Interface } from "node:readline/promises";
import type { ApprovalRecord, ApprovalStore, Approver } from "../runtime/index.ts";

/**
 * Asks in the terminal `nightshift run` was started from, one approval at a time (one keystroke
 * answers exactly the prompt on screen). The answer goes to the approval store like any other, so
 * `nightshift approve` from another terminal can answer first; the prompt then moves on.
 */
export function createTerminalApprover(store: ApprovalStore, input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Approver {
  const waiting: ApprovalRecord[] = [];
  let current: { record: ApprovalRecord; controller: AbortController } | undefined;
  let lines: Interface | undefined;

  const showNext = async (): Promise<void> => {
    if (current) return;
    const record = waiting.shift();
    if (!record) {
      lines?.close();
      lines = undefined;
      return;
    }
    if (store.answerOf(record.id)) return showNext();
    current = { record, controller: new AbortController() };
    lines ??= createInterface({ input, output, terminal: false });
    try {
      await prompt(record, lines, current.controller.signal);
    } catch {
      // Aborted: answered elsewhere.
    } finally {
      current = undefined;
      void showNext();
    }
  };

  async function prompt(record: ApprovalRecord, rl: Interface, signal: AbortSignal): Promise<void> {
    const minutes = Math.round((record.expires_at - record.asked_at) / 60_000);
    output.write(
      `\n? ${record.label ? `[${visible(record.label)}] ` : ""}Approve: ${visible(record.summary)}\n` +
        `  why: ${visible(record.reason)}\n` +
        `  ${record.tool} ${clip(JSON.stringify(record.input))}\n` +
        `  [o] allow once  [t] allow for this task  [d] deny   (id ${record.id}; denied in ${minutes} min without an answer)\n`,
    );
    for (;;) {
      const reply = (await rl.question("> ", { signal })).trim().toLowerCase();
      const decision = reply.startsWith("o") ? "once" : reply.startsWith("t") ? "task" : reply.startsWith("d") ? "deny" : undefined;
      if (!decision) {
        output.write("  type o, t or d\n");
        continue;
      }
      const reason = decision === "deny" ? (await rl.question("  reason for the agent (optional): ", { signal })).trim() : "";
      const result = store.answer(record.id, { decision, by: "terminal", ...(reason ? { reason } : {}) });
      if (!result.ok) output.write(`  ${result.message}\n`);
      return;
    }
  }

  return {
    name: "terminal",
    notify(record) {
      waiting.push(record);
      void showNext();
    },
    settled(record, answer) {
      const index = waiting.findIndex((candidate) => candidate.id === record.id);
      if (index >= 0) waiting.splice(index, 1);
      if (current?.record.id !== record.id) return;
      if (answer.by !== "terminal") output.write(`  (answered elsewhere: ${answer.decision} by ${answer.by})\n`);
      current.controller.abort();
    },
  };
}

/** What the model wrote, made safe to print: no control characters that could redraw the prompt. */
function visible(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, "�").replace(/\n/g, " ⏎ ");
}

function clip(text: string | undefined): string {
  if (!text) return "";
  return text.length > 600 ? `${text.slice(0, 300)} … ${text.slice(-300)}` : text;
}
