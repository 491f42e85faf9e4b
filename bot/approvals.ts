import type { ApprovalAnswer, ApprovalRecord, ApprovalStore, Approver, Clock } from "../runtime/index.ts";
import { escapeHtml } from "./format.ts";
import type { OutgoingCall, TelegramOutbox } from "./outbox.ts";
import type { BotStore, MessagePlace } from "./store.ts";

/**
 * Approvals on the phone. A request becomes a message with the one-line summary, the exact target,
 * the rule and three buttons; the button's data names the approval, so a press after a restart
 * still answers it (the approval store is durable). The store decides who answered first; the
 * messages are edited to show the decision whoever gave it.
 */

export interface TelegramApprover extends Approver {
  /** A button press. Returns the text for answerCallbackQuery. */
  press(data: string, chat: number, message: number, by: string): string;
  /** A text message: if the chat owes a deny reason, it is used and true returned. */
  takeReason(chat: number, text: string, by: string): boolean;
  /** Shows every pending approval again (for /approvals). Returns how many. */
  showPending(chat: number): number;
}

export interface ApproverOptions {
  store: ApprovalStore;
  outbox: TelegramOutbox;
  bot: BotStore;
  clock: Clock;
  /** The chats to ask: the task's chat if it came from Telegram, else every user's. */
  chatsFor(record: ApprovalRecord): number[];
  /** The link to a task's dashboard page (`taskPageLink`), or "" when there is no public one. */
  taskLink(id: string): string;
}

const DECISIONS: Record<string, Exclude<ApprovalAnswer["decision"], "expired">> = { once: "once", task: "task", deny: "deny", nodeny: "deny" };

export function createTelegramApprover(options: ApproverOptions): TelegramApprover {
  const { store, outbox, bot, clock } = options;

  const placesOf = (id: string) => bot.data.approvals[id]?.places ?? [];
  /** The question, with a link to its task's page when the dashboard has a public address. */
  const question = (record: ApprovalRecord, settled = false) => {
    const link = options.taskLink(record.session.split(".")[0]!); // a specialist's session is <task>.<call>.<name>
    return `${requestText(record, clock.now(), settled)}${link ? `\n${link}` : ""}`;
  };
  // Previews off: a preview would fetch the task's page, or a URL named in the target.
  const edit = (place: MessagePlace, text: string, buttons?: unknown): void => {
    const params = { text, parse_mode: "HTML", link_preview_options: { is_disabled: true }, ...(buttons ? { reply_markup: buttons } : {}) };
    const call: OutgoingCall | undefined = place.message !== undefined
      ? { method: "editMessageText", chat_id: place.chat, params: { ...params, message_id: place.message } }
      : place.outbox ? { method: "editMessageText", chat_id: place.chat, edit_of: place.outbox, params } : undefined;
    if (call) outbox.enqueue(call);
  };
  const ask = (record: ApprovalRecord, chat: number): MessagePlace => ({
    chat,
    outbox: outbox.enqueue({ method: "sendMessage", chat_id: chat, params: { text: question(record), parse_mode: "HTML", link_preview_options: { is_disabled: true }, reply_markup: buttons(record.id) }, tag: `approval:${record.id}` }),
  });
  /** Edits every message showing the approval to its decision, once. */
  const settle = (record: ApprovalRecord, answer: ApprovalAnswer) => {
    const entry = bot.data.approvals[record.id];
    if (!entry || entry.settled) return;
    bot.update((data) => {
      data.approvals[record.id]!.settled = true;
      for (const [chat, id] of Object.entries(data.awaiting_reason)) if (id === record.id) delete data.awaiting_reason[chat];
    });
    for (const place of entry.places) edit(place, `${question(record, true)}\n\n${decisionText(answer)}`);
  };

  return {
    name: "telegram",
    notify(record) {
      // After a restart the resumed session asks again: the messages already sent still work.
      if (bot.data.approvals[record.id]) return;
      const chats = options.chatsFor(record);
      if (chats.length === 0) {
        // Nobody here would see it: better a clear "no" now than a silent wait until it expires.
        store.answer(record.id, { decision: "deny", by: "nightshift", reason: "nobody is asked on Telegram about this task (telegram.notify leaves out approval)" });
        return;
      }
      const places = chats.map((chat) => ask(record, chat));
      bot.update((data) => void (data.approvals[record.id] = { places, settled: false }));
    },
    settled: settle,
    press(data, chat, message, by) {
      const match = /^ap:([a-z0-9]{4,16}):(once|task|deny|nodeny|back)$/.exec(data);
      if (!match) return "This button is not from this Nightshift.";
      const [, id, choice] = match as unknown as [string, string, string];
      const record = store.get(id);
      if (!record) return `There is no approval ${id} (any more).`;
      if (!store.answerOf(id) && clock.now() >= record.expires_at) store.answer(id, { decision: "deny", by }); // records the expiry
      const existing = store.answerOf(id);
      if (existing) {
        settle(record, existing);
        return existing.decision === "expired" ? "This approval expired and was denied." : `Already answered: ${plain(decisionText(existing))}.`;
      }
      const place: MessagePlace = placesOf(id).find((candidate) => candidate.chat === chat) ?? { chat, message };
      if (choice === "deny") {
        bot.update((state) => void (state.awaiting_reason[String(chat)] = id));
        edit({ ...place, message }, `${question(record)}\n\n✋ <b>Denying.</b> Send the reason as your next message (the agent reads it), or tap below.`, denyButtons(id));
        return "Send the reason as your next message.";
      }
      if (choice === "back") {
        bot.update((state) => void delete state.awaiting_reason[String(chat)]);
        edit({ ...place, message }, question(record), buttons(id));
        return "Back to the question.";
      }
      const result = store.answer(id, { decision: DECISIONS[choice]!, by });
      if (!result.ok) {
        const answer = store.answerOf(id);
        if (answer) settle(record, answer);
        return result.message;
      }
      settle(record, store.answerOf(id)!);
      return choice === "once" ? "Allowed once." : choice === "task" ? "Allowed for this task." : "Denied.";
    },
    takeReason(chat, text, by) {
      const id = bot.data.awaiting_reason[String(chat)];
      if (!id) return false;
      bot.update((data) => void delete data.awaiting_reason[String(chat)]);
      const record = store.get(id);
      if (!record) return false;
      const result = store.answer(id, { decision: "deny", by, reason: text.slice(0, 1000) });
      if (!result.ok) return false; // settled meanwhile: the message is an ordinary one
      settle(record, store.answerOf(id)!);
      return true;
    },
    showPending(chat) {
      const pending = store.pending();
      for (const record of pending) {
        const place = ask(record, chat);
        bot.update((data) => {
          const entry = (data.approvals[record.id] ??= { places: [], settled: false });
          entry.places.push(place);
        });
      }
      return pending.length;
    },
  };
}

function buttons(id: string) {
  return {
    inline_keyboard: [
      [
        { text: "Allow once", callback_data: `ap:${id}:once` },
        { text: "Allow for this task", callback_data: `ap:${id}:task` },
      ],
      [{ text: "Deny", callback_data: `ap:${id}:deny` }],
    ],
  };
}

function denyButtons(id: string) {
  return {
    inline_keyboard: [[
      { text: "Deny without a reason", callback_data: `ap:${id}:nodeny` },
      { text: "Back", callback_data: `ap:${id}:back` },
    ]],
  };
}

/** The question: who asks, what would happen, the exact target, the rule, and when it lapses. */
export function requestText(record: ApprovalRecord, now: number, settled = false): string {
  const minutes = Math.max(0, Math.round((record.expires_at - now) / 60_000));
  const target = record.target.length > 1500 ? `${record.target.slice(0, 1500)}…` : record.target;
  return [
    `🔐 <b>Approval needed</b>${record.label ? ` (${escapeHtml(record.label)})` : ""} · task <code>${escapeHtml(record.session)}</code>`,
    escapeHtml(record.summary),
    `<pre>${escapeHtml(target)}</pre>`,
    `Rule: ${escapeHtml(record.reason)}`,
    settled ? `Approval <code>${record.id}</code>` : `Approval <code>${record.id}</code> · denied if unanswered in ${minutes} min`,
  ].join("\n");
}

function plain(html: string): string {
  return html.replace(/<[^>]+>/g, "").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&amp;/g, "&");
}

function decisionText(answer: ApprovalAnswer): string {
  const who = answer.by.replace(/^telegram:/, "");
  switch (answer.decision) {
    case "once":
      return `✅ <b>Allowed once</b> by ${escapeHtml(who)}`;
    case "task":
      return `✅ <b>Allowed for this task</b> by ${escapeHtml(who)}`;
    case "deny":
      return `⛔ <b>Denied</b> by ${escapeHtml(who)}${answer.reason ? `: ${escapeHtml(answer.reason)}` : ""}`;
    case "expired":
      return "⌛ <b>Expired</b>: nobody answered, so it was denied";
  }
}
