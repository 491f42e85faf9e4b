import { htmlToPlain } from "../bot/reports.ts";
import { journalDamageMessage, openMemory } from "../memory/index.ts";
import { join } from "node:path";
import { spendSummary } from "../bot/spend.ts";
import { createApprovalStore, createModelClient, damageMessage, requireApiKey, sharedMachine, storeSetting, storeUrl, type Clock, type LoadedConfig } from "../runtime/index.ts";
import { connectDaemon } from "../tasks/control.ts";
import { createMemoryService } from "./memory-service.ts";
import { openTasksQuietly } from "./status.ts";
import { UsageError } from "./usage.ts";

/**
 * `nightshift memory consolidate|undo|show` and `nightshift digest`. With a daemon running, it does
 * the work (it owns the journal cursor, and sends the digest on Telegram); without one, it is done
 * here, which is safe because nothing else writes.
 */
export async function memoryCommand(loaded: LoadedConfig, action: "consolidate" | "undo" | "show" | "digest", clock: Clock): Promise<string> {
  const daemon = await connectDaemon(loaded.home);
  if (daemon) return htmlToPlain(await daemon.action(action === "show" ? "memory" : action));
  // With several machines the consolidation reads every machine's journal from the store, one machine at a time: the daemon's work.
  if (action === "consolidate" && storeUrl(loaded)) {
    throw new UsageError(`this machine is one of several on a shared store (${storeSetting(loaded)}), where memory is consolidated by a running daemon, over every machine's journal, one machine at a time: start it (\`nightshift start\`) and run this again`);
  }
  const damaged: string[] = [];
  const memory = openMemory(loaded.home, clock, loaded.config.memory.cap, { machine: sharedMachine(loaded), onDamaged: (line) => damaged.push(`! ${journalDamageMessage(line)}\n`) });
  const role = loaded.roles.small;
  const approvals = createApprovalStore(join(loaded.home, "state", "approvals"), { clock, expireMs: loaded.config.approvals.expire, onDamaged: (file) => damaged.push(`! ${damageMessage(file)}\n`) });
  const small = () => createModelClient(role, requireApiKey(role), { clock, retry: loaded.config.model_retries });
  // Only the digest reads the tasks: a damaged state file must not stop `memory undo` or `show`.
  let opened: ReturnType<typeof openTasksQuietly> | undefined;
  const reader = () => (opened ??= openTasksQuietly(loaded.home));
  const tasks = { active: () => reader().active(), finishedSince: (at: number) => reader().finishedSince(at) };
  try {
    // With a shared store, the other machines' spend is read by a running daemon (cli/shared-spend.ts): here, this machine's, said so.
    const spend = storeUrl(loaded) ? async () => ({ ...(await spendSummary(join(loaded.home, "sessions"), clock.now())), thisMachineOnly: "no daemon runs here to read the shared store" }) : undefined;
    const service = createMemoryService({ loaded, clock, memory, small, tasks, approvals, ...(spend ? { spend } : {}) });
    switch (action) {
      case "consolidate": {
        const result = htmlToPlain(await service.consolidate());
        return `${damaged.join("")}${result}`;
      }
      case "undo":
        return htmlToPlain(service.undo());
      case "show":
        return htmlToPlain(await service.memoryText());
      case "digest": {
        const digest = htmlToPlain(await service.digest());
        return `${damaged.join("")}${digest}`;
      }
      default:
        throw new Error(`unknown memory action ${action satisfies never}`);
    }
  } finally {
    opened?.close();
  }
}
