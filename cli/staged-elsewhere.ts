import { escapeHtml } from "../bot/format.ts";
import { storeUnreachable } from "../runtime/store/outage.ts";
import type { Cluster } from "../runtime/store/pg-cluster.ts";
import type { Notice } from "../runtime/store/pg-notices.ts";
import { sharedStagedActions, type StagedPress } from "../runtime/store/pg-staged.ts";
import type { TraceLogger } from "../runtime/trace.ts";
import { machineState, silence } from "../tasks/cluster-view.ts";
import { applyCommand, discardCommand } from "./changes.ts";

/**
 * Staged changes with several machines on one PostgreSQL. A staged task's copy is a folder of the
 * machine that ran it, which may not be the machine that runs the bot: its diff reaches the chat
 * from that machine's result (bot/task-notices.ts, or the delivered result of a Telegram task), and
 * Apply or Discard pressed there is asked of that machine (runtime/store/pg-staged.ts), which does
 * it and tells the chat, as a reply to the pressed message, how it went.
 */

export interface StagedOutcome {
  ok: boolean;
  message: string;
  /** Asked of the machine holding the copy: its answer comes later. */
  waiting?: boolean;
}

/** On the bot's machine: a press on a task that ran on another machine, asked of it; undefined when no other machine ran it. */
export function askStagedElsewhere(cluster: Pick<Cluster, "sql" | "machine" | "machines">): (id: string, press: StagedPress) => Promise<StagedOutcome | undefined> {
  const staged = sharedStagedActions(cluster.sql, cluster.machine);
  return async (id, press) => {
    const asked = await staged.ask(id, press);
    if (asked.outcome === "unknown") return undefined;
    const { machine } = asked;
    if (asked.outcome === "busy") return { ok: false, message: `${asked.waiting.action === "apply" ? "an apply" : "a discard"} of task ${id}'s changes, pressed by ${asked.waiting.by}, already waits for ${machine}; this press adds nothing` };
    const status = (await cluster.machines()).find((candidate) => candidate.name === machine);
    const state = status ? machineState(status) : "stopped";
    const doing = press.action === "apply" ? "applying" : "discarding";
    if (state === "alive") return { ok: true, waiting: true, message: `${doing} task ${id}'s changes on ${machine}, which holds the copy; its answer follows` };
    const why = state === "silent" ? `is silent (no heartbeat for ${silence(status!.silentMs)}: asleep or gone)` : "is stopped";
    return { ok: true, waiting: true, message: `${machine}, which holds task ${id}'s copy, ${why}: the ${press.action === "apply" ? "apply" : "discard"} waits for it and is done when it is back` };
  };
}

export interface StagedHere {
  /** Takes the presses asked of this machine and does them, one at a time, in the background (an apply must not hold the heartbeat up). */
  tick(): void;
  /** Waits for the press under way. */
  stop(): Promise<void>;
}

/** On the machine that holds the copies: Apply and Discard pressed on another machine's bot. */
export function stagedActionsHere(options: { cluster: Pick<Cluster, "sql" | "machine">; home: string; trace: TraceLogger; tell(notice: Notice): void }): StagedHere {
  const { cluster, home, trace } = options;
  const staged = sharedStagedActions(cluster.sql, cluster.machine);
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  const run = async () => {
    for (const { id, press } of await staged.forMe()) {
      // Taken first, as a follow-up is: a crash mid-apply is finished at the next start (runtime/stage/apply.ts), never applied twice.
      if (!(await staged.take(id))) continue;
      const outcome = await (async () => (press.action === "apply" ? applyCommand(home, id) : discardCommand(home, id)))().then(
        (result) => ({ ok: result.code === 0, message: result.text }),
        (error: unknown) => ({ ok: false, message: (error as Error).message }),
      );
      trace.info({ session: id, event: "staged_action", action: press.action, by: press.by, ok: outcome.ok }, `staged changes of ${id}: ${press.action} pressed by ${press.by} on another machine's bot: ${outcome.message.split("\n")[0]}`);
      options.tell({ chat: press.chat, message: { text: `${outcome.ok ? "✅" : "⚠️"} ${escapeHtml(outcome.message)} (${escapeHtml(press.by)}, on ${escapeHtml(cluster.machine)})`, reply_to: press.message } });
    }
  };
  const tick = () => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = run()
      .catch((error: unknown) => {
        // An unreachable store is said once, by the watch; anything else each time.
        if (!storeUnreachable(error)) trace.warn({ event: "staged_action_failed", error: (error as Error).message }, `could not take Apply or Discard pressed on another machine: ${(error as Error).message}`);
      })
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          tick();
        }
      });
  };
  return {
    tick,
    async stop() {
      stopped = true;
      await running;
    },
  };
}
