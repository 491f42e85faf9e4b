import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import type { RecordedRequest, Reply } from "./support/messages-api.ts";
import { ALICE, startTelegramHarness, type TelegramHarness } from "./support/telegram-harness.ts";

let h: TelegramHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const CONFIG = `telegram:\n  allowed_users: [${ALICE.id}]\n  poll_timeout: 2s\ndaemon:\n  timezone: UTC\n`;
const HOUR = 3_600_000;
const text = (reply: string): Reply => ({ content: [{ type: "text", text: reply }] });
const texts = (harness: TelegramHarness) => harness.telegram.messages(ALICE.id).map((message) => message.text ?? "");
const isConsolidator = (request: RecordedRequest) => /You keep the long-term memory of Nightshift/.test(JSON.stringify(request.body.system ?? ""));
const lastContent = (request: RecordedRequest) => JSON.stringify(request.body.messages.at(-1));

/** The main agent: remember the cat, or recall it, depending on the task. */
function agent(request: RecordedRequest): Reply {
  const task = JSON.stringify(request.body.messages[0]);
  const done = lastContent(request).includes("tool_result");
  if (/Remember my cat/.test(task)) return done ? text("noted the cat") : { content: [{ type: "tool_use", name: "remember", input: { note: "The user's cat is called Miso.", source: "user" } }] };
  if (/What is my cat called/.test(task)) return done ? text(`recalled: ${/Miso/.test(lastContent(request)) ? "Miso" : "nothing"}`) : { content: [{ type: "tool_use", name: "recall", input: { query: "cat called" } }] };
  return text(`plain answer; memory in prompt: ${/Miso/.test(JSON.stringify(request.body.system)) ? "yes" : "no"}`);
}

describe("memory", () => {
  it("journals a remember note and finds it again with recall in a later task", async () => {
    h = await startTelegramHarness({ config: CONFIG });
    h.model.respondWith(agent);
    h.telegram.sendText(ALICE, "Remember my cat");
    await h.until(() => texts(h!).some((line) => line.includes("noted the cat")), "the first task");
    const journal = readdirSync(join(h.home, "journal")).map((file) => readFileSync(join(h!.home, "journal", file), "utf8")).join("");
    const note = journal.split("\n").filter(Boolean).map((line) => JSON.parse(line)).find((entry) => entry.kind === "note");
    assert.equal(note.text, "The user's cat is called Miso.");
    assert.equal(note.source, "user");
    assert.ok(journal.includes('"kind":"request"') && journal.includes('"kind":"outcome"'), "the task's request and outcome are journaled too");
    h.telegram.sendText(ALICE, "What is my cat called?");
    await h.until(() => texts(h!).some((line) => line.includes("recalled: Miso")), "the recall");
  });

  it("consolidates nightly on the small model into MEMORY.md with sources, shows it in /memory, undoes it, and sends the digest", async () => {
    h = await startTelegramHarness({ config: CONFIG });
    let consolidations = 0;
    h.model.respondWith((request) => {
      if (!isConsolidator(request)) return agent(request);
      consolidations++;
      const source = /\[(\d{4}-\d{2}-\d{2}#\d+)\][^\n]*? note by user/.exec(String(request.body.messages.at(-1).content))?.[1];
      return text(JSON.stringify({ edits: source ? [{ op: "add", text: "The user's cat is called Miso.", sources: [source] }] : [] }));
    });
    h.telegram.sendText(ALICE, "Remember my cat");
    await h.until(() => texts(h!).some((line) => line.includes("noted the cat")), "the task");
    assert.equal(consolidations, 0);

    h.clock.advance(18 * HOUR + 60_000); // past 03:00 the next day
    await h.until(() => consolidations === 1 && existsSync(join(h!.home, "MEMORY.md")) && readFileSync(join(h!.home, "MEMORY.md"), "utf8").includes("Miso"), "the consolidation");
    const memory = readFileSync(join(h.home, "MEMORY.md"), "utf8");
    assert.match(memory, /^- The user's cat is called Miso\. <!-- m:[a-z0-9]+ sources:\d{4}-\d{2}-\d{2}#\d+ added:/m);

    h.telegram.sendText(ALICE, "Say anything");
    await h.until(() => texts(h!).some((line) => line.includes("memory in prompt: yes")), "a session that sees the memory");

    h.telegram.sendText(ALICE, "/memory");
    await h.until(() => texts(h!).some((line) => /Memory.*1 entries/s.test(line) && line.includes("Miso") && /added: The user's cat/.test(line)), "/memory with its last change");

    h.clock.advance(4 * HOUR); // 07:00: the digest
    await h.until(() => texts(h!).some((line) => line.includes("Digest")), "the digest");
    const digest = texts(h).find((line) => line.includes("Digest"))!;
    assert.match(digest, /Tasks.*2 done/);
    assert.match(digest, /added: The user's cat is called Miso/);

    h.telegram.sendText(ALICE, "/memory undo");
    await h.until(() => texts(h!).some((line) => line.includes("back to its previous version")), "the undo");
    assert.ok(!readFileSync(join(h.home, "MEMORY.md"), "utf8").includes("Miso"), "the previous MEMORY.md is back");
    assert.ok(readdirSync(join(h.home, "memory-history")).length >= 2, "both versions are kept");

    h.clock.advance(20 * HOUR); // the next night: the tasks since the last run are new entries (nothing to learn from them)
    await h.until(() => consolidations === 2, "the second night's run");
    await h.until(() => JSON.parse(readFileSync(join(h!.home, "state", "memory.json"), "utf8")).runs.length >= 2, "its record");
    const before = consolidations;
    h.clock.advance(24 * HOUR); // a night with nothing new since
    await h.until(() => JSON.parse(readFileSync(join(h!.home, "state", "memory.json"), "utf8")).runs.some((run: { status: string }) => run.status === "nothing-new"), "the third night's run");
    assert.equal(consolidations, before, "a night with nothing new makes no model call");
  });
});
