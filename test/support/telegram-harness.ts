import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { startDaemon, type RunningDaemon } from "../../cli/start.ts";
import { systemClock } from "../../runtime/clock.ts";
import { loadConfig } from "../../runtime/config.ts";
import { startBotApi, type BotApi, type RecordedCall } from "./bot-api.ts";
import { FakeClock } from "./fake-clock.ts";
import { tempDir } from "./home.ts";
import { startMessagesApi, type MessagesApi } from "./messages-api.ts";

export const TOKEN = "424242:TEST-telegram-token_xyz";
export const ALICE = { id: 4242, username: "alice", first_name: "Alice" };
export const MALLORY = { id: 666, username: "mallory", first_name: "Mallory" };

export interface TelegramHarness {
  telegram: BotApi;
  model: MessagesApi;
  /** The fake clock, or undefined with `realClock` (benchmarks). */
  clock: FakeClock;
  home: string;
  daemon: RunningDaemon;
  /** What the daemon printed. */
  output(): string;
  /** Stops the daemon gracefully and starts a new one on the same home, Telegram and clock. */
  restart(): Promise<void>;
  /**
   * Waits for `condition`, moving the fake clock `stepMs` at a time so throttles and back-offs
   * pass, with a real-time bound (HTTP and the daemon's work are real).
   */
  until(condition: () => boolean, what: string, options?: { stepMs?: number; ms?: number }): Promise<void>;
  /** The bot's calls of `method` to `chat`. */
  sent(method: string, chat?: number): RecordedCall[];
  close(): Promise<void>;
}

/**
 * The real daemon (`nightshift start`'s startDaemon, in this process) with its real grammy bot
 * talking HTTP to the Bot API stand-in and its sessions to the Messages API stand-in; time is a
 * fake clock the test moves.
 */
export async function startTelegramHarness(options: { config?: string; env?: Record<string, string>; realClock?: boolean; /** NIGHTSHIFT_HOME somewhere else (a small disk); the caller removes it. */ home?: string } = {}): Promise<TelegramHarness> {
  const clock = new FakeClock();
  const daemonClock = options.realClock ? systemClock : clock;
  const telegram = await startBotApi({ token: TOKEN, botUsername: "night_bot", now: daemonClock.now });
  const model = await startMessagesApi();
  const dir = tempDir("nightshift-telegram-", "/var/tmp");
  const home = options.home ?? join(dir.path, "home");
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, "config.yaml"), options.config ?? `telegram:\n  allowed_users: [${ALICE.id}]\n  poll_timeout: 2s\n`);
  let printed = "";
  const stderr = new Writable({
    write(chunk, _encoding, done) {
      printed += chunk;
      done();
    },
  });
  const env = { ...process.env, NIGHTSHIFT_HOME: home, ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: "sk-ant-telegram-test", TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: telegram.url, ...options.env };
  const boot = () => startDaemon({ loaded: loadConfig(env, home), clock: daemonClock, stderr });
  const harness: TelegramHarness = {
    telegram,
    model,
    clock,
    home,
    daemon: await boot(),
    output: () => printed,
    async restart() {
      await harness.daemon.stop();
      harness.daemon = await boot();
    },
    async until(condition, what, { stepMs = 250, ms = 10_000 } = {}) {
      const deadline = Date.now() + ms;
      while (!condition()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (!options.realClock) clock.advance(stepMs);
      }
    },
    sent: (method, chat) => telegram.callsOf(method).filter((call) => chat === undefined || Number(call.params.chat_id) === chat),
    async close() {
      await harness.daemon.stop();
      await telegram.close();
      await model.close();
      dir.cleanup();
    },
  };
  return harness;
}

// What the Telegram tests script and read, in one place.

/** A model reply with only text. */
export const text = (reply: string) => ({ content: [{ type: "text" as const, text: reply }] });
/** A model reply that writes "x" to `path` (outside the workdir, this asks for approval). */
export const writeTo = (path: string) => ({ content: [{ type: "tool_use" as const, name: "write_file", input: { path, content: "x" } }] });
/** The chat's messages as the user sees them now. */
export const texts = (harness: TelegramHarness, chat: number) => harness.telegram.messages(chat).map((message) => message.text ?? "");
export const approvalMessages = (harness: TelegramHarness) => harness.telegram.messages(ALICE.id).filter((message) => message.text?.includes("Approval needed"));
/** The callback data of the button labelled `label`. */
export const button = (message: { reply_markup?: { inline_keyboard: Array<Array<{ text: string; callback_data?: string }>> } }, label: string) =>
  message.reply_markup!.inline_keyboard.flat().find((candidate) => candidate.text === label)!.callback_data!;
