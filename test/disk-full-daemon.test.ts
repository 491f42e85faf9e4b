import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { nightshift, startDaemonProcess, until } from "./support/cli.ts";
import { startMessagesApi } from "./support/messages-api.ts";
import { readTasks } from "./support/state-history.ts";
import { ALICE, startTelegramHarness, texts, type TelegramHarness } from "./support/telegram-harness.ts";
import { mountSmallDisk, smallDiskSupport, type SmallDisk } from "./support/tmpfs.ts";

// The real daemon with NIGHTSHIFT_HOME on a small tmpfs: a real ENOSPC when the test fills it, a
// real EROFS when it puts a read-only mount over it. Sandbox off: these tests are about the disk.

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
const CONFIG = `sandbox:\n  mode: "off"\ntelegram:\n  allowed_users: [${ALICE.id}]\n  poll_timeout: 2s\n`;
const task = (title: string) => `---\ntitle: ${title}\n---\nDo it.\n`;
const ANSWER = "the long answer ".repeat(2000); // larger than any slack a full disk leaves in a file
const outbox = (home: string, name: string) => (existsSync(join(home, "outbox", name)) ? readFileSync(join(home, "outbox", name), "utf8") : "");
const count = (text: string, pattern: RegExp) => text.split("\n").filter((line) => pattern.test(line)).length;

/** A model answer held back until the test lets it go: the disk is filled while the model "thinks". */
function heldAnswer() {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  return { release, reply: async () => (await released, { content: [{ type: "text" as const, text: ANSWER }] }) };
}

describe("the daemon on a full disk", smallDiskSupport(), () => {
  let h: TelegramHarness | undefined;
  let disk: SmallDisk | undefined;
  afterEach(async () => {
    await h?.close();
    disk?.cleanup();
    h = undefined;
    disk = undefined;
  });

  it("says so once on Telegram and stderr, keeps the answer in hand, and finishes it and a file dropped meanwhile once space returns", async () => {
    disk = mountSmallDisk("16m");
    const home = join(disk.path, "home");
    h = await startTelegramHarness({ home, config: CONFIG });
    const held = heldAnswer();
    h.model.respondWith((request) => (JSON.stringify(request.body.messages[0]).includes("First") ? held.reply() : { content: [{ type: "text", text: "second answer" }] }));
    writeFileSync(join(home, "inbox", "first.md"), task("First"));
    await h.until(() => h!.model.requests.length === 1, "the first model request");
    writeFileSync(join(home, "inbox", ".second.md.part"), task("Second")); // ignored until renamed, which takes no space
    disk.fill();
    renameSync(join(home, "inbox", ".second.md.part"), join(home, "inbox", "second.md"));
    held.release();
    await h.until(() => /THE DISK IS FULL/.test(h!.output()), "the disk-full notice");
    await h.until(() => texts(h!, ALICE.id).some((line) => /THE DISK IS FULL/.test(line)), "the notice on Telegram");
    h.clock.advance(30_000); // a while on the full disk: tries again, says nothing more
    assert.equal(outbox(home, "first.md"), "");
    assert.equal(readTasks(home).find((candidate) => candidate.title === "First")?.state, "running");

    disk.unfill();
    await h.until(() => outbox(home, "first.md") !== "" && outbox(home, "second.md") !== "", "both results");
    assert.match(outbox(home, "first.md"), /^---\nstatus: done\n[\s\S]*\nturns: 1\n[\s\S]*the long answer the long answer/);
    assert.match(outbox(home, "second.md"), /status: done[\s\S]*second answer/);
    assert.equal(h.model.requests.length, 2, "the first task's model was asked once");
    await h.until(() => texts(h!, ALICE.id).some((line) => /Disk writes work again/.test(line)), "the all-clear on Telegram");
    assert.equal(count(h.output(), /THE DISK IS FULL/), 1, h.output());
    assert.equal(texts(h, ALICE.id).filter((line) => /THE DISK IS FULL/.test(line)).length, 1);
    assert.deepEqual(readTasks(home).map((candidate) => candidate.state).sort(), ["done", "done"]);
  });
});

const startDaemon = (env: NodeJS.ProcessEnv) => startDaemonProcess(env, (child) => cleanups.push(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL")));

describe("the daemon process on a full or read-only disk", smallDiskSupport(), () => {
  async function setup(config = "") {
    const api = await startMessagesApi();
    cleanups.push(() => api.close());
    const disk = mountSmallDisk("16m");
    cleanups.push(() => disk.cleanup());
    const home = join(disk.path, "home");
    mkdirSync(home);
    writeFileSync(join(home, "config.yaml"), `sandbox:\n  mode: "off"\n${config}`);
    const env = { ...process.env, NIGHTSHIFT_HOME: home, ANTHROPIC_BASE_URL: api.url, ANTHROPIC_API_KEY: "sk-ant-disk-test", TELEGRAM_BOT_TOKEN: "" };
    return { api, disk, home, env, door: join(disk.door, "home") };
  }

  it("answers status and stops on SIGTERM while the disk is full, and the next start finishes the task", async () => {
    const { api, disk, home, env } = await setup();
    const held = heldAnswer();
    api.respondWith(() => held.reply());
    const first = await startDaemon(env);
    writeFileSync(join(home, "inbox", "task.md"), task("Patient"));
    await until(() => api.requests.length === 1, "the model request");
    disk.fill();
    held.release();
    await until(() => /THE DISK IS FULL/.test(first.output()), "the disk-full notice");
    const status = await nightshift(["status"], env);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /daemon running[\s\S]*running\s.*Patient/);
    first.child.kill("SIGTERM");
    assert.equal(await first.exited, 0, first.output());
    assert.doesNotMatch(first.output(), /unexpected error|Unhandled|ERR_UNHANDLED/);

    disk.unfill();
    api.respondWith(() => ({ content: [{ type: "text", text: "answered after the restart" }] }));
    const second = await startDaemon(env);
    await until(() => outbox(home, "task.md") !== "", "the result after the restart");
    assert.match(outbox(home, "task.md"), /status: done[\s\S]*answered after the restart/);
    second.child.kill("SIGTERM");
    assert.equal(await second.exited, 0);
  });

  it("waits out a read-only home: an answer in hand, a queued task and a file dropped meanwhile are all done once it is writable", async () => {
    const { api, disk, home, env, door } = await setup("daemon:\n  concurrency: 1\n");
    const held = heldAnswer();
    api.respondWith((request) => (JSON.stringify(request.body.messages[0]).includes("First") ? held.reply() : { content: [{ type: "text", text: "written at last" }] }));
    const daemon = await startDaemon(env);
    writeFileSync(join(home, "inbox", "first.md"), task("First"));
    writeFileSync(join(home, "inbox", "second.md"), task("Second"));
    await until(() => api.requests.length === 1 && readTasks(home).length === 2, "the first model request, the second task queued");
    disk.readOnly();
    writeFileSync(join(door, "inbox", "third.md"), task("Third")); // through the writable door: the daemon sees a read-only home
    held.release();
    await until(() => /IS READ-ONLY/.test(daemon.output()), "the read-only notice");
    const status = await nightshift(["status"], env);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /daemon running/);
    disk.writable();
    await until(() => ["first.md", "second.md", "third.md"].every((name) => outbox(home, name) !== ""), "the three results once writable");
    assert.match(outbox(home, "first.md"), /status: done[\s\S]*the long answer/);
    assert.match(outbox(home, "third.md"), /status: done[\s\S]*written at last/);
    assert.equal(api.requests.length, 3, "each task's model asked once");
    assert.equal(count(daemon.output(), /IS READ-ONLY/), 1, daemon.output());
    daemon.child.kill("SIGTERM");
    assert.equal(await daemon.exited, 0, daemon.output());
  });
  it("stops on SIGTERM while the home is read-only, and the next start writes the result it held, without asking the model again", async () => {
    const { api, disk, home, env } = await setup();
    const held = heldAnswer();
    api.respondWith(() => held.reply());
    const first = await startDaemon(env);
    writeFileSync(join(home, "inbox", "task.md"), task("Held"));
    await until(() => api.requests.length === 1, "the model request");
    disk.readOnly(); // the open session log still takes the answer; the result file cannot be made
    held.release();
    await until(() => /IS READ-ONLY/.test(first.output()), "the read-only notice");
    first.child.kill("SIGTERM");
    assert.equal(await first.exited, 0, first.output());
    assert.doesNotMatch(first.output(), /unexpected error|Unhandled/);
    disk.writable();
    const second = await startDaemon(env);
    await until(() => outbox(home, "task.md") !== "", "the result after the restart");
    assert.match(outbox(home, "task.md"), /status: done[\s\S]*the long answer/);
    assert.equal(api.requests.length, 1);
    second.child.kill("SIGTERM");
    assert.equal(await second.exited, 0);
  });
});
