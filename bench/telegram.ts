/**
 * What the Telegram surface costs: how fast an update becomes the first reply, and how a backlog of
 * notifications drains after an outage within Telegram's limits. The real daemon and grammy bot
 * (`cli/start.ts`) or the real outbox (`bot/outbox.ts`) talk HTTP to the Bot API stand-in
 * (`test/support/bot-api.ts`) in this process, on the system clock. Nothing is asserted.
 * Run alone with `node bench/telegram.ts`, or with the others through `node bench/run.ts`.
 */

import { Api } from "grammy";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createTelegramOutbox } from "../bot/outbox.ts";
import { systemClock } from "../runtime/clock.ts";
import { startBotApi, type RecordedCall } from "../test/support/bot-api.ts";
import { tempDir } from "../test/support/home.ts";
import { startTelegramHarness, TOKEN } from "../test/support/telegram-harness.ts";
import { formatRows, type Row } from "./daemon.ts";

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
const p90 = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length * 0.9)] ?? NaN;

/**
 * Update received → first reply sent: the stand-in stamps the update when it is pushed (a waiting
 * long poll gets it at once) and the bot's sendMessage when its body arrives. Each sample comes from
 * its own user, so no per-chat rate limit is in the way; the model is never involved before the
 * first reply (a command's answer, or a new task's status message).
 */
export async function benchFirstReply(samples = 40): Promise<Row[]> {
  const users = Array.from({ length: samples * 2 }, (_, i) => 10_000 + i);
  const h = await startTelegramHarness({ realClock: true, config: `telegram:\n  allowed_users: [${users.join(", ")}]\n  poll_timeout: 30s\n` });
  try {
    h.model.respondWith(() => ({ content: [{ type: "text", text: "ok" }] }));
    await h.until(() => h.telegram.commands.length > 0 && h.telegram.openPolls() === 1, "polling", { ms: 10_000 });
    const measure = async (user: number, text: string): Promise<number> => {
      await h.until(() => h.telegram.openPolls() === 1, "the next poll");
      const pushed = Date.now();
      h.telegram.sendText({ id: user, username: `u${user}` }, text);
      let reply: RecordedCall | undefined;
      await h.until(() => (reply = h.sent("sendMessage", user)[0]) !== undefined, "the first reply");
      return reply!.at - pushed;
    };
    const help: number[] = [];
    const task: number[] = [];
    for (let i = 0; i < samples; i++) help.push(await measure(users[i]!, "/help"));
    for (let i = 0; i < samples; i++) {
      const user = users[samples + i]!;
      task.push(await measure(user, `Task number ${i}`));
      // One at a time: the task's own work (session, sandbox probe, result, the status message's
      // final state, which follows the result by a second or two) is not this figure.
      await h.until(() => h.telegram.messages(user).some((message) => /\bok\b/.test(message.text ?? "")), "the task's result");
      await h.until(() => /done/.test(h.telegram.messages(user)[0]?.text ?? ""), "the status message's final state", { ms: 10_000 });
    }
    return [
      { name: "/help → its answer, median", value: median(help), unit: "ms", target: 50 },
      { name: "/help → its answer, p90", value: p90(help), unit: "ms" },
      { name: "message → the new task's status message, median", value: median(task), unit: "ms", target: 50 },
      { name: "message → the new task's status message, p90", value: p90(task), unit: "ms" },
    ];
  } finally {
    await h.close();
  }
}

/**
 * The model's answer → the sendMessage carrying it: ten plain messages from one user (one chat),
 * each its own task, one at a time, with both stand-ins answering at once. Measured from the moment
 * the Messages API stand-in's responder returned the task's final answer (it is written to the
 * socket right after) to the Bot API stand-in's receipt of the result's sendMessage. Everything in
 * between is the daemon: the session's end, the outbox file, and whatever pacing makes the result
 * wait for. `pauseMs` after each result before the next message: 0 sends them back to back (a chat
 * over its limit: each task is two messages and an edit, much faster than one a second); 3,000 lets
 * the chat's bucket refill, as a person reading the answer and typing the next message would.
 */
export async function benchAnswerToResult(pauseMs: number, samples = 10): Promise<Row[]> {
  const user = 20_000;
  const h = await startTelegramHarness({ realClock: true, config: `telegram:\n  allowed_users: [${user}]\n  poll_timeout: 30s\n` });
  try {
    const answered = new Map<string, number>();
    h.model.respondWith((request) => {
      const marker = /answer-(\d+)/.exec(JSON.stringify(request.body.messages))?.[1] ?? "?";
      answered.set(marker, Date.now());
      return { content: [{ type: "text", text: `Here is answer-${marker}, done.` }] };
    });
    await h.until(() => h.telegram.commands.length > 0 && h.telegram.openPolls() === 1, "polling", { ms: 10_000 });
    const waits: number[] = [];
    const samplesOf: { task: string; answer: number; result: number }[] = [];
    let timeline = "";
    let callCount = 0;
    for (let i = 0; i < samples; i++) {
      await h.until(() => h.telegram.openPolls() === 1, "the next poll");
      const first = h.telegram.calls.length;
      const pushed = Date.now();
      h.telegram.sendText({ id: user, username: "bench" }, `Please write answer-${i}`);
      let result: RecordedCall | undefined;
      const carries = (call: RecordedCall) => call.method === "sendMessage" && String(call.params.text).includes(`Here is answer-${i}`);
      await h.until(() => (result = h.telegram.calls.find(carries)) !== undefined, "the result", { ms: 20_000 });
      const answer = answered.get(String(i))!;
      waits.push(result!.at - answer);
      samplesOf.push({ task: /<code>([^<]+)<\/code>/.exec(String(result!.params.text))?.[1] ?? "?", answer, result: result!.at });
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
      // What went to the chat for one task (the second: the first starts with a full bucket), from the update on.
      if (i === 1) {
        const calls = h.telegram.calls.slice(first).filter((call) => call.method !== "getUpdates");
        callCount = calls.length;
        timeline = [`answer +${answer - pushed}`, ...calls.map((call) => `${call.method === "editMessageText" ? "edit" : call === result ? "result" : call.method} +${call.at - pushed}`)].join(", ");
      }
    }
    // The split: the daemon's part ends where it logs task_finished (session end, result, state
    // write) and hands the result to the Telegram surface; the rest is the follower and the outbox.
    await new Promise((resolve) => setTimeout(resolve, 200)); // the trace is written asynchronously
    const finishedAt = new Map<string, number>();
    for (const line of readFileSync(join(h.home, "logs", "trace.jsonl"), "utf8").split("\n")) {
      if (!line.includes('"task_finished"')) continue;
      const entry = JSON.parse(line) as { session?: string; time?: number };
      if (entry.session && entry.time) finishedAt.set(entry.session, entry.time);
    }
    const daemonPart = samplesOf.map((sample) => (finishedAt.get(sample.task) ?? NaN) - sample.answer);
    const outboxPart = samplesOf.map((sample) => sample.result - (finishedAt.get(sample.task) ?? NaN));
    const how = pauseMs > 0 ? `${pauseMs / 1000} s after each result` : "back to back";
    return [
      { name: `answer → the sendMessage carrying it, ${how}, median`, value: median(waits), unit: "ms", ...(pauseMs > 0 ? { target: 50 } : {}) },
      { name: "  of which answer → task_finished in the trace (session end, state write), median", value: median(daemonPart), unit: "ms" },
      { name: "  of which task_finished → sendMessage (follower, outbox file, pacing, HTTP), median", value: median(outboxPart), unit: "ms" },
      { name: `answer → the sendMessage carrying it, ${how}, p90`, value: p90(waits), unit: "ms" },
      { name: `answer → the sendMessage carrying it, ${how}, max`, value: Math.max(...waits), unit: "ms" },
      { name: `  calls to the chat for the second task, ms after its update: ${timeline}`, value: callCount, unit: "count" },
    ];
  } finally {
    await h.close();
  }
}

/**
 * 200 notifications stored while Telegram is down (20 chats × 10), then Telegram comes back: how long
 * until all arrive, the most requests the stand-in saw in any one second (Telegram allows about 30)
 * and in any one second for one chat (about 1, with short bursts), and whether any came twice or out
 * of order.
 */
export async function benchBacklog(chats = 20, perChat = 10): Promise<Row[]> {
  const telegram = await startBotApi({ token: TOKEN });
  const dir = tempDir("nightshift-bench-outbox-", "/var/tmp");
  const outbox = createTelegramOutbox({ dir: join(dir.path, "outbox"), api: new Api(TOKEN, { apiRoot: telegram.url }), clock: systemClock });
  try {
    telegram.down();
    outbox.start();
    for (let n = 0; n < perChat; n++) for (let c = 0; c < chats; c++) outbox.enqueue({ method: "sendMessage", chat_id: 1000 + c, params: { text: `note ${n}` } });
    await new Promise((resolve) => setTimeout(resolve, 1500)); // a failed attempt or two per chat
    const before = telegram.calls.length;
    const back = Date.now();
    telegram.up();
    await outbox.idle();
    const drained = Date.now() - back;
    const delivered = telegram.calls.slice(before).filter((call) => call.method === "sendMessage" && call.status === 200);
    const stamps = delivered.map((call) => call.at);
    const peak = (times: number[]) => Math.max(0, ...times.map((start) => times.filter((at) => at >= start && at < start + 1000).length));
    const perChatPeak = Math.max(...Array.from({ length: chats }, (_, c) => peak(delivered.filter((call) => call.params.chat_id === 1000 + c).map((call) => call.at))));
    let disorder = 0;
    for (let c = 0; c < chats; c++) {
      const texts = telegram.messages(1000 + c).map((message) => Number(/note (\d+)/.exec(message.text ?? "")?.[1]));
      disorder += texts.filter((value, i) => value !== i).length + Math.abs(texts.length - perChat);
    }
    return [
      { name: `${chats * perChat} notifications delivered after the outage ends`, value: drained, unit: "ms" },
      { name: "most requests in any one second (Telegram: about 30)", value: peak(stamps), unit: "count", target: 30 },
      // A bucket of 3 refilling at 1/s lets the 4th go one second after the 1st, inside a window that starts just after the 1st.
      { name: "most requests to one chat in any one second (a burst of 3, then 1/s)", value: perChatPeak, unit: "count", target: 4 },
      { name: "delivered twice, lost or out of order", value: disorder + (delivered.length - chats * perChat), unit: "count", target: 0 },
    ];
  } finally {
    await outbox.stop();
    await telegram.close();
    dir.cleanup();
  }
}

if (import.meta.main) {
  // `node bench/telegram.ts [first|answer|backlog]` runs one of them.
  const only = process.argv[2];
  if (!only || only === "first") console.log(`## Update → first reply\n\n${formatRows(await benchFirstReply())}\n`);
  if (!only || only === "answer") console.log(`## Answer → the sendMessage carrying it\n\n${formatRows([...(await benchAnswerToResult(3_000)), ...(await benchAnswerToResult(0))])}\n`);
  if (!only || only === "backlog") console.log(`## 200 notifications after an outage\n\n${formatRows(await benchBacklog())}\n`);
}
