import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

/**
 * What the bot remembers across restarts, in `state/telegram/bot.json`, written atomically by the
 * daemon alone: the update offset (saved after an update is handled, so a restart neither loses nor
 * repeats one), which chat follows which task, which messages belong to which task (so a reply
 * continues it) and where each approval was shown (so it is edited once answered, and not shown
 * twice after a restart).
 */

const MESSAGE_MEMORY = 2000;
/** Tasks sent from Telegram and settled approvals kept, newest last: the file is rewritten whole on every change. */
const TASK_MEMORY = 2000;
const APPROVAL_MEMORY = 2000;

const placeSchema = z.object({ chat: z.number(), outbox: z.string().optional(), message: z.number().optional() });
export type MessagePlace = z.infer<typeof placeSchema>;

const botStateSchema = z.object({
  version: z.literal(1),
  offset: z.number().int().nonnegative(),
  /** Tasks sent from Telegram: the chat that follows them and the status message edited in place. */
  tasks: z.record(z.string(), z.object({ chat: z.number(), request: z.number().optional(), status: placeSchema.optional() })),
  /** `${chat}:${message_id}` → task id, newest last, bounded. */
  messages: z.array(z.tuple([z.string(), z.string()])),
  /** Approval id → the messages showing it. */
  approvals: z.record(z.string(), z.object({ places: z.array(placeSchema), settled: z.boolean().default(false) })),
  /** Chat id → the approval whose deny reason the chat's next message gives. */
  awaiting_reason: z.record(z.string(), z.string()),
});

export type BotState = z.infer<typeof botStateSchema>;

export interface BotStore {
  readonly data: BotState;
  /** Applies `change` and writes the file (temp, fsync, rename) before returning. */
  update(change: (data: BotState) => void): void;
  taskOfMessage(chat: number, message: number): string | undefined;
  rememberMessage(data: BotState, chat: number, message: number, task: string): void;
}

/**
 * Several machines (runtime/store/pg-telegram.ts): the state the last machine to run the bot
 * left in the shared store, which wins over this machine's file (still written, as a copy); each
 * change is handed to `written` to be written there too. Without a usable `initial` (no machine
 * ran the bot yet) the file is the start.
 */
export interface SharedBotState {
  initial: unknown;
  /** After each change was written to the file. Must not throw. */
  written(data: BotState): void;
}

/**
 * Opens the bot's state. A damaged file is moved aside (named in `onDamaged`) and the bot starts
 * fresh: the worst case is one update seen again and older messages no longer mapped to tasks.
 */
export function openBotStore(dir: string, onDamaged: (message: string) => void, shared?: SharedBotState): BotStore {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, "bot.json");
  let data: BotState = { version: 1, offset: 0, tasks: {}, messages: [], approvals: {}, awaiting_reason: {} };
  const initial = shared?.initial === undefined ? undefined : botStateSchema.safeParse(shared.initial);
  if (initial?.success) data = initial.data;
  else if (existsSync(file)) {
    try {
      data = botStateSchema.parse(JSON.parse(readFileSync(file, "utf8")));
    } catch (error) {
      const movedTo = `${file}.damaged-${Date.now()}`;
      renameSync(file, movedTo);
      onDamaged(`${file} was damaged (${(error as Error).message.split("\n")[0]}); moved to ${movedTo} and started afresh`);
    }
  }
  const write = () => {
    const temp = `${file}.tmp`;
    const fd = openSync(temp, "w", 0o600);
    try {
      writeSync(fd, JSON.stringify(data));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
  };
  const index = () => new Map(data.messages);
  let byMessage = index();
  return {
    get data() {
      return data;
    },
    update(change) {
      const before = structuredClone(data);
      change(data);
      forgetOldest(data);
      try {
        write();
      } catch (error) {
        data = before; // memory never runs ahead of the file
        throw error;
      }
      byMessage = index();
      shared?.written(data);
    },
    taskOfMessage: (chat, message) => byMessage.get(`${chat}:${message}`),
    rememberMessage(state, chat, message, task) {
      state.messages.push([`${chat}:${message}`, task]);
      if (state.messages.length > MESSAGE_MEMORY) state.messages.splice(0, state.messages.length - MESSAGE_MEMORY);
    },
  };
}

/**
 * Keeps the file (and each change's copy and rewrite) from growing with the history: the oldest
 * tasks past {@link TASK_MEMORY}, as no reply can reach them once their messages are forgotten too,
 * and the oldest settled approvals past {@link APPROVAL_MEMORY}. An open approval is always kept.
 */
function forgetOldest(data: BotState): void {
  const tasks = Object.keys(data.tasks);
  for (const id of tasks.slice(0, Math.max(0, tasks.length - TASK_MEMORY))) delete data.tasks[id];
  const settled = Object.keys(data.approvals).filter((id) => data.approvals[id]!.settled);
  for (const id of settled.slice(0, Math.max(0, settled.length - APPROVAL_MEMORY))) delete data.approvals[id];
}
