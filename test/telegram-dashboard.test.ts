import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { ALICE, MALLORY, startTelegramHarness, texts, type TelegramHarness } from "./support/telegram-harness.ts";

let h: TelegramHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

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
