import { GrammyError, type Bot } from "grammy";
import type { Update } from "grammy/types";
import type { Clock, Config } from "../runtime/index.ts";
import { BOT_COMMANDS } from "./reports.ts";

/**
 * The bot's long polling, driven by us rather than `bot.start()`: the offset must move only once
 * an update is handled (on one machine, saved after it; with several, taken in the shared store
 * before it, fenced by the Telegram lease), and a watchdog judged by completed polls restarts a
 * poll that stopped completing. It also knows whether Telegram answers, which decides whether a
 * machine keeps the Telegram lease (cli/telegram-lease.ts).
 */

/**
 * The bot on one of several machines (cli/telegram-lease.ts over runtime/store/pg-telegram.ts):
 * where the updates start, and each update taken in the shared store before it is handled.
 */
export interface PollingLease {
  nextUpdate(): Promise<number>;
  /** "mine": handle it; "taken": an earlier holder did; "lost": the lease is gone, stop polling. */
  take(id: number): Promise<"mine" | "taken" | "lost">;
  /** False once the lease may have lapsed by this machine's clock (it was stopped, or cut off): no poll then. */
  holding(): boolean;
  /** Polling stopped because the lease is gone. Must not throw. */
  lost(): void;
}

export interface PollingOptions {
  bot: Bot;
  clock: Clock;
  settings: Pick<Config["telegram"], "poll_timeout" | "watchdog">;
  /** Several machines; without it, `offset` says where the updates start. */
  lease?: PollingLease;
  /** One machine: the update to ask for first, and where the next one is saved after each update is handled. */
  offset: { first: number; handled(next: number): void };
  /** Handles one update. Must not throw. */
  handle(update: Update): Promise<void>;
  log(level: "info" | "warn" | "error", message: string): void;
  /** An error as a line, without the token. */
  describe(error: unknown): string;
}

export interface Polling {
  /** Starts polling in the background; never throws for an unreachable Telegram. */
  start(): void;
  stop(): Promise<void>;
  /** Resolves after the next completed poll (tests). */
  polled(): Promise<void>;
  /**
   * Since when the requests to Telegram have failed (or the watchdog found no poll completing), by
   * the clock: the first failure after the last request that was answered; undefined while it answers.
   * Time this process was stopped (SIGSTOP, a closed lid) does not count: only failures seen do.
   */
  unreachableSince(): number | undefined;
}

export function createPolling(options: PollingOptions): Polling {
  const { bot, clock, settings, lease, log, describe } = options;
  let stopping = false;
  let poll: AbortController | undefined;
  let loop: Promise<void> | undefined;
  let lastCompleted = clock.now();
  /** When the requests to Telegram began to fail (or the watchdog cut a poll), since the last that answered: see unreachableSince. */
  let failingSince: number | undefined;
  const failed = () => void (failingSince ??= clock.now());
  let polledWaiters: Array<() => void> = [];
  let cancelWatchdog = () => {};
  let cancelPause = () => {};
  /** A back-off that stop() cuts short (a timer, so a fake clock holds it until time moves). */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const cancel = clock.setTimer(resolve, ms);
      cancelPause = () => {
        cancel();
        resolve();
      };
    });

  const watchdog = () => {
    cancelWatchdog = clock.setTimer(() => {
      if (stopping) return;
      if (poll && clock.now() - lastCompleted > settings.watchdog) {
        log("warn", `no getUpdates has completed for ${Math.round((clock.now() - lastCompleted) / 1000)}s; restarting polling`);
        poll.abort(new Error("watchdog"));
      }
      watchdog();
    }, Math.max(1000, Math.floor(settings.watchdog / 3)));
  };

  /** The update to ask for next: the shared store's with several machines, else the bot's file's. */
  let offset = options.offset.first;
  const handle = async (update: Update): Promise<"handled" | "lost"> => {
    if (lease) {
      // Taken before it is handled: a machine that lost the lease meanwhile handles nothing more.
      const taken = await lease.take(update.update_id);
      if (taken === "lost") return "lost";
      offset = update.update_id + 1;
      if (taken === "taken") return "handled";
    }
    await options.handle(update);
    if (!lease) {
      options.offset.handled(update.update_id + 1);
      offset = update.update_id + 1;
    }
    return "handled";
  };

  const run = async () => {
    let delay = 1000;
    const wait = async (what: string, error: unknown) => {
      failed();
      log("warn", `${what}: ${describe(error)}; trying again in ${Math.round(delay / 1000)}s`);
      await pause(delay);
      delay = Math.min(delay * 2, 60_000);
    };
    for (let ready = false; !stopping && !ready; ) {
      try {
        if (!bot.isInited()) await bot.init();
        await bot.api.deleteWebhook();
        await bot.api.setMyCommands(BOT_COMMANDS);
        ready = true;
        failingSince = undefined;
        lastCompleted = clock.now();
        log("info", `polling Telegram as @${bot.botInfo.username}`);
      } catch (error) {
        if (!stopping) await wait("cannot reach Telegram", error);
      }
    }
    delay = 1000;
    for (let known = !lease; !stopping && !known; ) {
      try {
        offset = await lease!.nextUpdate();
        known = true;
      } catch (error) {
        if (!stopping) await wait("cannot read where the updates start from the shared store", error);
      }
    }
    while (!stopping) {
      if (lease && !lease.holding()) {
        log("warn", "this machine may no longer hold the Telegram lease (it was stopped, or the shared store did not answer): not polling");
        lease.lost();
        break;
      }
      poll = new AbortController();
      try {
        const updates = await bot.api.getUpdates({ offset, timeout: Math.floor(settings.poll_timeout / 1000), allowed_updates: ["message", "callback_query"] }, poll.signal as Parameters<typeof bot.api.getUpdates>[1]);
        lastCompleted = clock.now();
        failingSince = undefined;
        delay = 1000;
        let lost = false;
        for (const update of updates) if ((lost = (await handle(update)) === "lost")) break;
        if (lost) {
          log("warn", "another machine holds the Telegram lease now: this one stops polling");
          lease!.lost();
          break;
        }
        polledWaiters.splice(0).forEach((resolve) => resolve());
      } catch (error) {
        if (stopping) break;
        if (poll.signal.aborted) {
          failed(); // the watchdog: poll again at once
          continue;
        }
        if (error instanceof GrammyError && error.error_code === 409) await wait("another process is polling this bot (or a webhook is set)", error);
        else if (error instanceof GrammyError && error.error_code === 401) await wait("Telegram refused TELEGRAM_BOT_TOKEN (401): check the token from @BotFather", error);
        else await wait("polling Telegram failed", error);
      }
    }
  };

  return {
    start() {
      lastCompleted = clock.now();
      watchdog();
      loop = run().catch((error: unknown) => log("error", `polling stopped: ${describe(error)}`));
    },
    async stop() {
      stopping = true;
      cancelWatchdog();
      cancelPause();
      poll?.abort(new Error("stopping"));
      await loop;
    },
    polled: () => new Promise((resolve) => polledWaiters.push(resolve)),
    unreachableSince: () => failingSince,
  };
}
