import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, describe, it } from "node:test";
import { createApprovalStore } from "../runtime/approvals.ts";
import { systemClock } from "../runtime/clock.ts";
import { tempDir } from "./support/home.ts";
import { agent, nightshift, startDaemonProcess, until } from "./support/cli.ts";
import { startMessagesApi, type MessagesApi } from "./support/messages-api.ts";
import { needs } from "./support/prerequisites.ts";
import { ALICE, startTelegramHarness, texts, type TelegramHarness } from "./support/telegram-harness.ts";

/**
 * A real daemon runs an inbox task whose bash command appends a line to a file outside NIGHTSHIFT_HOME,
 * and is killed (SIGKILL) during the next model request. Then a file is damaged and a second daemon
 * starts: the file shows how many times the command ran.
 */

interface Setup {
  api: MessagesApi;
  home: string;
  counter: string;
  env: NodeJS.ProcessEnv;
  daemons: ChildProcess[];
  cleanup(): Promise<void>;
}

async function setup(): Promise<Setup> {
  const api = await startMessagesApi();
  const dir = tempDir("nightshift-damage-", "/var/tmp");
  const home = join(dir.path, "home");
  const work = join(dir.path, "work");
  mkdirSync(home);
  mkdirSync(work);
  writeFileSync(join(home, "config.yaml"), 'tasks:\n  stage: "off"\n');
  const env = { ...process.env, NIGHTSHIFT_HOME: home, ANTHROPIC_BASE_URL: api.url, ANTHROPIC_API_KEY: "sk-ant-damage-test" };
  const daemons: ChildProcess[] = [];
  return {
    api,
    home,
    counter: join(work, "counter.txt"),
    env,
    daemons,
    async cleanup() {
      for (const daemon of daemons) if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill("SIGKILL");
      await api.close();
      dir.cleanup();
    },
  };
}

const startDaemon = (s: Setup) => startDaemonProcess(s.env, (child) => s.daemons.push(child));

/** The command ran once, and the daemon was killed while it waited for the model's next reply. Returns the session id. */
async function interruptedTask(s: Setup): Promise<string> {
  let stalled = false;
  s.api.respondWith(agent(`echo ran >> ${s.counter}; echo counted`, () => (stalled ? undefined : ((stalled = true), { stall: true }))));
  const first = await startDaemon(s);
  writeFileSync(join(s.home, "inbox", "count.md"), `---\ntitle: Count\nworkdir: ${join(s.counter, "..")}\n---\nCount once.\n`);
  await until(() => stalled, "the model request after the command");
  first.child.kill("SIGKILL");
  await first.exited;
  assert.equal(readFileSync(s.counter, "utf8"), "ran\n");
  return sessions(s.home)[0]!;
}

const sessions = (home: string) => readdirSync(join(home, "sessions")).filter((name) => name.endsWith(".jsonl")).map((name) => name.slice(0, -".jsonl".length));
const db = (home: string) => join(home, "state", "nightshift.db");

let current: Setup | undefined;
let telegram: TelegramHarness | undefined;
afterEach(async () => {
  await current?.cleanup();
  current = undefined;
  await telegram?.close();
  telegram = undefined;
});

describe("an interrupted task's command after a damaged state", () => {
  it("runs once when the state file was emptied: the file is moved aside and the task resumed", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    const id = await interruptedTask(s);
    for (const suffix of ["-wal", "-shm"]) rmSync(db(s.home) + suffix, { force: true });
    writeFileSync(db(s.home), "");

    const second = await startDaemon(s);
    await until(() => existsSync(join(s.home, "outbox", "count.md")), "the result");
    assert.equal(readFileSync(s.counter, "utf8"), "ran\n");
    assert.deepEqual(sessions(s.home), [id]);
    assert.match(second.output(), /! STATE FILE DAMAGED \(the file is empty \(0 bytes\)\): moved to .*nightshift\.db\.damaged-/);
    assert.match(readFileSync(join(s.home, "outbox", "count.md"), "utf8"), /status: done[\s\S]*finished after: counted/);
  });

  it("runs once when the state lost its write-ahead log: the task is recorded again from its session log", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    const id = await interruptedTask(s);
    rmSync(db(s.home) + "-wal"); // every change since the last checkpoint, the task among them

    const second = await startDaemon(s);
    await until(() => existsSync(join(s.home, "outbox", "count.md")), "the result");
    assert.equal(readFileSync(s.counter, "utf8"), "ran\n");
    assert.deepEqual(sessions(s.home), [id]);
    assert.match(second.output(), new RegExp(`! THE STATE HAD LOST the task of inbox/\\.done/count\\.md \\(${id}\\); recorded again from sessions/${id}\\.jsonl: it is resumed from its log`));
  });

  it("runs once when the task's record does not read: it is named, not run, and its file not queued again", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    const id = await interruptedTask(s);
    const file = new DatabaseSync(db(s.home));
    file.prepare("UPDATE tasks SET record = 'null' WHERE id = ?").run(id);
    file.close();

    const second = await startDaemon(s);
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // what a re-queued file would take to run
    assert.equal(readFileSync(s.counter, "utf8"), "ran\n");
    assert.deepEqual(sessions(s.home), [id]);
    assert.match(second.output(), new RegExp(`! A QUEUED OR RUNNING TASK IN .*nightshift\\.db DOES NOT READ and is not run: ${id}: `));
  });

  it("runs once when the state and the session log are both damaged: the task is failed and its file held", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    const id = await interruptedTask(s);
    const log = join(s.home, "sessions", `${id}.jsonl`);
    const lines = readFileSync(log, "utf8").split("\n");
    lines[3] = lines[3]!.slice(0, 30) + lines[4]; // a torn line with the next event glued to it
    writeFileSync(log, lines.join("\n"));
    for (const suffix of ["-wal", "-shm"]) rmSync(db(s.home) + suffix, { force: true });
    writeFileSync(db(s.home), "not a database ".repeat(300));

    const second = await startDaemon(s);
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // what a re-queued file would take to run
    const status = await nightshift(["status"], s.env);
    assert.doesNotMatch(status.stdout, / (queued|running) /, "the inbox file is not queued again");
    assert.equal(readFileSync(s.counter, "utf8"), "ran\n");
    assert.deepEqual(sessions(s.home), [id]);
    assert.match(status.stdout, new RegExp(`${id} failed .* Count\\n +its session log is damaged`));
    assert.match(second.output(), /! STATE FILE DAMAGED \(file is not a database\)/);
    assert.match(second.output(), new RegExp(`! SESSION LOG DAMAGED \\(.*${id}\\.jsonl:4: damaged line\\): task ${id} is failed, not resumed`));
  });
});

describe("an interrupted task's command after a damaged session log", () => {
  it("runs once: the task fails naming the damaged line, its log kept as it is", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    const id = await interruptedTask(s);
    const log = join(s.home, "sessions", `${id}.jsonl`);
    const lines = readFileSync(log, "utf8").split("\n");
    lines[3] = lines[3]!.slice(0, 30) + lines[4]; // a torn line with the next event glued to it
    const damaged = lines.join("\n");
    writeFileSync(log, damaged);

    const second = await startDaemon(s);
    assert.match(second.output(), /resuming 1 task/);
    await until(() => existsSync(join(s.home, "outbox", "count.md")), "the result");
    assert.equal(readFileSync(s.counter, "utf8"), "ran\n");
    assert.deepEqual(sessions(s.home), [id]);
    assert.match(readFileSync(join(s.home, "outbox", "count.md"), "utf8"), new RegExp(`status: failed[\\s\\S]*its session log is damaged \\(.*${id}\\.jsonl:4: damaged line\\)`));
    assert.equal(readFileSync(log, "utf8"), damaged, "the log is kept as it is");
  });
});

describe("a damaged approval answer file with the daemon running", () => {
  it("is moved aside by the daemon, which says so, and nightshift approve answers the approval", async () => {
    const s = (current = await setup());
    const daemon = await startDaemon(s);
    const approvals = join(s.home, "state", "approvals");
    const store = createApprovalStore(approvals, { clock: systemClock, expireMs: 3_600_000 });
    const record = store.create({ session: "s1", tool_use_id: "t1", tool: "bash", input: {}, summary: "run `make deploy`", kind: "command", target: "make deploy", reason: "rule asks first" });
    writeFileSync(join(approvals, `${record.id}.answer.json`), "\u0000\u0000\u0000");
    const approved = await nightshift(["approve", record.id], s.env);
    assert.equal(approved.stdout, "run `make deploy`: allowed once.\n", approved.stderr);
    assert.equal(store.answerOf(record.id)?.decision, "once");
    await until(() => daemon.output().includes("APPROVAL FILE DAMAGED"), "the daemon to say so");
    assert.match(daemon.output(), new RegExp(`! APPROVAL FILE DAMAGED \\(.*\\): .*${record.id}\\.answer\\.json moved to .*\\.damaged-`));
  });
});

describe("a damaged state file on Telegram", () => {
  it("is told to the people using the bot, not only on stderr", async () => {
    const h = (telegram = await startTelegramHarness());
    await h.until(() => h.telegram.commands.length > 0, "the bot to start");
    await h.daemon.stop();
    for (const suffix of ["-wal", "-shm"]) rmSync(db(h.home) + suffix, { force: true });
    writeFileSync(db(h.home), "not a database ".repeat(300));
    await h.restart();
    await h.until(() => texts(h, ALICE.id).some((line) => line.includes("STATE FILE DAMAGED")), "the notice");
    assert.match(texts(h, ALICE.id).find((line) => line.includes("STATE FILE DAMAGED"))!, /file is not a database\): moved to .*nightshift\.db\.damaged-/);
  });
});

describe("a damaged journal line at the daemon's start", () => {
  it("is said on stderr and on Telegram, and kept", async () => {
    const h = (telegram = await startTelegramHarness());
    await h.until(() => h.telegram.commands.length > 0, "the bot to start");
    await h.daemon.stop();
    mkdirSync(join(h.home, "journal"), { recursive: true });
    const file = join(h.home, "journal", "2026-11-24.jsonl");
    writeFileSync(file, "{not json\n");
    await h.restart();
    assert.match(h.output(), /! JOURNAL LINE DAMAGED: .*2026-11-24\.jsonl line 1 does not read \(not JSON/);
    await h.until(() => texts(h, ALICE.id).some((line) => line.includes("JOURNAL LINE DAMAGED")), "the notice");
    assert.equal(readFileSync(file, "utf8"), "{not json\n");
  });
});
