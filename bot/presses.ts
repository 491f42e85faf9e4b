import type { TelegramBotOptions } from "./bot.ts";
import { escapeHtml } from "./format.ts";
import type { TelegramOutbox } from "./outbox.ts";
import { storeUnreachable } from "../runtime/store/outage.ts";

/**
 * The bot's buttons under a staged task's changes (Apply, Discard) and under an MCP tool review
 * (Approve, Keep withheld): what a press does, and what the chat and the button are told.
 */
export function createPresses(deps: {
  options: Pick<TelegramBotOptions, "stagedAction" | "approveTools">;
  outbox: Pick<TelegramOutbox, "enqueue">;
  reply(chat: number, text: string, replyTo?: number): unknown;
  log(level: "info" | "warn" | "error", message: string, fields?: Record<string, unknown>): void;
  /** An error as the trace may hold it (tokens redacted). */
  describe(error: unknown): string;
}): { staged(data: string, chat: number, message: number, by: string): Promise<string>; review(data: string, chat: number, message: number, by: string): Promise<string> } {
  const { options, outbox, reply, log, describe } = deps;
  return { staged, review };

  /**
   * Apply or Discard under a staged task's changes: the buttons go, and the outcome is the reply.
   * A press that could not be done (the shared store does not answer) keeps the buttons and is
   * answered on the button only, as Approve under a tool review is: the error itself, which can
   * name the database's host, goes to the trace, never to the chat.
   */
  async function staged(data: string, chat: number, message: number, by: string): Promise<string> {
    const match = /^st:([A-Za-z0-9_-]{1,40}):(a|d)$/.exec(data);
    if (!match || !options.stagedAction) return "This button is not from this Nightshift.";
    const [, id, choice] = match as unknown as [string, string, string];
    const action = choice === "a" ? "apply" : "discard";
    let result: { ok: boolean; message: string; waiting?: boolean };
    try {
      result = await options.stagedAction(id, action, { by, chat, message });
    } catch (error) {
      const away = storeUnreachable(error);
      log(away ? "warn" : "error", `staged changes of ${id}: ${action} pressed by ${by} failed: ${describe(error)}`, { session: id });
      return away ? "Not done: the shared store (PostgreSQL) does not answer: press again when it is back." : `Not done: the ${action} failed (the trace says why). Press again to retry.`;
    }
    outbox.enqueue({ method: "editMessageReplyMarkup", chat_id: chat, params: { message_id: message, reply_markup: { inline_keyboard: [] } } });
    reply(chat, `${result.waiting ? "⏳" : result.ok ? "✅" : "⚠️"} ${escapeHtml(result.message)} (${escapeHtml(by)})`, message);
    log("info", `staged changes of ${id}: ${choice === "a" ? "apply" : "discard"} pressed by ${by}: ${result.message.split("\n")[0]}`);
    return result.message.slice(0, 200);
  }

  /** A press under a tool review: approve pins what the message showed; either way the message says who decided. */
  async function review(data: string, chat: number, message: number, by: string): Promise<string> {
    const match = /^mt:([a-z0-9_-]{1,24}):([0-9a-f]{12}):(y|n)$/.exec(data);
    if (!match) return "This button is not from this Nightshift.";
    const [, server, id, choice] = match as unknown as [string, string, string, string];
    const settle = (line: string) => {
      outbox.enqueue({ method: "editMessageReplyMarkup", chat_id: chat, params: { message_id: message, reply_markup: { inline_keyboard: [] } } });
      reply(chat, line, message);
    };
    if (choice === "n") {
      settle(`Kept withheld by ${escapeHtml(by)}. Approve later with <code>nightshift mcp approve ${escapeHtml(server)}</code>.`);
      return "Kept withheld.";
    }
    const result = (await options.approveTools?.(server, id, by)) ?? { ok: false, message: "Tools cannot be approved from Telegram here; run nightshift mcp approve." };
    if (result.error) log("warn", `MCP tools of ${server}: Approve pressed by ${by} failed: ${result.error}`);
    if (result.ok) {
      log("info", `MCP tools of ${server} approved on Telegram by ${by}`);
      settle(`✅ ${escapeHtml(result.message)} (${escapeHtml(by)})`);
    }
    return result.message;
  }
}
