import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { resultMessages } from "../bot/follow.ts";
import { taskPageLink } from "../bot/format.ts";
import type { SessionResult } from "../runtime/index.ts";
import { parseHtml } from "./support/bot-api.ts";
import { ALICE, approvalMessages, button, MALLORY, startTelegramHarness, text, texts, writeTo, type TelegramHarness } from "./support/telegram-harness.ts";
import { freePort } from "./support/ports.ts";

let h: TelegramHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** A login POST as the page's button sends it (node:http: fetch would drop the Host header). */
function spend(port: number, secret: string): Promise<number> {
  const host = `127.0.0.1:${port}`;
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/login", method: "POST", headers: { host, origin: `http://${host}`, "content-type": "application/json" } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end(JSON.stringify({ secret }));
  });
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

const config = (port: number, extra = "") => `telegram:\n  allowed_users: [${ALICE.id}]\n  poll_timeout: 2s\ndashboard:\n  port: ${port}\n${extra}`;

describe("Telegram: /dashboard", () => {
  it("sends a paired user a one-time login link with previews off; it signs in once through the daemon's dashboard and is stored nowhere", async () => {
    const port = await freePort();
    h = await startTelegramHarness({ config: config(port) });
    await h.until(() => h!.output().includes("Dashboard: "), "the dashboard to listen");
    h.telegram.sendText(ALICE, "/dashboard");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("/login#")), "the login link");
    const call = h.sent("sendMessage", ALICE.id).find((sent) => /\/login#/.test(sent.params.text))!;
    assert.deepEqual(call.params.link_preview_options, { is_disabled: true }, "a preview would fetch the link and spend it");
    const message = texts(h, ALICE.id).find((line) => line.includes("/login#"))!;
    const secret = new RegExp(`http://127\\.0\\.0\\.1:${port}/login#([A-Za-z0-9_-]{43})`).exec(message)?.[1];
    assert.ok(secret, message);
    assert.match(message, /works once/);
    assert.match(message, /opens there, or through a tunnel/, "a loopback link says where it opens");

    assert.equal(await spend(port, secret), 200, "the link signs in");
    assert.equal(await spend(port, secret), 403, "once");

    const stored = [...filesUnder(join(h.home, "state")), join(h.home, "logs", "trace.jsonl")];
    assert.ok(stored.some((file) => file.includes(join("state", "telegram"))), "the bot's state was looked at");
    for (const file of stored) assert.ok(!readFileSync(file, "utf8").includes(secret), `the secret is in ${file}`);
  });

  it("links to dashboard.public_url when it is set", async () => {
    const port = await freePort();
    h = await startTelegramHarness({ config: config(port, "  public_url: https://ns.example.com\n") });
    h.telegram.sendText(ALICE, "/dashboard");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("/login#")), "the login link");
    const message = texts(h, ALICE.id).find((line) => line.includes("/login#"))!;
    assert.match(message, /https:\/\/ns\.example\.com\/login#[A-Za-z0-9_-]{43}/);
    assert.doesNotMatch(message, /127\.0\.0\.1|tunnel/);
  });

  it("is in the bot's command list and /help; a stranger gets nothing and no link is made", async () => {
    const port = await freePort();
    h = await startTelegramHarness({ config: config(port) });
    await h.until(() => h!.telegram.commands.length > 0, "the command list");
    assert.ok(h.telegram.commands.some((command) => command.command === "dashboard"), JSON.stringify(h.telegram.commands));
    h.telegram.sendText(MALLORY, "/dashboard");
    h.telegram.sendText(ALICE, "/help");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("/dashboard")), "the help");
    assert.deepEqual(h.sent("sendMessage", MALLORY.id), []);
    assert.deepEqual(readdirSync(join(h.home, "state", "dashboard", "links")).filter((name) => name.endsWith(".json")), []);
  });
});

describe("Telegram: links to a task's page", () => {
  /** An inbox task that asks for an approval (answered) and then finishes: its notifications, as sent. */
  async function inboxTask(publicUrl?: string) {
    const port = await freePort();
    h = await startTelegramHarness({ config: config(port, publicUrl ? `  public_url: ${publicUrl}\n` : "") });
    h.model.script(writeTo(join(h.home, "..", "outside", "x.txt")), text("chores done"));
    await h.until(() => h!.telegram.commands.length > 0, "the bot to start");
    writeFileSync(join(h.home, "inbox", "chores.md"), "---\ntitle: Chores\n---\nDo the chores.\n");
    await h.until(() => approvalMessages(h!).length === 1, "the approval on the phone");
    const question = approvalMessages(h)[0]!;
    h.telegram.pressButton(ALICE, question.message_id, button(question, "Allow once"));
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("chores done")), "the result");
    await h.until(() => /Allowed once/.test(approvalMessages(h!)[0]!.text!), "the approval edited to its decision");
    const id = /<code>([^<]+)<\/code>/.exec(h.sent("sendMessage", ALICE.id).find((call) => /chores done/.test(call.params.text))!.params.text)![1]!;
    const approval = h.sent("sendMessage", ALICE.id).find((call) => /Approval needed/.test(call.params.text))!;
    const result = h.sent("sendMessage", ALICE.id).find((call) => /chores done/.test(call.params.text))!;
    const decision = h.sent("editMessageText", ALICE.id).find((call) => /Allowed once/.test(call.params.text))!;
    return { id, approval, result, decision };
  }

  it("links the approval request and the result of a task to its page at dashboard.public_url, with link previews off", async () => {
    const { id, approval, result, decision } = await inboxTask("https://ns.example.com");
    const link = `<a href="https://ns.example.com/tasks/${encodeURIComponent(id)}">Open on the dashboard</a>`;
    for (const [what, call] of [["the approval request", approval], ["the approval's decision", decision], ["the result", result]] as const) {
      assert.ok(call.params.text.includes(link), `${what} links to the task's page: ${call.params.text}`);
      assert.deepEqual(call.params.link_preview_options, { is_disabled: true }, `${what}: a preview would fetch the page`);
      assert.equal(call.status, 200, `${what} is valid Telegram HTML`);
    }
    assert.ok(result.params.text.endsWith(link), "the link closes the result");
  });

  it("links the status message of a task sent from the phone, so it can be watched live, previews off", async () => {
    const port = await freePort();
    h = await startTelegramHarness({ config: config(port, "  public_url: https://ns.example.com\n") });
    h.model.script(text("counted"));
    await h.until(() => h!.telegram.commands.length > 0, "the bot to start");
    h.telegram.sendText(ALICE, "Count to two please");
    await h.until(() => texts(h!, ALICE.id).some((line) => line.includes("counted")), "the result");
    const result = h.sent("sendMessage", ALICE.id).find((call) => /counted/.test(call.params.text))!;
    const id = /<code>([^<]+)<\/code>/.exec(result.params.text)![1]!;
    const link = `<a href="https://ns.example.com/tasks/${encodeURIComponent(id)}">Open on the dashboard</a>`;
    const status = h.sent("sendMessage", ALICE.id)[0]!;
    assert.ok(status.params.text.endsWith(link), `the status message: ${status.params.text}`);
    assert.deepEqual(status.params.link_preview_options, { is_disabled: true });
    await h.until(() => h!.sent("editMessageText", ALICE.id).length > 0, "the status message's final state");
    for (const edit of h.sent("editMessageText", ALICE.id)) {
      assert.ok(edit.params.text.endsWith(link), `an edit keeps the link: ${edit.params.text}`);
      assert.deepEqual(edit.params.link_preview_options, { is_disabled: true });
    }
  });

  it("adds no link without dashboard.public_url (a loopback address would not open on the phone)", async () => {
    const { approval, result, decision } = await inboxTask();
    for (const call of [approval, result, decision]) assert.doesNotMatch(call.params.text, /<a href|dashboard|127\.0\.0\.1/);
  });

  it("puts the link whole on the last part of a long answer, each part within Telegram's limit", () => {
    const link = taskPageLink("https://ns.example.com/", "a/b&c d");
    assert.equal(link, '<a href="https://ns.example.com/tasks/a%2Fb%26c%20d">Open on the dashboard</a>', "the id is URL-encoded");
    // The last paragraph alone nearly fills a message: the link would not fit after it.
    const answer = `A short first paragraph.\n\n${"word ".repeat(818).trim()}`;
    const result: SessionResult = { status: "done", answer, turns: 1, costUsd: 0 };
    const parts = resultMessages({ id: "t1", title: "Long" }, result, link);
    assert.ok(parts.length >= 2, String(parts.length));
    parts.forEach((part, i) => {
      assert.ok("text" in part && part.text !== undefined);
      assert.ok(parseHtml(part.text).text.length <= 4096, `part ${i} fits`);
      assert.equal(part.text.includes("Open on the dashboard"), i === parts.length - 1, `part ${i}`);
    });
  });
});
