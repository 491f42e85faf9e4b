import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { until } from "./support/cli.ts";
import { eventually, noDatabase, type Machine } from "./support/cluster.ts";
import { needs } from "./support/prerequisites.ts";
import { ALICE, button, text } from "./support/telegram-harness.ts";
import { runsBot, startTelegramMachines } from "./support/telegram-machines.ts";

/**
 * A staged task that ran on a machine without the bot, with several machines on one PostgreSQL:
 * real `nightshift start` processes with real bubblewrap, one Bot API stand-in, one Messages API
 * stand-in. m2 starts first and runs the bot; the task's folder is on m1, so it runs there.
 */

const skip = noDatabase ? { skip: noDatabase } : needs("bwrap", "socat");

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe("Telegram: staged changes of a task that ran on a machine without the bot", skip, () => {
  it("posts the diff with Apply and Discard; Apply pressed while that machine sleeps waits for it, applies once in its folder, and the chat is told", async () => {
    const cluster = await startTelegramMachines(["m1", "m2"], { env: { NIGHTSHIFT_TEST_MACHINE_SILENT_MS: "3000" } });
    cleanup = cluster.cleanup;
    const [m1, m2] = cluster.machines as [Machine, Machine];
    // m1 stages a task that works in one of its own folders (the machines' default here is off).
    const config = join(m1.home, "config.yaml");
    writeFileSync(config, readFileSync(config, "utf8").replace(`stage: "off"`, `stage: "auto"`));
    cluster.api.respondWith((request) =>
      JSON.stringify(request.body.messages).includes("tool_result") ? text("wrote the note") : { content: [{ type: "tool_use", name: "write_file", input: { path: "note.txt", content: "from the task\n" } }] },
    );
    await m2.start();
    await until(() => runsBot(m2) === 1, "m2 to run the bot");
    await m1.start();
    await until(() => m1.daemon!.output().includes("Telegram: machine m2 runs the bot"), "m1 to see m2 run the bot");

    const folder = join(m1.home, "..", "m1-project");
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(m1.home, "inbox", "note.md"), `---\ntitle: note\nworkdir: ${folder}\nnotify: true\n---\nWrite a note.\n`);
    const diffMessage = () => cluster.telegram.messages(ALICE.id).find((message) => message.document?.filename.endsWith(".diff"));
    await until(() => diffMessage() !== undefined, "the staged changes in the chat", 30_000);
    const message = diffMessage()!;
    const [apply, discard] = [button(message, "Apply"), button(message, "Discard")];
    const [task] = await cluster.sql<{ id: string; machine: string }[]>`SELECT id, machine FROM tasks WHERE record->>'title' = 'note'`;
    assert.equal(task?.machine, "m1");
    assert.equal(message.document!.filename, `${task!.id}.diff`);
    assert.match(message.text!, /Not applied yet: 1 change to .*m1-project, made on a copy on m1\. The diff is attached\.\nA note\.txt \(\+1 −0\)/);
    assert.match(message.document!.content.toString(), /^diff --git a\/note\.txt b\/note\.txt\n[\s\S]*\n\+from the task\n/, "the diff of m1's copy");
    assert.equal(existsSync(join(folder, "note.txt")), false, "nothing in the folder before Apply");

    // m1 sleeps: the press waits for it, and the chat is told.
    m1.daemon!.child.kill("SIGSTOP");
    await eventually(async () => (await cluster.sql<{ silent: boolean }[]>`SELECT heartbeat < now() - interval '3 seconds' AS silent FROM machines WHERE name = 'm1'`)[0]!.silent, (silent) => silent, 30_000);
    const replies = (part: string) => cluster.telegram.messages(ALICE.id).filter((entry) => entry.text?.includes(part));
    cluster.telegram.pressButton(ALICE, message.message_id, apply);
    await until(() => replies("waits for it and is done when it is back").length === 1, "the chat told the apply waits for m1", 30_000);
    assert.match(replies("waits for it")[0]!.text!, new RegExp(`^⏳ m1, which holds task ${task!.id}'s copy, is silent \\(no heartbeat for \\d+ s: asleep or gone\\): the apply waits for it`));
    assert.deepEqual(cluster.telegram.messages(ALICE.id).find((entry) => entry.message_id === message.message_id)!.reply_markup?.inline_keyboard.flat() ?? [], [], "the buttons are gone");
    // Pressed twice (another copy of the message, a double tap): the second adds nothing.
    cluster.telegram.pressButton(ALICE, message.message_id, apply);
    await until(() => replies("this press adds nothing").length === 1, "the second press answered");
    const [waiting] = await cluster.sql<{ press: { action: string; by: string; chat: number; message: number } }[]>`SELECT staged_action AS press FROM tasks WHERE id = ${task!.id}`;
    assert.deepEqual(waiting?.press, { action: "apply", by: "telegram:@alice", chat: ALICE.id, message: message.message_id });
    assert.equal(existsSync(join(folder, "note.txt")), false, "nothing applied while m1 sleeps");

    m1.daemon!.child.kill("SIGCONT");
    await until(() => replies("✅ applied 1 change to").length === 1, "the apply's outcome in the chat", 30_000);
    assert.match(replies("✅ applied 1 change to")[0]!.text!, /m1-project\. \(telegram:@alice, on m1\)$/);
    assert.equal(readFileSync(join(folder, "note.txt"), "utf8"), "from the task\n", "the change in m1's folder");
    assert.equal(existsSync(join(m1.home, "stage", task!.id)), false, "the copy is gone once applied");

    // A press after it was applied: m1 says there is no copy any more.
    cluster.telegram.pressButton(ALICE, message.message_id, discard);
    await until(() => replies("has no staged copy").length === 1, "the stale press answered by m1", 30_000);
    assert.match(replies("has no staged copy")[0]!.text!, /^⚠️ task .* has no staged copy \(.*applied or discarded\) \(telegram:@alice, on m1\)$/);
    assert.equal(replies("✅ applied").length, 1, "applied once");
    assert.equal(readFileSync(join(folder, "note.txt"), "utf8"), "from the task\n");
  });

  it("keeps Apply and Discard when the shared store does not answer the press, and says so on the button, never the store's error", async () => {
    const cluster = await startTelegramMachines(["m1", "m2"]);
    cleanup = cluster.cleanup;
    const [m1, m2] = cluster.machines as [Machine, Machine];
    const config = join(m1.home, "config.yaml");
    writeFileSync(config, readFileSync(config, "utf8").replace(`stage: "off"`, `stage: "auto"`));
    cluster.api.respondWith((request) =>
      JSON.stringify(request.body.messages).includes("tool_result") ? text("wrote the note") : { content: [{ type: "tool_use", name: "write_file", input: { path: "note.txt", content: "from the task\n" } }] },
    );
    await m2.start();
    await until(() => runsBot(m2) === 1, "m2 to run the bot");
    await m1.start();
    await until(() => m1.daemon!.output().includes("Telegram: machine m2 runs the bot"), "m1 to see m2 run the bot");
    const folder = join(m1.home, "..", "m1-project");
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(m1.home, "inbox", "note.md"), `---\ntitle: note\nworkdir: ${folder}\nnotify: true\n---\nWrite a note.\n`);
    const diffMessage = () => cluster.telegram.messages(ALICE.id).find((message) => message.document?.filename.endsWith(".diff"));
    await until(() => diffMessage() !== undefined, "the staged changes in the chat", 30_000);
    const message = diffMessage()!;
    const apply = button(message, "Apply");
    const buttons = () => cluster.telegram.messages(ALICE.id).find((entry) => entry.message_id === message.message_id)!.reply_markup?.inline_keyboard.flat().map((entry) => entry.text) ?? [];

    // The store goes away as the press is asked of m1: the server ends the connection that writes it (the bot had taken the update).
    await cluster.sql`CREATE FUNCTION drop_press() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$`;
    await cluster.sql`CREATE TRIGGER drop_press BEFORE UPDATE OF staged_action ON tasks FOR EACH ROW WHEN (NEW.staged_action IS NOT NULL) EXECUTE FUNCTION drop_press()`;
    const answered = () => cluster.telegram.callsOf("answerCallbackQuery").map((call) => String(call.params.text));
    cluster.telegram.pressButton(ALICE, message.message_id, apply);
    await until(() => answered().length === 1, "the press answered");
    assert.equal(answered()[0], "Not done: the shared store (PostgreSQL) does not answer: press again when it is back.");
    assert.deepEqual(buttons(), ["Apply", "Discard"], "the buttons stay, to press again");
    const chat = cluster.telegram.messages(ALICE.id).map((entry) => entry.text ?? "").join("\n");
    assert.doesNotMatch(chat, /CONNECTION_CLOSED|127\.0\.0\.1|did not work/, "the store's error is not in the chat");
    const trace = readFileSync(join(m2.home, "logs", "trace.jsonl"), "utf8");
    assert.match(trace, /staged changes of [^:]+: apply pressed by telegram:@alice failed: .*CONNECTION_CLOSED/, "the error is in the bot machine's trace");

    // Back: the same button does it.
    await cluster.sql`DROP TRIGGER drop_press ON tasks`;
    cluster.telegram.pressButton(ALICE, message.message_id, apply);
    const replies = (part: string) => cluster.telegram.messages(ALICE.id).filter((entry) => entry.text?.includes(part));
    await until(() => replies("✅ applied 1 change to").length === 1, "the apply's outcome in the chat", 30_000);
    assert.equal(readFileSync(join(folder, "note.txt"), "utf8"), "from the task\n");
    assert.deepEqual(buttons(), [], "the buttons go once the press was done");
  });

  it("routes Apply under a Telegram task's diff, delivered by the bot's machine, to the machine that ran it", async () => {
    const cluster = await startTelegramMachines(["m1", "m2"]);
    cleanup = cluster.cleanup;
    const [m1, m2] = cluster.machines as [Machine, Machine];
    // Every task works on a staged copy, its fresh workspace too (decided where it is sent: on m2).
    for (const machine of [m1, m2]) {
      const config = join(machine.home, "config.yaml");
      writeFileSync(config, readFileSync(config, "utf8").replace(`stage: "off"`, `stage: "on"`));
    }
    cluster.api.respondWith((request) => {
      const body = JSON.stringify(request.body.messages);
      if (body.includes("HOLD-ME")) return { stall: true };
      return body.includes("tool_result") ? text("wrote the note") : { content: [{ type: "tool_use", name: "write_file", input: { path: "note.txt", content: "from the phone\n" } }] };
    });
    await m2.start();
    await until(() => runsBot(m2) === 1, "m2 to run the bot");
    await m1.start();
    await until(() => m1.daemon!.output().includes("Telegram: machine m2 runs the bot"), "m1 to see m2 run the bot");
    // m2 (one task at a time) is kept busy, so m1 takes the Telegram task.
    const busy = join(m2.home, "..", "m2-busy");
    mkdirSync(busy, { recursive: true });
    writeFileSync(join(m2.home, "inbox", "busy.md"), `---\ntitle: busy\nworkdir: ${busy}\n---\nHOLD-ME\n`);
    await until(() => cluster.api.requests.some((request) => JSON.stringify(request.body).includes("HOLD-ME")), "m2 to be busy");

    cluster.telegram.sendText(ALICE, "Write a note");
    const diffMessage = () => cluster.telegram.messages(ALICE.id).find((message) => message.document?.filename.endsWith(".diff"));
    await until(() => diffMessage() !== undefined, "the staged changes in the chat", 30_000);
    const [task] = await cluster.sql<{ id: string; machine: string }[]>`SELECT id, machine FROM tasks WHERE record->>'origin' = 'telegram'`;
    assert.equal(task?.machine, "m1");
    const message = diffMessage()!;
    assert.match(message.document!.content.toString(), /\+from the phone\n/);
    const note = join(m1.home, "workspace", task!.id, "note.txt");
    assert.equal(existsSync(note), false, "nothing in m1's folder before Apply");

    const replies = (part: string) => cluster.telegram.messages(ALICE.id).filter((entry) => entry.text?.includes(part));
    cluster.telegram.pressButton(ALICE, message.message_id, button(message, "Apply"));
    await until(() => replies("✅ applied 1 change to").length === 1, "the apply's outcome in the chat", 30_000);
    assert.match(replies(`applying task ${task!.id}'s changes on m1`)[0]!.text!, /^⏳ applying .* on m1, which holds the copy; its answer follows \(telegram:@alice\)$/);
    assert.match(replies("✅ applied 1 change to")[0]!.text!, /\(telegram:@alice, on m1\)$/);
    assert.equal(readFileSync(note, "utf8"), "from the phone\n", "the change in the folder on m1");
  });
});
