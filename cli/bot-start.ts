import { join } from "node:path";
import type { BotCluster, TelegramBot } from "../bot/bot.ts";
import type { SpendSummary } from "../bot/spend.ts";
import type { ApprovalStore, Clock, LoadedConfig, Runtime, SessionEvent } from "../runtime/index.ts";
import type { TraceLogger } from "../runtime/trace.ts";
import type { Daemon } from "../tasks/daemon.ts";
import { taskFromPrompt, toTaskSpec } from "../tasks/index.ts";
import type { SharedPins } from "../runtime/mcp/pins.ts";
import { approveReview, type SharedReviews } from "../runtime/mcp/reviews.ts";
import { readStage } from "../runtime/stage/overlay.ts";
import { loginLink } from "./dashboard.ts";
import type { MemoryService } from "./memory-service.ts";
import type { SharedSessions } from "./shared-sessions.ts";

/**
 * The daemon's Telegram bot, made when there is a token: what it reads of and asks of the daemon.
 * grammy and the bot are loaded here, only then (a fifth of the start-up). With several machines
 * the bot is made again each time this machine takes the Telegram lease (`botCluster`), and follows
 * the tasks of other machines through the store's copy of their logs.
 */
export async function botMaker(options: {
  token: string;
  loaded: LoadedConfig;
  clock: Clock;
  trace: TraceLogger;
  runtime: Runtime;
  daemon: Daemon;
  approvals: ApprovalStore;
  memoryService: MemoryService;
  readEvents(id: string): Promise<SessionEvent[]>;
  newId(): string;
  sessions?: SharedSessions;
  /** /budget's numbers, with several machines (cli/shared-spend.ts). */
  spend?: () => Promise<SpendSummary>;
  /** Several machines: an approval of MCP tools on Telegram counts on every machine. */
  sharedPins?: SharedPins;
  /** Several machines: tool reviews found on machines without the bot, which Approve here pins. */
  sharedReviews?: SharedReviews;
}): Promise<(botCluster?: BotCluster) => TelegramBot> {
  const { token, loaded, clock, trace, runtime, daemon, approvals, memoryService, readEvents, newId, sessions, spend, sharedPins, sharedReviews } = options;
  const { home, config } = loaded;
  const { createTelegramBot, saveFiles } = await import("../bot/bot.ts");
  return (botCluster) =>
    createTelegramBot({
      token,
      ...(loaded.env.TELEGRAM_API_ROOT ? { apiRoot: loaded.env.TELEGRAM_API_ROOT.replace(/\/+$/, "") } : {}),
      dir: join(home, "state", "telegram"),
      settings: config.telegram,
      limits: { dailyUsd: config.budget.daily_usd, perTaskUsd: config.budget.max_usd },
      clock,
      // With several machines, the bot follows a task that runs on another machine from the store's copy of its log too.
      // Only tasks sent from Telegram: their status messages are the bot's to edit; every other task is told by the machine that runs it.
      daemon: sessions ? { ...daemon, watch: (listener) => sessions.watchEverywhere(listener, (task) => task.source?.startsWith("telegram:") ?? false) } : daemon,
      approvals,
      sessionsDir: runtime.sessionsDir,
      ...(spend ? { spend } : {}),
      trace,
      async submit({ prompt, source, files }) {
        const id = newId();
        const spec = toTaskSpec(taskFromPrompt(prompt), { loaded, id, fileName: "(Telegram message)", source });
        if (files.length) saveFiles(spec.workdir, files);
        return daemon.submit(id, spec, { origin: "telegram" });
      },
      attach: (task, files) => saveFiles(task.spec.workdir, files),
      // A review this machine does not hold may have been found on another one: read back from the store.
      approveTools: (server, id) => approveReview(home, server, id, new Date(clock.now()), sharedPins, sharedReviews),
      stagedAction: async (id, action, press) => {
        // Several machines: a copy not here is on the machine that ran the task, which is asked to do it.
        if (botCluster && !readStage(home, id)) {
          const routed = await botCluster.stagedElsewhere(id, { action, ...press });
          if (routed) return routed;
        }
        const { applyCommand, discardCommand } = await import("./changes.ts");
        const result = action === "apply" ? await applyCommand(home, id) : discardCommand(home, id);
        return { ok: result.code === 0, message: result.text };
      },
      memory: { show: async () => memoryService.memoryText(), undo: () => memoryService.undo() },
      digest: () => memoryService.digest(),
      readEvents,
      dashboardLink: () => loginLink({ home, clock, port: config.dashboard.port, ...(config.dashboard.public_url ? { publicUrl: config.dashboard.public_url } : {}) }),
      ...(config.dashboard.public_url ? { dashboardUrl: config.dashboard.public_url } : {}),
      ...(botCluster ? { cluster: botCluster } : {}),
    });
}
