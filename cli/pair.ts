import { join } from "node:path";
import { createPairingStore, type PairedUser, type PairingCodes, type PairingStatus, type PairingStore, type TelegramUser } from "../bot/pairing.ts";
import type { Clock } from "../runtime/clock.ts";
import type { LoadedConfig } from "../runtime/config.ts";
import { connectDaemon } from "../tasks/control-client.ts";
import { connectForCommand } from "./store-connect.ts";
import { UsageError } from "./usage.ts";

export interface PairArgs {
  list?: boolean;
  /** A Telegram user id to unpair. */
  remove?: string;
  /** Wait for the code to be used, expire or be locked (default); false returns once it is printed. */
  wait: boolean;
}

export interface PairIO {
  home: string;
  /** The environment with NIGHTSHIFT_HOME/.env read in (the bot token). */
  env: Record<string, string | undefined>;
  clock: Clock;
  stdout: NodeJS.WritableStream;
  /** Aborting stops the wait (Ctrl-C); the code stays valid. */
  signal: AbortSignal;
  /** `telegram.allowed_users` from config: also served, listed by --list. */
  allowedUsers: readonly number[];
  /** How often the wait re-reads the code's status. */
  pollMs?: number;
  /** Several machines on one PostgreSQL: unpairs on every machine (the shared paired users). */
  unpairEverywhere?(id: number): Promise<void>;
  /** Several machines on one PostgreSQL: the code is kept in the store, where the bot's machine finds it (`openSharedPairing`). */
  shared?: SharedPairing;
}

export interface SharedPairing {
  codes: PairingCodes;
  /** The machine running the bot (holding the Telegram lease), if any. */
  botMachine(): Promise<string | undefined>;
}

/**
 * Several machines on one PostgreSQL: the code is kept in the store, so the machine running the bot
 * redeems a code made on any machine. Undefined without a store; a store that cannot be reached is
 * a UsageError naming the setting (never the URL, which may hold a password). `close` ends the connection.
 */
export async function openSharedPairing(loaded: LoadedConfig): Promise<(SharedPairing & { close(): Promise<void> }) | undefined> {
  const store = await connectForCommand(loaded, "make a pairing code", "With several machines the code is kept there, where the machine running the bot finds it");
  if (!store) return undefined;
  const [{ sharedPairingCodes }, { sharedTelegram }] = await Promise.all([import("../runtime/store/pg-pairing.ts"), import("../runtime/store/pg-telegram.ts")]);
  const telegram = sharedTelegram(store.sql, store.machine);
  return { codes: sharedPairingCodes(store.sql), botMachine: () => telegram.holder(), close: store.close };
}

/**
 * `nightshift pair [--no-wait] | --list | --remove ID`. Returns the exit code: 0 paired (or printed,
 * listed, removed, stopped waiting), 1 the code expired, was burned or replaced.
 */
export async function pairCommand(args: PairArgs, io: PairIO): Promise<number> {
  const { home, env, clock } = io;
  const say = (text: string) => void io.stdout.write(text + "\n");
  const finish = (text: string, code: number) => (say(text), code);
  const store = createPairingStore(join(home, "state", "telegram"), clock, io.shared?.codes);
  if (args.list && args.remove !== undefined) throw new UsageError("use either --list or --remove ID");
  if (args.list) return finish(listing(store.users(), io.allowedUsers), 0);
  if (args.remove !== undefined && io.unpairEverywhere) {
    const id = userId(args.remove);
    await io.unpairEverywhere(id);
    store.remove(id);
    return finish(`Unpaired ${id} on every machine.${stillAllowed(id, io.allowedUsers)}`, 0);
  }
  if (args.remove !== undefined) return finish(remove(store, args.remove, io.allowedUsers), 0);

  // With a shared store the bot may run on another machine: no token is needed here, only for the bot's name in a link.
  const token = env.TELEGRAM_BOT_TOKEN?.trim();
  if (!token && !io.shared) throw new UsageError(noTokenAdvice(home));
  const apiRoot = (env.TELEGRAM_API_ROOT || "https://api.telegram.org").replace(/\/+$/, "");
  const [botName, daemon, botMachine] = await Promise.all([token ? fetchBotName(apiRoot, token) : undefined, io.shared ? undefined : connectDaemon(home), io.shared?.botMachine().catch(() => undefined)]);

  const { code, expiresAt } = await store.newCode();
  const until = clockTime(expiresAt);
  say(`Pairing code: ${code}\n`);
  if (botName) {
    say(`Send /start ${code} to @${botName} on Telegram (https://t.me/${botName}),`);
    say(`or open https://t.me/${botName}?start=${code} and press Start.`);
  } else {
    say(`Send /start ${code} to your bot on Telegram.`);
  }
  say(`The code works once and expires in 10 minutes, at ${until}.`);
  if (io.shared) say(botMachine ? `Machine ${botMachine} runs the bot and will hear it.` : "No machine runs the bot right now: `nightshift start` must be running on one (with TELEGRAM_BOT_TOKEN) for the bot to hear the code.");
  else if (!daemon) say("No daemon is running: `nightshift start` must be running for the bot to hear the code.");
  if (!args.wait) return 0;

  say("Waiting for it… (Ctrl-C stops waiting)");
  let reported = 0;
  let away = false;
  for (;;) {
    let status: PairingStatus | undefined;
    try {
      status = await store.status();
      if (away) say("The shared store answers again.");
      away = false;
    } catch (error) {
      // Several machines: the store holding the code does not answer for now; the code is still there.
      if (!away) say(`The shared store (PostgreSQL) does not answer (${(error as Error).message}); still waiting…`);
      away = true;
    }
    if (status) {
      for (const attempt of status.wrongAttempts.slice(reported)) say(`someone (${name(attempt.user)}, id ${attempt.user.id}) tried a wrong code`);
      reported = status.wrongAttempts.length;
      const end = outcome(status, expiresAt, io.shared !== undefined);
      if (end) return finish(...end);
    }
    try {
      await clock.sleep(io.pollMs ?? 500, io.signal);
    } catch {
      return finish(`\nStopped waiting; the code stays valid until ${until}.`, 0);
    }
  }
}

/** What `nightshift pair` says and exits with once the code it made is used, gone or dead; undefined while it waits. */
function outcome(status: PairingStatus, expiresAt: number, shared: boolean): [string, number] | undefined {
  if (status.state === "none") return [`The code is gone (${shared ? "its record in the shared store was removed or damaged" : "pairing.json was removed or damaged"}); run nightshift pair for a new one.`, 1];
  if (status.expiresAt !== expiresAt) return ["A newer `nightshift pair` replaced this code; it no longer works.", 1];
  if (status.state === "paired") return [`Paired with ${name(status.pairedUser!)} (id ${status.pairedUser!.id}). Send the bot a task.`, 0];
  if (status.state === "expired") return ["The code expired; run nightshift pair for a new one.", 1];
  if (status.state === "locked") return ["Too many wrong codes: this one no longer works; run nightshift pair for a new one.", 1];
  return undefined;
}

function listing(users: PairedUser[], allowed: readonly number[]): string {
  const lines = users.length
    ? ["Paired Telegram users:", ...users.map((user) => `  ${user.id}  ${name(user)}  paired ${dateTime(user.paired_at)}`)]
    : ["No paired Telegram users; `nightshift pair` pairs one."];
  if (allowed.length) lines.push("Allowed by telegram.allowed_users in config.yaml:", ...allowed.map((id) => `  id ${id}`));
  return lines.join("\n");
}

function userId(raw: string): number {
  const id = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(id)) throw new UsageError(`--remove takes a numeric Telegram user id, not "${raw}"; nightshift pair --list shows them`);
  return id;
}

const stillAllowed = (id: number, allowed: readonly number[]) => (allowed.includes(id) ? ` It is still allowed by telegram.allowed_users in config.yaml; remove it there too.` : "");

function remove(store: PairingStore, raw: string, allowed: readonly number[]): string {
  const id = userId(raw);
  if (!store.remove(id)) throw new UsageError(`${id} is not a paired user; nightshift pair --list shows them`);
  return `Unpaired ${id}.${stillAllowed(id, allowed)}`;
}

function noTokenAdvice(home: string): string {
  return [
    "TELEGRAM_BOT_TOKEN is not set, so there is no bot to pair with. To make one:",
    "  1. In Telegram, talk to @BotFather: send /newbot and pick a name; it answers with a token.",
    `  2. Put TELEGRAM_BOT_TOKEN=<that token> in ${join(home, ".env")}`,
    "  3. Restart the daemon (`nightshift start`) so it picks the token up.",
    "  4. Run `nightshift pair` again.",
  ].join("\n");
}

/** The bot's @username from getMe, or undefined on any failure: the name is a nicety, never a reason to fail. */
async function fetchBotName(apiRoot: string, token: string): Promise<string | undefined> {
  try {
    const response = await fetch(`${apiRoot}/bot${token}/getMe`, { signal: AbortSignal.timeout(2000) });
    const body = (await response.json()) as { result?: { username?: unknown } };
    const name = body.result?.username;
    return typeof name === "string" && /^\w+$/.test(name) ? name : undefined;
  } catch {
    return undefined; // the message may contain the URL, which contains the token: never print it
  }
}

/**
 * @username, else the first name. Both are chosen by whoever sent the code, so control characters
 * (terminal escapes) are replaced and the length is capped; the id is what counts.
 */
function name(user: TelegramUser): string {
  const text = user.username ? `@${user.username}` : (user.first_name ?? "no name");
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?").slice(0, 64);
}

const pad = (n: number) => String(n).padStart(2, "0");

/** HH:MM in local time. */
function clockTime(at: number): string {
  const date = new Date(at);
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function dateTime(at: number): string {
  const date = new Date(at);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${clockTime(at)}`;
}
