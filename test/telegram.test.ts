import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { createPairingStore } from "../bot/pairing.ts";
import { parseHtml, type RecordedCall } from "./support/bot-api.ts";
import { agent } from "./support/cli.ts";
import { readTasks } from "./support/state-history.ts";
import { ALICE, MALLORY, approvalMessages, button, startTelegramHarness, text, texts, writeTo, type TelegramHarness } from "./support/telegram-harness.ts";
import { needs } from "./support/prerequisites.ts";

let h: TelegramHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});


describe("Telegram: tasks from the phone", () => {
  it("turns a message into a task: one status message edited in place (throttled, never identical), then the result as a new message", needs("bwrap", "socat"), async () => {
    h = await startTelegramHarness();
    h.model.respondWith(agent("echo one; echo two"));
    const update = h.telegram.sendText(ALICE, "Count to two please");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("finished after: one")), "the result");
    await h.until(() => /done/.test(h!.telegram.messages(ALICE.id)[0]!.text ?? ""), "the status message's final state, after the result");
    const status = h.sent("sendMessage", ALICE.id)[0]!;
    assert.equal(status.params.reply_parameters?.message_id !== undefined, true, "the status message answers the user's message");
    assert.match(status.params.text, /Count to two please/);
    const edits = h.sent("editMessageText", ALICE.id);
    assert.ok(edits.length >= 1, "the status message was edited");
    for (const edit of edits) assert.equal(edit.params.message_id, status.response.result.message_id, "edits go to the status message");
    for (let i = 1; i < edits.length; i++) assert.ok(edits[i]!.at - edits[i - 1]!.at >= 3000 || edits[i]!.params.text !== edits[i - 1]!.params.text, "edits are throttled");
    assert.ok(edits.every((edit) => edit.status === 200), "no edit was refused (identical text is never sent)");
    const throttled = edits.slice(0, -1); // the final state is sent when the task ends
    for (let i = 1; i < throttled.length; i++) assert.ok(throttled[i]!.at - throttled[i - 1]!.at >= 3000, `progress edits ${i - 1} and ${i} are ${throttled[i]!.at - throttled[i - 1]!.at} ms apart`);
    const shown = h.telegram.messages(ALICE.id);
    assert.match(shown.at(-1)!.text!, /finished after: one/);
    assert.ok(update > 0);
    const task = h.model.requests[0]!.body.messages[0].content;
    assert.match(JSON.stringify(task), /Count to two please/);
  });

  it("sends the result the moment the answer is ready when the chat is under its limit, and the status message's final state after it", async () => {
    h = await startTelegramHarness();
    await h.until(() => h!.telegram.commands.length > 0 && h!.telegram.openPolls() === 1, "polling");
    let answeredAt = NaN;
    h.model.respondWith(() => {
      answeredAt = h!.clock.now();
      return text("Quick answer.");
    });
    h.telegram.sendText(ALICE, "Answer quickly");
    // The fake clock stands still: anything that waits for a rate-limit slot never comes.
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("Quick answer.")), "the result without any time passing", { stepMs: 0 });
    const result = h.sent("sendMessage", ALICE.id).find((call) => /Quick answer\./.test(call.params.text))!;
    assert.equal(result.at - answeredAt, 0);
    await h.until(() => /done/.test(h!.telegram.messages(ALICE.id)[0]!.text ?? ""), "the status message's final state");
    const calls = h.telegram.calls.filter((call) => Number(call.params.chat_id) === ALICE.id && call.method !== "getUpdates");
    const final = calls.findLastIndex((call) => call.method === "editMessageText");
    assert.ok(calls.indexOf(result) < final, `the final status edit comes after the result: ${calls.map((call) => call.method).join(", ")}`);
    assert.equal(calls[final]!.status, 200);
  });

  it("splits a long answer with code fences under 4,096 characters, each part valid with its code block closed", async () => {
    h = await startTelegramHarness();
    const code = Array.from({ length: 120 }, (_, i) => `console.log("line ${i} <of> code & more");`).join("\n");
    const prose = Array.from({ length: 30 }, (_, i) => `Paragraph ${i}: ${"words ".repeat(20)}`).join("\n\n");
    h.model.script(text(`${prose}\n\n\`\`\`js\n${code}\n\`\`\`\n\nThe end.`));
    h.telegram.sendText(ALICE, "Write a long answer");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("The end.")), "the last part");
    const parts = h.sent("sendMessage", ALICE.id).slice(1);
    assert.ok(parts.length >= 2, "more than one part");
    for (const part of parts) {
      assert.ok(parseHtml(part.params.text).text.length <= 4096, "at most 4,096 characters as Telegram counts them (text after tags and entities)");
      assert.doesNotThrow(() => parseHtml(part.params.text));
      assert.equal(part.status, 200);
    }
    const joined = h.telegram.messages(ALICE.id).slice(1).map((message) => message.text).join("\n");
    for (let i = 0; i < 120; i++) assert.ok(joined.includes(`console.log("line ${i} <of> code & more");`), `code line ${i} arrives intact`);
  });

  it("sends an answer too long for a few messages as a .md document", async () => {
    h = await startTelegramHarness();
    const answer = Array.from({ length: 400 }, (_, i) => `Line ${i}: ${"lorem ipsum ".repeat(6)}`).join("\n\n");
    h.model.script(text(answer));
    h.telegram.sendText(ALICE, "Write a book");
    await h.until(() => h!.sent("sendDocument", ALICE.id).length > 0, "the document");
    const document = h.sent("sendDocument", ALICE.id)[0]!;
    const file = Object.values(document.files)[0]!;
    assert.match(file.filename, /\.md$/);
    assert.equal(file.content.toString("utf8").trim(), answer.trim(), "the document is the answer as written");
    assert.match(document.params.caption, /Write a book/);
  });

  it("continues a task when the user replies to its result, and puts a sent document in the task's folder", async () => {
    h = await startTelegramHarness();
    h.model.script(text("First answer."), text("Second answer."), text("Read it."));
    h.telegram.sendText(ALICE, "Start something");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("First answer.")), "the first result");
    const result = h.telegram.messages(ALICE.id).find((message) => message.text?.includes("First answer."))!;
    h.telegram.sendText(ALICE, "And now the rest", { reply_to_message_id: result.message_id });
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("Second answer.")), "the follow-up's result");
    const followUp = h.model.requests[1]!.body.messages;
    assert.equal(followUp.at(-1).content[0].text, "And now the rest");
    assert.match(JSON.stringify(followUp[1]), /First answer\./, "the follow-up sees the conversation so far");

    h.telegram.sendDocumentFromUser(ALICE, { filename: "notes.txt", content: "remember the milk", caption: "What does this say?" });
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("Read it.")), "the document task's result");
    const prompt = JSON.stringify(h.model.requests[2]!.body.messages[0]);
    assert.match(prompt, /What does this say\?/);
    const tasks = readTasks(h.home);
    const workdir = tasks.find((task) => task.spec.prompt.includes("What does this say"))?.spec.workdir;
    assert.ok(workdir && existsSync(join(workdir, "notes.txt")), "the document is in the task's workdir");
    assert.equal(readFileSync(join(workdir!, "notes.txt"), "utf8"), "remember the milk");
  });

  it("registers its commands and answers /tasks, /status, /trace and /budget", needs("bwrap", "socat"), async () => {
    h = await startTelegramHarness();
    h.model.respondWith(agent("echo traced"));
    await h.until(() => h!.telegram.commands.length > 0, "setMyCommands");
    assert.deepEqual(h.telegram.commands.map((command) => command.command).sort(), ["approvals", "budget", "cancel", "dashboard", "digest", "help", "memory", "status", "tasks", "trace"]);
    h.telegram.sendText(ALICE, "Trace me");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("finished after: traced")), "the result");
    for (const command of ["/tasks", "/status", "/trace", "/budget", "/help", "/digest", "/memory"]) {
      const before = h.sent("sendMessage", ALICE.id).length;
      h.telegram.sendText(ALICE, command);
      await h.until(() => h!.sent("sendMessage", ALICE.id).length > before, `the answer to ${command}`);
      const reply: RecordedCall = h.sent("sendMessage", ALICE.id).at(-1)!;
      assert.equal(reply.status, 200, `${command}: ${JSON.stringify(reply.response)}`);
    }
    const trace = h.sent("sendMessage", ALICE.id).find((call) => /echo traced/.test(call.params.text) && /\$/.test(call.params.text));
    assert.ok(trace, "the trace shows the command and a cost");
  });
});

describe("Telegram: who may talk to the bot", () => {
  it("pairs the sender of a good code; a wrong or expired code and a stranger get no answer at all", async () => {
    h = await startTelegramHarness({ config: "telegram:\n  poll_timeout: 2s\n" });
    const pairing = createPairingStore(join(h.home, "state", "telegram"), h.clock);
    h.telegram.sendText(MALLORY, "hello?");
    h.telegram.sendText(MALLORY, "/start WRONGCODE");
    const expired = await pairing.newCode();
    h.clock.advance(11 * 60_000);
    h.telegram.sendText(ALICE, `/start ${expired.code}`);
    await h.until(() => h!.telegram.pendingUpdates().length === 0, "the updates to be taken");
    await h.until(() => h!.output().length >= 0 && h!.telegram.callsOf("getUpdates").length >= 3, "a few polls");
    assert.equal(h.sent("sendMessage").length, 0, "nobody got an answer");

    const good = await pairing.newCode();
    h.telegram.sendText(ALICE, `/start ${good.code.toLowerCase()}`);
    await h.until(() => h!.sent("sendMessage", ALICE.id).length > 0, "the welcome");
    assert.match(h.sent("sendMessage", ALICE.id)[0]!.params.text, /Paired/);
    assert.equal(h.sent("sendMessage", MALLORY.id).length, 0);
    assert.ok(pairing.isPaired(ALICE.id));
    const trace = readFileSync(join(h.home, "logs", "trace.jsonl"), "utf8");
    assert.match(trace, /ignored a message from @mallory \(Telegram id 666\)/);
    assert.ok(!trace.includes("TEST-telegram-token"), "the token is never logged");
  });
});


describe("Telegram: approvals", () => {
  it("asks with the summary, exact target and rule; each button answers; a stale or unknown button says so", async () => {
    h = await startTelegramHarness();
    const outside = join(h.home, "..", "outside");
    h.model.script(writeTo(join(outside, "a.txt")), writeTo(join(outside, "b.txt")), writeTo(join(outside, "b.txt")), writeTo(join(outside, "c.txt")), text("all done"));
    h.telegram.sendText(ALICE, "Write three files");
    await h.until(() => approvalMessages(h!).length === 1, "the first approval");
    const first = approvalMessages(h)[0]!;
    assert.match(first.text!, /write .*a\.txt/);
    assert.match(first.text!, /a write outside the allowed folders/);
    assert.deepEqual(first.reply_markup!.inline_keyboard.flat().map((b) => b.text), ["Allow once", "Allow for this task", "Deny"]);
    const allowFirst = button(first, "Allow once");
    h.telegram.pressButton(ALICE, first.message_id, allowFirst);
    await h.until(() => approvalMessages(h!).length === 2, "the second approval");
    assert.equal(readFileSync(join(outside, "a.txt"), "utf8"), "x");
    await h.until(() => /Allowed once<\/b> by @alice|Allowed once by @alice/.test(approvalMessages(h!)[0]!.text!), "the first message edited to its decision");
    assert.equal(approvalMessages(h)[0]!.reply_markup, undefined, "the buttons are gone");

    const second = approvalMessages(h)[1]!;
    h.telegram.pressButton(ALICE, second.message_id, button(second, "Allow for this task"));
    await h.until(() => approvalMessages(h!).length === 3, "the third approval (b.txt again does not ask)");
    const third = approvalMessages(h)[2]!;
    assert.match(third.text!, /c\.txt/);
    h.telegram.pressButton(ALICE, third.message_id, button(third, "Deny"));
    await h.until(() => /send the reason/i.test(approvalMessages(h!)[2]!.text!), "the deny prompt");
    h.telegram.sendText(ALICE, "not that folder");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("all done")), "the result");
    assert.equal(existsSync(join(outside, "c.txt")), false);
    const denied = JSON.stringify(h.model.requests.at(-1)!.body.messages.at(-1));
    assert.match(denied, /not that folder/, "the model reads the reason");
    assert.match(approvalMessages(h)[2]!.text!, /Denied.*by @alice: not that folder/s);
    assert.equal(h.model.requests.length, 5, "the reason did not become a task");

    const stale = h.telegram.pressButton(ALICE, first.message_id, allowFirst);
    const unknown = h.telegram.pressButton(ALICE, first.message_id, "ap:zzzzzz:once");
    await h.until(() => h!.telegram.answeredCallbacks.size >= 5, "the stale presses answered");
    const answers = [...h.telegram.answeredCallbacks.values()].map((answer) => answer.text ?? "");
    assert.ok(answers.some((answer) => /Already answered: .*Allowed once by @alice/.test(answer)), answers.join(" | "));
    assert.ok(answers.some((answer) => /There is no approval zzzzzz/.test(answer)), answers.join(" | "));
    assert.ok(stale > 0 && unknown > stale);
  });

  it("keeps a question's buttons working across a daemon restart, without asking twice", async () => {
    h = await startTelegramHarness();
    const outside = join(h.home, "..", "outside");
    h.model.script(writeTo(join(outside, "late.txt")), text("written after the restart"));
    h.telegram.sendText(ALICE, "Write late.txt");
    await h.until(() => approvalMessages(h!).length === 1 && approvalMessages(h!)[0]!.reply_markup !== undefined, "the approval");
    await h.restart();
    const question = approvalMessages(h)[0]!;
    h.telegram.pressButton(ALICE, question.message_id, button(question, "Allow once"));
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("written after the restart")), "the result");
    assert.equal(readFileSync(join(outside, "late.txt"), "utf8"), "x");
    assert.equal(approvalMessages(h).length, 1, "the resumed task did not ask again");
  });
});

describe("Telegram: specialists", () => {
  it("brings a specialist's approval to the task's chat, labelled with its name", async () => {
    h = await startTelegramHarness();
    writeFileSync(join(h.home, "agents", "scribe.md"), "---\nname: scribe\ndescription: writes notes\ntools: [write_file]\n---\nYou are SCRIBE.\n");
    await h.restart(); // the consult tool lists the specialists there are at start
    const outside = join(h.home, "..", "outside", "notes.txt");
    h.model.respondWith((request) => {
      const scribe = JSON.stringify(request.body.system).includes("You are SCRIBE");
      const last = JSON.stringify(request.body.messages.at(-1));
      if (scribe) return last.includes("tool_result") ? text("notes written") : writeTo(outside);
      return last.includes("tool_result") ? text("the scribe is done") : { content: [{ type: "tool_use", name: "consult", input: { specialists: ["scribe"], question: "Write the notes." } }] };
    });
    h.telegram.sendText(ALICE, "Have the scribe write notes");
    await h.until(() => approvalMessages(h!).length === 1, "the scribe's approval");
    const question = approvalMessages(h)[0]!;
    assert.match(question.text!, /Approval needed \(scribe\)/);
    assert.match(question.text!, /notes\.txt/);
    h.telegram.pressButton(ALICE, question.message_id, button(question, "Allow once"));
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("the scribe is done")), "the result");
    assert.equal(readFileSync(outside, "utf8"), "x");
  });
});

describe("Telegram: notifications about tasks from elsewhere", () => {
  it("tells paired users when an inbox task waits for approval, passes 80% of its budget and finishes", async () => {
    h = await startTelegramHarness();
    const outside = join(h.home, "..", "outside");
    h.model.script(writeTo(join(outside, "x.txt")), { content: [{ type: "tool_use", name: "list_files", input: { path: "." } }] }, { content: [{ type: "tool_use", name: "list_files", input: { path: "." } }] }, { content: [{ type: "tool_use", name: "list_files", input: { path: "." } }] }, text("inbox task done"));
    await h.until(() => h!.telegram.commands.length > 0, "the bot to start");
    writeFileSync(join(h.home, "inbox", "chores.md"), "---\ntitle: Chores\nbudget:\n  max_turns: 5\n---\nDo the chores.\n");
    await h.until(() => approvalMessages(h!).length === 1, "the approval on the phone");
    const question = approvalMessages(h)[0]!;
    assert.match(question.text!, /x\.txt/);
    h.telegram.pressButton(ALICE, question.message_id, button(question, "Allow once"));
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("inbox task done")), "the result");
    assert.ok(texts(h, ALICE.id).some((line) => /has used 80% of its turns/.test(line)), texts(h, ALICE.id).join("\n---\n"));
    assert.match(readFileSync(join(h.home, "outbox", "chores.md"), "utf8"), /inbox task done/);
  });
});

describe("Telegram: notices", () => {
  it("tells users about a rejected inbox file, and keeps quiet about a task with notify: false", async () => {
    h = await startTelegramHarness();
    h.model.script(text("quiet answer"), text("loud answer"));
    await h.until(() => h!.telegram.commands.length > 0, "the bot to start");
    writeFileSync(join(h.home, "inbox", "broken.md"), "---\ntitle: Broken\nbugdet: 3\n---\nx\n");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("broken.md was rejected")), "the notice");
    assert.match(texts(h, ALICE.id).find((line) => line.includes("broken.md"))!, /bugdet/);
    writeFileSync(join(h.home, "inbox", "quiet.md"), "---\ntitle: Quiet\nnotify: false\n---\nShh.\n");
    await h.until(() => existsSync(join(h!.home, "outbox", "quiet.md")), "the quiet result");
    writeFileSync(join(h.home, "inbox", "loud.md"), "---\ntitle: Loud\n---\nSpeak.\n");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("loud answer")), "the loud result");
    assert.ok(!texts(h, ALICE.id).some((line) => line.includes("quiet answer")), "notify: false kept quiet");
  });
});

describe("Telegram: delivery and polling", () => {
  it("delivers everything once and in order after Telegram was down for a while", async () => {
    h = await startTelegramHarness({ config: `telegram:\n  allowed_users: [${ALICE.id}]\n  poll_timeout: 2s\n` });
    h.model.respondWith((request) => text(`answer to ${JSON.stringify(request.body.messages[0].content).match(/Task (\w)/)?.[1]}`));
    await h.until(() => h!.telegram.commands.length > 0, "the bot to start");
    h.telegram.down();
    for (const name of ["a", "b", "c"]) {
      writeFileSync(join(h.home, "inbox", `${name}.md`), `# Task ${name}\n`);
      await h.until(() => existsSync(join(h!.home, "outbox", `${name}.md`)), `result ${name}`);
    }
    h.clock.advance(120_000);
    h.telegram.up();
    await h.until(() => h!.telegram.messages(ALICE.id).filter((message) => /answer to/.test(message.text ?? "")).length === 3, "the three notifications", { stepMs: 1000 });
    const delivered = h.telegram.messages(ALICE.id).map((message) => /answer to (\w)/.exec(message.text ?? "")?.[1]).filter(Boolean);
    assert.deepEqual(delivered, ["a", "b", "c"], "in order, each once");
    await h.until(() => readdirCount(join(h!.home, "state", "telegram", "outbox")) === 0, "the outbox to empty (each confirmed send is removed)");
    assert.equal(h.telegram.callsOf("sendMessage").filter((call) => call.status === 200).length, 3, "nothing was sent twice");
  });

  it("honours a 429's retry_after", async () => {
    h = await startTelegramHarness();
    h.model.script(text("patience"));
    await h.until(() => h!.telegram.commands.length > 0, "the bot to start");
    h.telegram.failNext("sendMessage", 1, { status: 429, description: "Too Many Requests: retry after 7", retry_after: 7 });
    h.telegram.sendText(ALICE, "Say patience");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("patience")), "the result");
    const sends = h.sent("sendMessage", ALICE.id);
    assert.equal(sends[0]!.status, 429);
    // At least retry_after (the clock moves while the 429 travels; exactness is pinned in telegram-outbox.test.ts).
    assert.ok(sends[1]!.at - sends[0]!.at >= 7000, `retried after ${sends[1]!.at - sends[0]!.at} ms`);
  });

  it("restarts a poll that stopped completing", async () => {
    h = await startTelegramHarness();
    await h.until(() => h!.telegram.commands.length > 0 && h!.telegram.openPolls() === 1, "polling");
    h.telegram.stallPolls();
    const before = h.telegram.callsOf("getUpdates").length;
    await h.until(() => h!.telegram.callsOf("getUpdates").length > before + 1, "a new poll", { stepMs: 5000 });
    h.telegram.releasePolls();
    h.model.script(text("alive again"));
    h.telegram.sendText(ALICE, "Still there?");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("alive again")), "the answer");
    assert.match(readFileSync(join(h.home, "logs", "trace.jsonl"), "utf8"), /restarting polling/);
  });

  it("saves the update offset: a restart neither repeats nor loses an update", async () => {
    h = await startTelegramHarness();
    h.model.script(text("one"), text("two"));
    h.telegram.sendText(ALICE, "First");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("one")), "the first result");
    await h.daemon.stop();
    h.telegram.sendText(ALICE, "Second, sent while stopped");
    await h.restart();
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("two")), "the second result");
    assert.equal(h.model.requests.length, 2, "each message became one task");
  });

  it("/cancel stops a running command", needs("bwrap", "socat"), async () => {
    h = await startTelegramHarness();
    h.model.respondWith(agent("sleep 60"));
    h.telegram.sendText(ALICE, "Sleep a minute");
    await h.until(() => h!.sent("editMessageText", ALICE.id).some((edit) => /sleep 60/.test(edit.params.text)), "the command to start");
    const started = Date.now();
    h.telegram.sendText(ALICE, "/cancel");
    await h.until(() => texts(h!, ALICE.id).some((line) => /cancelled/.test(line) && /Sleep a minute/.test(line)), "the cancelled result");
    assert.ok(Date.now() - started < 30_000, "it did not wait for the command");
    assert.ok(texts(h, ALICE.id).some((line) => /Stopping/.test(line)));
  });
});

function readdirCount(dir: string): number {
  return existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith(".json")).length : 0;
}
