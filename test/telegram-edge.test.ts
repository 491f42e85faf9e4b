// Edge cases of the Telegram bot found in review: crashes, cancellations, hung downloads, odd messages.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { openState } from "../tasks/state.ts";
import { agent } from "./support/cli.ts";
import { readTasks } from "./support/state-history.ts";
import { ALICE, approvalMessages, button, startTelegramHarness, text, texts, writeTo, type TelegramHarness } from "./support/telegram-harness.ts";
import { needs } from "./support/prerequisites.ts";

let h: TelegramHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});


describe("Telegram: progress message", () => {
  it("says the task is working once it runs, also when it had to wait in the queue", needs("bwrap", "socat"), async () => {
    h = await startTelegramHarness({ config: `telegram:\n  allowed_users: [${ALICE.id}]\n  poll_timeout: 2s\ndaemon:\n  concurrency: 1\n` });
    // The second task's command takes 2 s: long enough for a progress edit (a chat's edits are paced at one a second, bot/pacing.ts) on a fast machine too.
    h.model.respondWith((request) => (/First/.test(JSON.stringify(request.body.messages[0])) ? agent("sleep 1")(request) : agent("sleep 2; echo one; echo two")(request)));
    h.telegram.sendText(ALICE, "First: wait a second");
    await h.until(() => h!.sent("sendMessage", ALICE.id).length === 1, "the first status");
    h.telegram.sendText(ALICE, "Second: count to two");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("finished after: one")), "the second result");
    const second = h.sent("sendMessage", ALICE.id).find((call) => /Second: count to two/.test(call.params.text) && !/finished/.test(call.params.text))!;
    const shown = () => h!.telegram.messages(ALICE.id).find((message) => message.message_id === second.response.result.message_id)?.text ?? "";
    await h.until(() => /done/.test(shown()), "the second status message's final state (it follows the result)");
    const progress = h.sent("editMessageText", ALICE.id).filter((edit) => edit.params.message_id === second.response.result.message_id).slice(0, -1).map((edit) => edit.params.text as string);
    assert.match(second.params.text, /queued/);
    assert.ok(progress.length > 0, "the second task's status was edited while it ran");
    for (const edit of progress) assert.doesNotMatch(edit, /queued · step [1-9]/, `a progress edit of a running task: ${JSON.stringify(edit)}`);
  });
});

describe("Telegram: follow-ups across a crash", () => {
  it("does not append and run a follow-up twice when the daemon died after its session ended but before the state was written", async () => {
    h = await startTelegramHarness();
    h.model.script(text("First answer."), text("Second answer."), text("THIRD (should never be asked)"));
    h.telegram.sendText(ALICE, "Start something");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("First answer.")), "the first result");
    const result = h.telegram.messages(ALICE.id).find((message) => message.text?.includes("First answer."))!;
    h.telegram.sendText(ALICE, "And now the rest", { reply_to_message_id: result.message_id });
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("Second answer.")), "the follow-up's result");
    await h.daemon.stop();
    // The crash window in tasks/daemon.ts finish(): the session log already holds the follow-up's
    // session_end, but the state write that clears follow_up (and marks the task done) never happened.
    // (follow_up_at is when it was queued; any time before the follow-up's entry in the log will do.)
    const { store } = await openState(h.home, Date.now);
    const task = store.overview(100).find((candidate) => candidate.title === "Start something")!;
    await store.change(task.id, { state: "running", follow_up: "And now the rest", follow_up_at: task.created, finished: undefined });
    store.close();
    await h.restart();
    await h.until(() => h!.model.requests.length >= 3 || readTasks(h!.home).some((candidate) => candidate.id === task.id && candidate.state === "done"), "the task to settle", { ms: 5000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const sessions = readFileSync(join(h.home, "sessions", `${task.id}.jsonl`), "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line));
    const followUps = sessions.filter((event: { type: string; text?: string }) => event.type === "user" && event.text === "And now the rest");
    assert.equal(followUps.length, 1, "the follow-up is in the log once");
    assert.equal(h.model.requests.length, 2, "no third model call");
  });
});

describe("Telegram: deny reason", () => {
  it("does not swallow the next task when the approval's task was cancelled after Deny was pressed", async () => {
    h = await startTelegramHarness();
    const outside = join(h.home, "..", "outside");
    h.model.script(writeTo(join(outside, "a.txt")), text("the new task ran"));
    h.telegram.sendText(ALICE, "Write a file outside");
    await h.until(() => approvalMessages(h!).length === 1, "the approval");
    const question = approvalMessages(h)[0]!;
    h.telegram.pressButton(ALICE, question.message_id, button(question, "Deny"));
    await h.until(() => /send the reason/i.test(approvalMessages(h!)[0]!.text!), "the deny prompt");
    h.telegram.sendText(ALICE, "/cancel");
    await h.until(() => texts(h!, ALICE.id).some((line) => /cancelled/.test(line) && /Write a file outside/.test(line)), "the cancelled result");
    h.telegram.sendText(ALICE, "Please summarise my day");
    await h.until(() => h!.telegram.pendingUpdates().length === 0, "the update to be taken");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("the new task ran")), "the new task's answer", { ms: 3000 }).catch(() => {});
    assert.ok(texts(h, ALICE.id).some((line) => line.includes("the new task ran")), `the message became a task; the chat shows:\n${texts(h, ALICE.id).join("\n---\n")}`);
  });

  it("a cancelled task's approval is no longer offered or 'allowed'", async () => {
    h = await startTelegramHarness();
    const outside = join(h.home, "..", "outside");
    h.model.script(writeTo(join(outside, "b.txt")), text("never"));
    h.telegram.sendText(ALICE, "Write b outside");
    await h.until(() => approvalMessages(h!).length === 1, "the approval");
    const question = approvalMessages(h)[0]!;
    const allow = button(question, "Allow once");
    h.telegram.sendText(ALICE, "/cancel");
    await h.until(() => texts(h!, ALICE.id).some((line) => /cancelled/.test(line) && /Write b outside/.test(line)), "the cancelled result");
    await h.until(() => approvalMessages(h!)[0]!.reply_markup === undefined, "the question closed, without buttons");
    assert.match(approvalMessages(h)[0]!.text!, /the task stopped before anyone answered/);
    const before = h.telegram.answeredCallbacks.size;
    h.telegram.pressButton(ALICE, question.message_id, allow);
    await h.until(() => h!.telegram.answeredCallbacks.size > before, "the press answered");
    const answer = [...h.telegram.answeredCallbacks.values()].at(-1)!.text ?? "";
    assert.doesNotMatch(answer, /^Allowed once\.$/, "the user is told something was allowed for a task that no longer runs");
  });
});

describe("Telegram: a hung document download", () => {
  it("does not stop the bot from hearing anything else (the watchdog cannot help: the poll already completed)", async () => {
    const { createServer, request } = await import("node:http");
    let target = "";
    const hanging: Array<import("node:http").ServerResponse> = [];
    // Between the bot and the Bot API stand-in: passes everything through, but never answers a file download.
    const proxy = createServer((req, res) => {
      if (req.url?.startsWith("/file/")) return void hanging.push(res);
      if (!target) return void res.writeHead(502).end(); // the stand-in is not known yet: the bot retries
      const upstream = request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on("error", () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(proxy.address() as import("node:net").AddressInfo).port}`;
    try {
      h = await startTelegramHarness({ env: { TELEGRAM_API_ROOT: url } });
      target = h.telegram.url;
      h.model.script(text("still listening"));
      await h.until(() => h!.telegram.commands.length > 0, "the bot to start");
      h.telegram.sendDocumentFromUser(ALICE, { filename: "notes.txt", content: "hello", caption: "read this" });
      await h.until(() => hanging.length === 1, "the download to start");
      h.telegram.sendText(ALICE, "Are you there?");
      // Daemon time in 5 s steps, far past telegram.watchdog (90 s), for up to 15 s of real time:
      // the answer needs real work too (the model stand-in, the send), slow on a loaded machine.
      await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("still listening")), "an answer to the next message", { stepMs: 5000, ms: 15_000 }).catch(() => {});
      const trace = readFileSync(join(h.home, "logs", "trace.jsonl"), "utf8");
      const restarts = trace.split("\n").filter((line) => line.includes("restarting polling")).length;
      assert.ok(texts(h, ALICE.id).some((line) => line.includes("still listening")), `no answer after the download hung; the watchdog logged "restarting polling" ${restarts} times without effect`);
    } finally {
      for (const res of hanging) res.destroy(); // lets stop() finish: it waits for the stuck handler
      await h?.close();
      h = undefined;
      proxy.closeAllConnections();
      proxy.close();
    }
  });
});

describe("Telegram: an update seen again after a crash", () => {
  it("a re-delivered follow-up (crash after it was queued, before the offset was saved) is not answered 'still working; send this again'", async () => {
    h = await startTelegramHarness();
    h.model.script(text("First answer."));
    h.telegram.sendText(ALICE, "Start something");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("First answer.")), "the first result");
    const result = h.telegram.messages(ALICE.id).find((message) => message.text?.includes("First answer."))!;
    h.model.respondWith(agent("sleep 2"));
    const id = h.telegram.sendText(ALICE, "And now the rest", { reply_to_message_id: result.message_id });
    const update = h.telegram.pendingUpdates().find((candidate) => candidate.update_id === id)!;
    await h.until(() => h!.model.requests.length >= 2, "the follow-up to run");
    // Telegram hands the same message out again (the daemon died before it saved the offset).
    h.telegram.pushUpdate({ message: update.message! });
    await h.until(() => h!.telegram.pendingUpdates().length === 0, "the repeat to be taken");
    await new Promise((resolve) => setTimeout(resolve, 200));
    const busy = texts(h, ALICE.id).filter((line) => /still working; send this again/.test(line));
    assert.deepEqual(busy, [], "the user is asked to send again a message that is already being worked on");
  });
});

describe("Telegram: /cancel without an ID", () => {
  it("stops the task that is running, not merely the latest one created", needs("bwrap", "socat"), async () => {
    h = await startTelegramHarness();
    h.model.respondWith((request) => (/Sleep/.test(JSON.stringify(request.body.messages[0])) ? agent("sleep 60")(request) : text("inbox chore done")));
    h.telegram.sendText(ALICE, "Sleep a minute");
    await h.until(() => h!.sent("editMessageText", ALICE.id).some((edit) => /sleep 60/.test(edit.params.text)), "the command to start");
    writeFileSync(join(h.home, "inbox", "chore.md"), "# A quick chore\n");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("inbox chore done")), "the inbox task's result");
    h.telegram.sendText(ALICE, "/cancel");
    await h.until(() => texts(h!, ALICE.id).some((line) => /Stopping|has already/.test(line)), "the answer to /cancel");
    const answer = texts(h, ALICE.id).find((line) => /Stopping|has already/.test(line))!;
    assert.match(answer, /Stopping/, `the only running task is not stopped; the bot answered: ${answer}`);
  });
});

describe("Telegram: a message the daemon cannot turn into a task", () => {
  it("gets an answer that says why, instead of silence (the update is consumed either way)", async () => {
    h = await startTelegramHarness();
    await h.until(() => h!.telegram.commands.length > 0, "the bot to start");
    // An empty Markdown heading as the first line: taskFromPrompt finds no title and throws.
    h.telegram.sendText(ALICE, "##\u00a0\nPlease tidy my notes");
    await h.until(() => h!.telegram.pendingUpdates().length === 0, "the update to be taken");
    await h.until(() => h!.sent("sendMessage", ALICE.id).length > 0, "any answer", { ms: 1500 }).catch(() => {});
    const trace = readFileSync(join(h.home, "logs", "trace.jsonl"), "utf8");
    assert.ok(h.sent("sendMessage", ALICE.id).length > 0, `the user heard nothing; the trace says: ${trace.split("\n").find((line) => /update \d+ failed/.test(line))}`);
  });
});

describe("Telegram: start-up calls", () => {
  it("registers the commands even when setMyCommands failed once at start (getMe had succeeded)", async () => {
    h = await startTelegramHarness();
    await h.until(() => h!.telegram.commands.length > 0, "the bot to start");
    await h.daemon.stop();
    const before = h.telegram.callsOf("setMyCommands").length;
    h.telegram.failNext("setMyCommands", 1, { status: 502, description: "Bad Gateway" });
    await h.restart();
    await h.until(() => h!.telegram.callsOf("getUpdates").length > 0 && h!.telegram.callsOf("setMyCommands").length > before, "start-up");
    await h.until(() => h!.telegram.callsOf("setMyCommands").slice(before).some((call) => call.status === 200), "setMyCommands to be retried", { stepMs: 2000, ms: 2000 }).catch(() => {});
    const calls = h.telegram.callsOf("setMyCommands").slice(before).map((call) => call.status);
    assert.ok(calls.includes(200), `setMyCommands after the restart answered ${JSON.stringify(calls)} and was never retried, though polling runs`);
  });
});

describe("Telegram: a message that starts with a path", () => {
  it("becomes a task, not 'I do not know /home/…'", async () => {
    h = await startTelegramHarness();
    h.model.script(text("summarised"));
    h.telegram.sendText(ALICE, "/home/alice/notes.md — summarise it please");
    await h.until(() => h!.sent("sendMessage", ALICE.id).length > 0, "an answer");
    assert.doesNotMatch(h.sent("sendMessage", ALICE.id)[0]!.params.text, /I do not know/);
  });
});
