import { ALICE, TOKEN } from "./telegram-harness.ts";
import { startBotApi, type BotApi } from "./bot-api.ts";
import { startMachines, type Machine } from "./cluster.ts";

/** The short Telegram lease (NIGHTSHIFT_TELEGRAM_LEASE_MS, for tests only) of a test whose subject is a takeover. */
export const LEASE_MS = 3000;
const config = `telegram:\n  allowed_users: [${ALICE.id}]\n  poll_timeout: 2s\n  watchdog: 10s\n`;

/**
 * Machines on one fresh database (test/support/cluster.ts), each with the same bot token, against
 * one Bot API stand-in (which, like Telegram, answers an older getUpdates with 409 when a newer one
 * arrives) and one Messages API stand-in. `cleanup` stops them all. `leaseMs`: the Telegram lease,
 * by default the product's 15 s, so a loaded machine's late renewal does not move the bot in the
 * middle of a test about something else.
 */
export async function startTelegramMachines(names: string[], options: { env?: NodeJS.ProcessEnv; leaseMs?: number } = {}) {
  const cluster = await startMachines(names, { config, ...(options.env ? { env: options.env } : {}) });
  const telegram = await startBotApi({ token: TOKEN, botUsername: "night_bot" });
  for (const machine of cluster.machines) Object.assign(machine.env, { TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: telegram.url, NIGHTSHIFT_TELEGRAM_LEASE_MS: String(options.leaseMs ?? 15_000) });
  return {
    ...cluster,
    telegram,
    async cleanup() {
      await cluster.cleanup();
      await telegram.close();
    },
  };
}

/** How many terms `machine` began as the bot's machine. */
export const runsBot = (machine: Machine) => (machine.daemon?.output() ?? "").split(`this machine (${machine.name}) holds the Telegram lease and runs the bot`).length - 1;
/** The result messages in Alice's chat: the model's answer, once per task. */
export const answers = (telegram: BotApi, answer = "the answer") => telegram.messages(ALICE.id).filter((message) => message.text?.includes(answer));
export const taskIds = (telegram: BotApi) => answers(telegram).map((message) => /\b(\d{8}-\d{6}-[a-z0-9]+)\b/.exec(message.text!)?.[1] ?? message.text!);
