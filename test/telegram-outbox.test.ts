import { test, before, after, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Api } from "grammy";
import { createTelegramOutbox } from "../bot/outbox.ts";
import type { OutboxItem, OutgoingCall, TelegramOutbox, TelegramOutboxOptions } from "../bot/outbox.ts";
import { startBotApi } from "./support/bot-api.ts";
import type { BotApi } from "./support/bot-api.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { tempDir } from "./support/home.ts";

const TOKEN = "424242:OUTBOX-secret_token";

let server: BotApi;
let temp: { path: string; cleanup(): void };
let nextChat = 100;
let nextRig = 0;
let rigs: Rig[] = [];

before(async () => {
  server = await startBotApi({ token: TOKEN, botUsername: "night_bot" });
  temp = tempDir("nightshift-outbox-");
});
after(async () => {
  await server.close();
  temp.cleanup();
});
beforeEach(() => {
  server.calls.length = 0;
  rigs = [];
});
afterEach(async () => {
  server.up();
  for (const rig of rigs) {
    for (const outbox of rig.outboxes) await outbox.stop();
    assert.equal(rig.clock.pendingTimers, 0, "no timer left running after stop");
  }
});

/** A fresh chat id, so tests never see each other's messages in the stand-in. */
const chat = (): number => nextChat++;
const text = (chatId: number, body: string, extra: Partial<OutgoingCall> = {}): OutgoingCall => ({ method: "sendMessage", chat_id: chatId, params: { text: body }, ...extra });

interface Rig {
  clock: FakeClock;
  dir: string;
  /** every request the outbox made, stamped with the fake clock when it started */
  requests: { method: string; payload: Record<string, unknown>; at: number }[];
  sent: { item: OutboxItem; result: unknown }[];
  dropped: { item: OutboxItem; reason: string }[];
  logs: { level: string; message: string; fields?: Record<string, unknown> }[];
  outboxes: TelegramOutbox[];
  /** a new outbox over this rig's folder, clock and recorders (a restart when called again) */
  open(extra?: Partial<TelegramOutboxOptions>, token?: string): TelegramOutbox;
  inFlight(): number;
}

function rig(dirName = `home-${nextRig++}`): Rig {
  let flying = 0;
  const r: Rig = {
    clock: new FakeClock(),
    dir: join(temp.path, dirName, "state", "telegram", "outbox"),
    requests: [],
    sent: [],
    dropped: [],
    logs: [],
    outboxes: [],
    inFlight: () => flying,
    open(extra = {}, token = TOKEN) {
      const api = new Api(token, { apiRoot: server.url });
      api.config.use(async (prev, method, payload, signal) => {
        r.requests.push({ method, payload: payload as Record<string, unknown>, at: r.clock.now() });
        flying++;
        try {
          return await prev(method, payload, signal);
        } finally {
          flying--;
        }
      });
      const outbox = createTelegramOutbox({
        dir: r.dir,
        api,
        clock: r.clock,
        onSent: (item, result) => r.sent.push({ item, result }),
        onDropped: (item, reason) => r.dropped.push({ item, reason }),
        log: (level, message, fields) => r.logs.push(fields ? { level, message, fields } : { level, message }),
        ...extra,
      });
      r.outboxes.push(outbox);
      return outbox;
    },
  };
  rigs.push(r);
  return r;
}

/** Waits (real time, bounded) until no request is in flight and the outbox has handled the last answer. */
async function quiet(r: Rig): Promise<void> {
  const deadline = Date.now() + 3000;
  for (;;) {
    await new Promise((resolve) => setImmediate(resolve));
    if (r.inFlight() === 0) return;
    if (Date.now() > deadline) throw new Error("requests still in flight after 3 s");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Moves fake time in steps, letting each step's requests finish, until `done` holds. */
async function drive(r: Rig, done: () => boolean, stepMs = 100, maxMs = 300_000): Promise<void> {
  const until = r.clock.now() + maxMs;
  for (;;) {
    await quiet(r);
    if (done()) return;
    if (r.clock.now() >= until) throw new Error(`not done after ${maxMs} ms of fake time`);
    r.clock.advance(stepMs);
  }
}

/** Lets `ms` of fake time pass in steps, with each step's requests finished. */
async function runFor(r: Rig, ms: number, stepMs = 500): Promise<void> {
  const end = r.clock.now() + ms;
  await drive(r, () => r.clock.now() >= end, stepMs);
}

const items = (dir: string): string[] => readdirSync(dir).filter((name) => name.endsWith(".json"));
const shown = (chatId: number): (string | undefined)[] => server.messages(chatId).map((m) => m.text);
const ok = (method: string) => (c: { method: string; status?: number }) => c.method === method && c.status === 200;

test("stores each call before sending and removes it only when Telegram confirms", async () => {
  const r = rig();
  const outbox = r.open();
  const a = chat();
  const first = outbox.enqueue(text(a, "stored before start", { tag: "status:T1" }));
  const file = join(r.dir, `${first}.json`);
  assert.ok(existsSync(file), "written when enqueue returns");
  assert.deepEqual(JSON.parse(readFileSync(file, "utf8")).call, text(a, "stored before start", { tag: "status:T1" }));
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(r.dir).mode & 0o777, 0o700);
  assert.equal(outbox.pending(), 1);
  assert.equal(server.calls.length, 0, "nothing is sent before start");

  outbox.start();
  const second = outbox.enqueue(text(a, "stored while running"));
  assert.ok(existsSync(join(r.dir, `${second}.json`)), "written before it is sent");
  assert.ok(second > first, "ids sort in enqueue order");
  await outbox.idle();
  assert.deepEqual(items(r.dir), []);
  assert.equal(outbox.pending(), 0);
  assert.deepEqual(shown(a), ["stored before start", "stored while running"]);
  assert.deepEqual(r.sent.map((s) => [s.item.id, s.item.call.tag, (s.result as { message_id: number }).message_id]), [
    [first, "status:T1", 1],
    [second, undefined, 2],
  ]);
});

test("after an outage every message arrives once, in order per chat", async () => {
  const r = rig();
  const outbox = r.open();
  const [a, b] = [chat(), chat()];
  server.down();
  outbox.start();
  for (let i = 1; i <= 5; i++) {
    outbox.enqueue(text(a, `a${i}`));
    if (i <= 3) outbox.enqueue(text(b, `b${i}`));
  }
  await runFor(r, 10_000);
  assert.equal(server.callsOf("sendMessage").filter((c) => c.status === 200).length, 0);
  assert.equal(outbox.pending(), 8);
  assert.ok(r.logs.some((l) => l.level === "warn" && /retrying in/.test(l.message)));

  server.up();
  await drive(r, () => outbox.pending() === 0, 500);
  assert.deepEqual(shown(a), ["a1", "a2", "a3", "a4", "a5"]);
  assert.deepEqual(shown(b), ["b1", "b2", "b3"]);
  assert.equal(server.calls.filter(ok("sendMessage")).length, 8, "nothing twice");
  assert.deepEqual(items(r.dir), []);
});

test("a 429 holds its chat for exactly retry_after seconds and no other chat", async () => {
  const r = rig();
  const outbox = r.open();
  const [a, b] = [chat(), chat()];
  server.failNext("sendMessage", 1, { status: 429, description: "Too Many Requests: retry after 5", retry_after: 5 });
  outbox.start();
  outbox.enqueue(text(a, "limited"));
  await quiet(r);
  assert.equal(r.requests.length, 1);
  outbox.enqueue(text(b, "other chat goes at once"));
  outbox.enqueue(text(a, "behind the limited one"));
  await quiet(r);
  r.clock.advance(4_999);
  await quiet(r);
  assert.deepEqual(r.requests.map((q) => q.payload["text"]), ["limited", "other chat goes at once"], "chat a waits, chat b does not");
  r.clock.advance(1);
  await drive(r, () => outbox.pending() === 0, 1);
  assert.deepEqual(r.requests.map((q) => [q.payload["text"], q.at - r.requests[0]!.at]), [
    ["limited", 0],
    ["other chat goes at once", 0],
    ["limited", 5_000],
    ["behind the limited one", 5_000],
  ]);
  assert.deepEqual(shown(a), ["limited", "behind the limited one"]);
  assert.deepEqual(shown(b), ["other chat goes at once"]);
  assert.ok(!r.logs.some((l) => l.level !== "info"), "a 429 is not a failure");
});

test("5xx answers back off exponentially from 1 s to a 60 s cap, keeping the item", async () => {
  const r = rig();
  const outbox = r.open();
  const a = chat();
  server.failNext("sendMessage", 8, { status: 502, description: "Bad Gateway" });
  outbox.start();
  outbox.enqueue(text(a, "eventually"));
  await drive(r, () => outbox.pending() === 0, 1_000); // whole seconds: each failure is seen when its retry was due
  const times = r.requests.map((q) => q.at);
  assert.deepEqual(times.slice(1).map((t, i) => t - times[i]!), [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]);
  assert.deepEqual(shown(a), ["eventually"]);
  assert.equal(r.dropped.length, 0);
});

test("a restart delivers what was stored while Telegram was down, once, documents included", async () => {
  const r = rig();
  const first = r.open();
  const a = chat();
  server.down();
  first.start();
  const ids = [first.enqueue(text(a, "one")), first.enqueue(text(a, "two"))];
  ids.push(first.enqueue({ method: "sendDocument", chat_id: a, params: { caption: "three" }, document: { filename: "answer.md", content: "# Answer\n\né ✓\n" } }));
  await runFor(r, 3_000);
  await first.stop();
  assert.equal(r.clock.pendingTimers, 0);
  assert.deepEqual(items(r.dir), ids.map((id) => `${id}.json`));

  server.up();
  const second = r.open();
  assert.equal(second.pending(), 3);
  const fourth = second.enqueue(text(a, "four"));
  assert.ok(fourth > ids[2]!, "the sequence continues after a restart");
  second.start();
  await drive(r, () => second.pending() === 0);
  assert.deepEqual(shown(a), ["one", "two", "three", "four"]);
  assert.equal(server.messages(a)[2]!.document?.content.toString("utf8"), "# Answer\n\né ✓\n");
  assert.equal(server.messages(a)[2]!.document?.filename, "answer.md");
  assert.equal(server.calls.filter((c) => c.status === 200).length, 4, "nothing twice");
});

test("one chat gets at most one message a second after a burst of three", async () => {
  const r = rig();
  const outbox = r.open();
  const a = chat();
  for (let i = 1; i <= 10; i++) outbox.enqueue(text(a, `m${i}`));
  outbox.start();
  await drive(r, () => outbox.pending() === 0);
  const start = r.requests[0]!.at;
  assert.deepEqual(r.requests.map((q) => q.at - start), [0, 0, 0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000]);
  assert.deepEqual(shown(a), ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10"]);
});

test("across many chats no more than 30 messages go out in any second", async () => {
  const r = rig();
  const outbox = r.open();
  const chats = Array.from({ length: 90 }, chat);
  for (const c of chats) outbox.enqueue(text(c, `to ${c}`));
  outbox.start();
  await drive(r, () => outbox.pending() === 0, 50);
  const times = r.requests.map((q) => q.at - r.requests[0]!.at);
  for (const t of times) assert.ok(times.filter((u) => u >= t && u < t + 1_000).length <= 30, `at most 30 in the second from ${t} ms`);
  assert.deepEqual([0, 1_000, 2_000].map((t) => times.filter((u) => u === t).length), [30, 30, 30], "30 at once, then the next 30 a second later");
  for (const c of chats) assert.deepEqual(shown(c), [`to ${c}`]);
});

test("progress edits coalesce to the latest text, at most one per edit interval, and a stored edit supersedes them", async () => {
  const r = rig();
  const outbox = r.open();
  const a = chat();
  const status = outbox.enqueue(text(a, "Working…", { tag: "status:T2" }));
  const progress = (body: string): OutgoingCall => ({ method: "editMessageText", chat_id: a, edit_of: status, params: { text: body } });
  outbox.replace("progress:T2", progress("step 1"));
  outbox.replace("progress:T2", progress("step 2"));
  outbox.replace("progress:T2", progress("step 3"));
  outbox.start();
  await quiet(r);
  outbox.replace("progress:T2", progress("step 4"));
  outbox.replace("progress:T2", progress("step 5"));
  await drive(r, () => r.requests.length === 3);
  const edits = r.requests.filter((q) => q.method === "editMessageText");
  assert.deepEqual(edits.map((q) => q.payload["text"]), ["step 3", "step 5"]);
  assert.equal(edits[1]!.at - edits[0]!.at, 3_000);
  assert.equal(edits[0]!.payload["message_id"], server.messages(a)[0]!.message_id);

  outbox.replace("progress:T2", progress("step 6"));
  outbox.enqueue({ ...progress("Done in 4 s"), tag: "status:T2" });
  await drive(r, () => outbox.pending() === 0);
  await outbox.idle();
  assert.deepEqual(r.requests.filter((q) => q.method === "editMessageText").map((q) => q.payload["text"]), ["step 3", "step 5", "Done in 4 s"]);
  assert.equal(server.messages(a)[0]!.text, "Done in 4 s");
  assert.deepEqual(items(r.dir), []);
});

test("a chat under its limit gets its result at once, ahead of a status edit that waits for a spare slot", async () => {
  const r = rig();
  const outbox = r.open();
  const a = chat();
  outbox.start();
  const status = outbox.enqueue(text(a, "Working…", { tag: "status:T3" }));
  outbox.replace("progress:T3", { method: "editMessageText", chat_id: a, edit_of: status, params: { text: "step 1" } });
  await quiet(r);
  // The task ends: its final status edit and its result are stored together.
  outbox.enqueue({ method: "editMessageText", chat_id: a, edit_of: status, params: { text: "Done" }, lane: "status" });
  outbox.enqueue(text(a, "The answer", { tag: "result:T3" }));
  await quiet(r);
  assert.deepEqual(r.requests.map((q) => [q.payload["text"], q.at - r.requests[0]!.at]), [
    ["Working…", 0],
    ["step 1", 0],
    ["The answer", 0],
  ], "the result did not wait for a slot");
  await drive(r, () => outbox.pending() === 0);
  assert.deepEqual(r.requests.map((q) => [q.payload["text"], q.at - r.requests[0]!.at]).slice(3), [["Done", 2_000]], "the status edit waits until the chat has a slot to spare");
  assert.deepEqual(shown(a), ["Done", "The answer"]);
});

test("a result or an approval overtakes status and progress edits waiting in its chat, and the status edit goes after the result", async () => {
  const r = rig();
  const outbox = r.open();
  const a = chat();
  outbox.start();
  const [one, two] = [outbox.enqueue(text(a, "Task one…")), outbox.enqueue(text(a, "Task two…"))];
  await quiet(r);
  // The bucket is down to one: edits wait for a spare slot, messages the person waits for do not.
  outbox.enqueue({ method: "editMessageText", chat_id: a, edit_of: one, params: { text: "one: done" }, lane: "status" });
  outbox.replace("progress:two", { method: "editMessageText", chat_id: a, edit_of: two, params: { text: "two: step 4" } });
  outbox.enqueue(text(a, "Approve this?", { tag: "approval:9" }));
  r.clock.advance(1_000);
  outbox.enqueue(text(a, "Result of one", { tag: "result:one" }));
  await drive(r, () => outbox.pending() === 0 && r.requests.length === 6);
  assert.deepEqual(r.requests.map((q) => [q.payload["text"], q.at - r.requests[0]!.at]), [
    ["Task one…", 0],
    ["Task two…", 0],
    ["Approve this?", 0],
    ["Result of one", 1_000],
    ["one: done", 3_000],
    ["two: step 4", 6_000],
  ]);
});

test("a burst of status edits of one message collapses to the newest, on disk too", async () => {
  const r = rig();
  const outbox = r.open();
  const a = chat();
  outbox.start();
  const status = outbox.enqueue(text(a, "Working…"));
  await outbox.idle();
  server.failNext("sendMessage", 1, { status: 429, description: "Too Many Requests: retry after 2", retry_after: 2 });
  outbox.enqueue(text(a, "held by a 429"));
  await quiet(r);
  const edit = (body: string): OutgoingCall => ({ method: "editMessageText", chat_id: a, edit_of: status, params: { text: body }, lane: "status" });
  const ids = ["v1", "v2", "v3", "v4"].map((body) => outbox.enqueue(edit(body)));
  assert.ok(!items(r.dir).some((name) => ids.slice(0, 3).some((id) => name.startsWith(id))), "superseded edits are removed from disk");
  assert.equal(outbox.pending(), 2, "the held message and the newest edit");
  await drive(r, () => outbox.pending() === 0);
  assert.deepEqual(r.requests.filter((q) => q.method === "editMessageText").map((q) => q.payload["text"]), ["v4"]);
  assert.deepEqual(shown(a), ["v4", "held by a 429"]);
  assert.deepEqual(r.dropped, [], "a superseded edit is not a failure");
});

test("a restart keeps what was decided before it: superseded edits stay gone, the result still goes before the status edit, nothing twice", async () => {
  const r = rig();
  const first = r.open();
  const a = chat();
  first.start();
  const status = first.enqueue(text(a, "Working…"));
  await first.idle();
  server.down();
  const edit = (body: string): OutgoingCall => ({ method: "editMessageText", chat_id: a, edit_of: status, params: { text: body }, lane: "status" });
  first.enqueue(edit("step 2"));
  first.enqueue(edit("step 3"));
  const result = first.enqueue(text(a, "The answer"));
  const final = first.enqueue(edit("Done"));
  await runFor(r, 3_000);
  await first.stop();
  assert.deepEqual(items(r.dir), [`${result}.json`, `${final}.json`]);

  server.up();
  const before = server.calls.length;
  const second = r.open();
  assert.equal(second.pending(), 2);
  second.start();
  await drive(r, () => second.pending() === 0);
  assert.deepEqual(server.calls.slice(before).map((c) => [c.method, c.params["text"], c.status]), [
    ["sendMessage", "The answer", 200],
    ["editMessageText", "Done", 200],
  ]);
  assert.deepEqual(shown(a), ["Done", "The answer"]);
  assert.deepEqual(items(r.dir), []);
});

test("a status edit stored twice for one message (a crash between storing the newer and removing the older) is sent once, the newer", async () => {
  const r = rig();
  const first = r.open();
  const a = chat();
  first.start();
  const status = first.enqueue(text(a, "Working…"));
  await first.idle();
  server.down();
  const older = first.enqueue({ method: "editMessageText", chat_id: a, edit_of: status, params: { text: "older" }, lane: "status" });
  const stored = readFileSync(join(r.dir, `${older}.json`), "utf8");
  first.enqueue({ method: "editMessageText", chat_id: a, edit_of: status, params: { text: "newer" }, lane: "status" });
  await first.stop();
  writeFileSync(join(r.dir, `${older}.json`), stored);
  server.up();
  const second = r.open();
  assert.equal(second.pending(), 1);
  assert.ok(!existsSync(join(r.dir, `${older}.json`)));
  second.start();
  await drive(r, () => second.pending() === 0);
  assert.deepEqual(server.callsOf("editMessageText").filter((c) => c.status === 200).map((c) => c.params["text"]), ["newer"]);
});

test("a group gets at most 20 messages in any minute", async () => {
  const r = rig();
  const outbox = r.open();
  const group = -1_000_000 - chat();
  for (let i = 1; i <= 30; i++) outbox.enqueue(text(group, `g${i}`));
  outbox.start();
  await drive(r, () => outbox.pending() === 0, 250, 600_000);
  const times = r.requests.map((q) => q.at - r.requests[0]!.at);
  for (const t of times) assert.ok(times.filter((u) => u >= t && u < t + 60_000).length <= 20, `at most 20 in the minute from ${t} ms`);
  assert.equal(times.filter((u) => u === 0).length, 3, "a burst of three");
  assert.equal(shown(group).length, 30);
});

test('"message is not modified" counts as delivered', async () => {
  const r = rig();
  const outbox = r.open();
  const a = chat();
  outbox.start();
  const id = outbox.enqueue(text(a, "same"));
  const edit = outbox.enqueue({ method: "editMessageText", chat_id: a, edit_of: id, params: { text: "same" } });
  await drive(r, () => outbox.pending() === 0);
  assert.match(String(server.calls.find((c) => c.method === "editMessageText")?.response?.description), /message is not modified/);
  assert.deepEqual(r.sent.map((s) => [s.item.id, s.result === true]), [
    [id, false],
    [edit, true],
  ]);
  assert.deepEqual(readdirSync(join(r.dir, "failed")), []);
});

test("HTML Telegram cannot parse is sent once more as plain text", async () => {
  const r = rig();
  const outbox = r.open();
  const a = chat();
  outbox.start();
  outbox.enqueue(text(a, "<b>1 &lt; 2 &amp;&amp; &quot;x&quot;</b> <i>unclosed", { params: { text: "<b>1 &lt; 2 &amp;&amp; &quot;x&quot;</b> <i>unclosed", parse_mode: "HTML" } }));
  await drive(r, () => outbox.pending() === 0);
  const sends = server.callsOf("sendMessage");
  assert.deepEqual(sends.map((c) => [c.status, c.params["parse_mode"]]), [
    [400, "HTML"],
    [200, undefined],
  ]);
  assert.equal(server.messages(a)[0]!.text, '1 < 2 && "x" unclosed');
  assert.equal(server.messages(a)[0]!.parse_mode, undefined);
  assert.equal(r.dropped.length, 0);
});

test("a 403 lands in failed/ with its error, its edits follow it there, and other items go on", async () => {
  const r = rig();
  const outbox = r.open();
  const [blocked, other] = [chat(), chat()];
  outbox.start();
  server.failNext("sendMessage", 1, { status: 403, description: "Forbidden: bot was blocked by the user" });
  const lost = outbox.enqueue(text(blocked, "never seen", { tag: "approval:7" }));
  await server.waitFor((calls) => calls.length === 1); // the 403 goes to this request, the first to arrive
  const edit = outbox.enqueue({ method: "editMessageReplyMarkup", chat_id: blocked, edit_of: lost, params: { reply_markup: { inline_keyboard: [] } } });
  outbox.enqueue(text(other, "for the other chat"));
  outbox.enqueue(text(blocked, "next in the blocked chat"));
  await drive(r, () => outbox.pending() === 0);

  assert.deepEqual(shown(other), ["for the other chat"]);
  assert.deepEqual(shown(blocked), ["next in the blocked chat"]);
  assert.deepEqual(readdirSync(join(r.dir, "failed")).sort(), [`${lost}.json`, `${edit}.json`]);
  const record = JSON.parse(readFileSync(join(r.dir, "failed", `${lost}.json`), "utf8"));
  assert.equal(record.error, "403: Forbidden: bot was blocked by the user");
  assert.equal(record.call.params.text, "never seen");
  assert.deepEqual(r.dropped.map((d) => [d.item.id, d.item.call.tag]), [
    [lost, "approval:7"],
    [edit, undefined],
  ]);
  assert.match(r.dropped[1]!.reason, new RegExp(`${lost}.*was dropped`));
  assert.equal(r.logs.filter((l) => l.level === "warn" && /dropped/.test(l.message)).length, 2);
  assert.equal(server.callsOf("editMessageReplyMarkup").length, 0, "an edit of a dropped send is never tried");
});

test("edit_of still finds the message after a restart", async () => {
  const r = rig();
  const first = r.open();
  const a = chat();
  first.start();
  const status = first.enqueue(text(a, "Working…"));
  await first.idle();
  await first.stop();

  const second = r.open();
  second.start();
  second.enqueue({ method: "editMessageText", chat_id: a, edit_of: status, params: { text: "Done" } });
  await drive(r, () => second.pending() === 0);
  assert.deepEqual(shown(a), ["Done"]);
  assert.equal(server.messages(a)[0]!.edits, 1);
});

test("a rejected token pauses everything with backoff, keeps the items and never logs the token", async () => {
  const r = rig();
  const wrong = "999:WRONG-secret";
  const outbox = r.open({}, wrong);
  const a = chat();
  outbox.start();
  outbox.enqueue(text(a, "kept"));
  await quiet(r);
  r.clock.advance(999);
  await quiet(r);
  assert.equal(r.requests.length, 1);
  r.clock.advance(1);
  await drive(r, () => r.requests.length === 4, 1_000);
  const times = r.requests.map((q) => q.at - r.requests[0]!.at);
  assert.deepEqual(times, [0, 1_000, 3_000, 7_000]);
  assert.equal(outbox.pending(), 1);
  assert.equal(r.dropped.length, 0);
  assert.ok(r.logs.some((l) => l.level === "error" && /token/.test(l.message)));
  assert.ok(!JSON.stringify(r.logs).includes(wrong));

});

test("a token inside an error description is redacted from the log and from failed/", async () => {
  const r = rig();
  const outbox = r.open();
  server.failNext("sendMessage", 1, { status: 400, description: `Bad Request: see /bot${TOKEN}/sendMessage` });
  outbox.start();
  const id = outbox.enqueue(text(chat(), "x"));
  await drive(r, () => r.dropped.length === 1);
  assert.ok(r.logs.some((l) => l.message.includes("/bot<token>/")));
  assert.ok(!JSON.stringify(r.logs).includes(TOKEN));
  assert.ok(!JSON.stringify(r.dropped).includes(TOKEN));
  assert.ok(!readFileSync(join(r.dir, "failed", `${id}.json`), "utf8").includes(TOKEN));
});

test("stop waits for the request in flight; a new outbox does not send a confirmed item again", async () => {
  const r = rig();
  const first = r.open();
  const a = chat();
  first.start();
  first.enqueue(text(a, "in flight at stop"));
  assert.equal(r.requests.length, 1, "the request has started");
  await first.stop();
  assert.deepEqual(items(r.dir), [], "confirmed before stop resolved");
  const second = r.open();
  second.start();
  await second.idle();
  assert.deepEqual(shown(a), ["in flight at stop"]);
  assert.equal(r.requests.length, 1);
});

test("at start, a crash's leftovers are sorted out: confirmed items removed, torn temp files deleted, unreadable items set aside", async () => {
  const r = rig();
  const first = r.open();
  const a = chat();
  first.start();
  const delivered = first.enqueue(text(a, "delivered"));
  const stored = readFileSync(join(r.dir, `${delivered}.json`), "utf8");
  await first.idle();
  await first.stop();
  // a crash after the send was recorded but before its file was removed; another mid-write; one torn
  writeFileSync(join(r.dir, `${delivered}.json`), stored);
  writeFileSync(join(r.dir, ".000000000009-abcdef.json.tmp"), '{"id":');
  writeFileSync(join(r.dir, "000000000008-abcdef.json"), '{"id":"000000000008-abcdef","call":');
  appendFileSync(join(r.dir, "sent.jsonl"), '["cut-short",');

  const second = r.open();
  assert.equal(second.pending(), 0);
  assert.deepEqual(readdirSync(r.dir).sort(), ["failed", "sent.jsonl"]);
  assert.deepEqual(readdirSync(join(r.dir, "failed")), ["000000000008-abcdef.json"]);
  assert.ok(r.logs.some((l) => l.level === "error" && /unreadable item 000000000008-abcdef\.json/.test(l.message)));
  const next = second.enqueue({ method: "editMessageText", chat_id: a, edit_of: delivered, params: { text: "edited" } });
  assert.ok(next > "000000000008-abcdef", "the sequence continues past every name seen");
  second.start();
  await second.idle();
  assert.deepEqual(shown(a), ["edited"]);
  assert.equal(server.callsOf("sendMessage").length, 1, "the confirmed item was not sent again");
});
