import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { readSessionLog } from "../runtime/session-log.ts";
import { tempDir } from "./support/home.ts";
import { openState } from "../tasks/state.ts";
import { readTasks, syntheticId, writeV1State } from "./support/state-history.ts";
import { agent, nightshift, startDaemonProcess, until } from "./support/cli.ts";
import { startMessagesApi, type MessagesApi } from "./support/messages-api.ts";
import { needs } from "./support/prerequisites.ts";



interface Setup {
  api: MessagesApi;
  home: string;
  env: NodeJS.ProcessEnv;
  daemons: ChildProcess[];
  cleanup(): Promise<void>;
}

async function setup(config = ""): Promise<Setup> {
  const api = await startMessagesApi();
  const dir = tempDir("nightshift-daemon-", "/var/tmp");
  const home = join(dir.path, "home");
  mkdirSync(home);
  writeFileSync(join(home, "config.yaml"), config);
  const env = { ...process.env, NIGHTSHIFT_HOME: home, ANTHROPIC_BASE_URL: api.url, ANTHROPIC_API_KEY: "sk-ant-daemon-test" };
  const daemons: ChildProcess[] = [];
  return {
    api,
    home,
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


const task = (title: string, body = "Do it.") => `---\ntitle: ${title}\n---\n${body}\n`;
const sessionIds = (home: string) => readdirSync(join(home, "sessions")).filter((name) => name.endsWith(".jsonl")).map((name) => name.slice(0, -6));

let current: Setup | undefined;
afterEach(async () => {
  await current?.cleanup();
  current = undefined;
});

describe("nightshift start", () => {
  it("turns a dropped file into a result in outbox/ and moves the file to inbox/.done/", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("echo hello from the sandbox"));
    await startDaemon(s);
    writeFileSync(join(s.home, "inbox", "greet me.md"), task("Greet me"));
    await until(() => existsSync(join(s.home, "outbox", "greet me.md")), "the result");
    const result = readFileSync(join(s.home, "outbox", "greet me.md"), "utf8");
    assert.match(result, /^---\nstatus: done\ntask: greet me\.md\n/);
    assert.match(result, /\nsession: \d{8}-\d{6}-[0-9a-f]{8}\n/);
    assert.match(result, /\nturns: 2\n/);
    assert.match(result, /\ncost_usd: [\d.]+\n/);
    assert.match(result, /\n---\nfinished after: hello from the sandbox\n$/);
    assert.equal(readFileSync(join(s.home, "inbox", ".done", "greet me.md"), "utf8"), task("Greet me"));
    assert.equal(existsSync(join(s.home, "inbox", "greet me.md")), false);
  });

  it("picks up files dropped while it was down", async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("true"));
    mkdirSync(join(s.home, "inbox"), { recursive: true });
    writeFileSync(join(s.home, "inbox", "waiting.md"), task("Waiting"));
    await startDaemon(s);
    await until(() => existsSync(join(s.home, "outbox", "waiting.md")), "the result");
  });

  it("refuses a second daemon with a clear message, leaving the first one's lock in place", async () => {
    const s = (current = await setup());
    const first = await startDaemon(s);
    const second = await nightshift(["start"], s.env);
    assert.equal(second.code, 2);
    assert.match(second.stderr, /a Nightshift daemon for .* is already running in process \d+; stop it first/);
    assert.equal(readFileSync(join(s.home, "state", "daemon.lock"), "utf8").split(" ")[0], String(first.child.pid));
  });

  it("resumes after kill -9 during a model request: the task finishes once, its finished tool call is not run again", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    let stalled = false;
    s.api.respondWith(agent("echo ran >> counter.txt; echo counted", () => (stalled ? undefined : ((stalled = true), { stall: true }))));
    const first = await startDaemon(s);
    writeFileSync(join(s.home, "inbox", "count.md"), task("Count", "Count once."));
    await until(() => stalled, "the second model request");
    first.child.kill("SIGKILL");
    await first.exited;

    await startDaemon(s);
    await until(() => existsSync(join(s.home, "outbox", "count.md")), "the result after restart");
    const [id] = sessionIds(s.home);
    const workdir = join(s.home, "workspace", id!);
    assert.equal(readFileSync(join(workdir, "counter.txt"), "utf8"), "ran\n");
    const events = await readSessionLog(join(s.home, "sessions", `${id}.jsonl`));
    assert.equal(events.filter((event) => event.type === "tool_start").length, 1);
    assert.equal(events.filter((event) => event.type === "session_end").length, 1);
    assert.match(readFileSync(join(s.home, "outbox", "count.md"), "utf8"), /status: done[\s\S]*finished after: counted/);
  });

  it("resumes after kill -9 during a tool call: the call is reported as interrupted, never re-run", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("echo started >> counter.txt; sleep 30; echo finished >> counter.txt"));
    const first = await startDaemon(s);
    writeFileSync(join(s.home, "inbox", "slow.md"), task("Slow"));
    await until(() => sessionIds(s.home).length === 1 && existsSync(join(s.home, "workspace", sessionIds(s.home)[0]!, "counter.txt")), "the command to start");
    first.child.kill("SIGKILL");
    await first.exited;

    await startDaemon(s);
    await until(() => existsSync(join(s.home, "outbox", "slow.md")), "the result after restart");
    const [id] = sessionIds(s.home);
    assert.equal(readFileSync(join(s.home, "workspace", id!, "counter.txt"), "utf8"), "started\n");
    const lastRequest = s.api.requests.at(-1)!.body;
    assert.match(lastRequest.messages.at(-1).content[0].content, /interrupted/);
  });

  it("stops on SIGTERM at a safe point and resumes the task at the next start", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("sleep 30"));
    const first = await startDaemon(s);
    writeFileSync(join(s.home, "inbox", "long.md"), task("Long"));
    await until(() => s.api.requests.length === 1 && sessionIds(s.home).length === 1, "the task to start");
    await new Promise((resolve) => setTimeout(resolve, 200)); // let the command start
    first.child.kill("SIGTERM");
    assert.equal(await first.exited, 0);
    assert.match(first.output(), /SIGTERM: stopping/);
    const [stopped] = readTasks(s.home);
    assert.equal(stopped?.state, "queued");
    assert.equal(stopped?.crashes, 0);

    s.api.respondWith(agent("true"));
    await startDaemon(s);
    await until(() => existsSync(join(s.home, "outbox", "long.md")), "the result after restart");
    assert.match(readFileSync(join(s.home, "outbox", "long.md"), "utf8"), /status: done/);
  });

  it("moves a damaged state file aside, says so, and rebuilds it from the sessions", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("true"));
    const first = await startDaemon(s);
    writeFileSync(join(s.home, "inbox", "one.md"), task("One"));
    await until(() => existsSync(join(s.home, "outbox", "one.md")), "the first result");
    first.child.kill("SIGTERM");
    await first.exited;
    writeFileSync(join(s.home, "state", "nightshift.db"), "{ this is not a database");

    const second = await startDaemon(s);
    assert.match(second.output(), /! STATE FILE DAMAGED .*moved to .*nightshift\.db\.damaged-.* and rebuilt from the session logs \(1 tasks\)/);
    const aside = readdirSync(join(s.home, "state")).find((name) => name.startsWith("nightshift.db.damaged-") && !name.endsWith("-wal") && !name.endsWith("-shm"));
    assert.equal(readFileSync(join(s.home, "state", aside!), "utf8"), "{ this is not a database");
    const status = await nightshift(["status"], s.env);
    assert.match(status.stdout, /done .* One/);
  });

  it("moves a state file of 1,000 tasks from an earlier version into SQLite and still shows the old tasks", async () => {
    const s = (current = await setup());
    writeV1State(s.home, 1_000, Date.now(), { queued: false });
    const before = await nightshift(["status"], s.env);
    assert.match(before.stdout, /no daemon running[\s\S]*Synthetic task 999\n[\s\S]*\(970 older not shown/);

    const daemon = await startDaemon(s);
    assert.match(daemon.output(), /! STATE MOVED TO SQLITE: 1000 tasks from .*nightshift\.json are now in .*nightshift\.db \(1000 added\); the old file is kept as .*nightshift\.json\.migrated-/);
    const oldest = await nightshift(["status", syntheticId(0)], s.env);
    assert.equal(oldest.code, 0, oldest.stderr);
    assert.match(oldest.stdout, new RegExp(`^${syntheticId(0)} {2}done {2}"Synthetic task 0" {2}7 turns`));
    assert.match((await nightshift(["status", "task 1.md"], s.env)).stdout, /"Synthetic task 1"/);
    const list = await nightshift(["status"], s.env);
    assert.match(list.stdout, /daemon running[\s\S]*Synthetic task 999\n[\s\S]*\(970 older not shown/);
    assert.doesNotMatch(list.stdout, /Synthetic task 969\n/);
    const digest = await nightshift(["digest"], s.env);
    assert.match(digest.stdout, /Tasks: 900 done, 100 failed or cancelled/, "the last 24 hours' tasks, all from before the move");

    daemon.child.kill("SIGTERM");
    await daemon.exited;
    const stopped = await nightshift(["status", syntheticId(9)], s.env);
    assert.match(stopped.stdout, /failed {2}"Synthetic task 9"[\s\S]*the budget ran out/, "read from the SQLite file without a daemon");
  });

  it("finishes a task once when the daemon died between its result file and its state write", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("echo once"));
    const first = await startDaemon(s);
    writeFileSync(join(s.home, "inbox", "once.md"), task("Once"));
    await until(() => existsSync(join(s.home, "outbox", "once.md")) && readTasks(s.home)[0]?.state === "done", "the result");
    first.child.kill("SIGTERM");
    await first.exited;
    // What a kill right after writeResult leaves: the result file is there, the state still says running.
    const [done] = readTasks(s.home);
    const { store } = await openState(s.home, Date.now);
    await store.change(done!.id, { state: "running", finished: undefined, turns: 0, cost_usd: 0 });
    store.close();
    const requests = s.api.requests.length;

    const second = await startDaemon(s);
    assert.match(second.output(), /resuming 1 task/);
    await until(() => readTasks(s.home)[0]?.state === "done", "the task to settle again");
    assert.equal(s.api.requests.length, requests, "not run again");
    assert.deepEqual(readdirSync(join(s.home, "outbox")).filter((name) => name.startsWith("once")), ["once.md"]);
    assert.match(readFileSync(join(s.home, "outbox", "once.md"), "utf8"), /status: done[\s\S]*finished after: once/);
    const tasks = readTasks(s.home);
    assert.equal(tasks.length, 1);
    assert.equal(tasks[0]!.turns, done!.turns);
  });

  it("cancels a running task, killing its command", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("sleep 30; echo late > late.txt"));
    await startDaemon(s);
    writeFileSync(join(s.home, "inbox", "cancel me.md"), task("Cancel me"));
    await until(() => s.api.requests.length === 1 && sessionIds(s.home).length === 1, "the task to start");
    const [id] = sessionIds(s.home);
    const cancelled = await nightshift(["cancel", id!], s.env);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.match(cancelled.stdout, /cancelling/);
    await until(() => existsSync(join(s.home, "outbox", "cancel me.md")), "the result");
    assert.match(readFileSync(join(s.home, "outbox", "cancel me.md"), "utf8"), /status: cancelled/);
    assert.equal(existsSync(join(s.home, "workspace", id!, "late.txt")), false);
  });

  it("queues a file that reached inbox/.done/ without a task (a crash between the move and the queue)", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("echo recovered"));
    mkdirSync(join(s.home, "inbox", ".done"), { recursive: true });
    writeFileSync(join(s.home, "inbox", ".done", "orphan.md"), task("Orphan"));
    await startDaemon(s);
    await until(() => existsSync(join(s.home, "outbox", "orphan.md")), "the result");
    assert.match(readFileSync(join(s.home, "outbox", "orphan.md"), "utf8"), /status: done[\s\S]*finished after: recovered/);
    assert.equal(sessionIds(s.home).length, 1, "run once");
  });

  it("writes a cancelled result for a task cancelled while still queued", needs("bwrap", "socat"), async () => {
    const s = (current = await setup("daemon:\n  concurrency: 1\n"));
    s.api.respondWith(agent("sleep 30"));
    await startDaemon(s);
    writeFileSync(join(s.home, "inbox", "first.md"), task("First"));
    await until(() => sessionIds(s.home).length === 1, "the first task to start");
    writeFileSync(join(s.home, "inbox", "second.md"), task("Second"));
    await until(() => existsSync(join(s.home, "inbox", ".done", "second.md")), "the second task to be queued");
    await until(() => readTasks(s.home).length === 2, "the queue");
    const second = readTasks(s.home).find((t) => t.name === "second.md")!;
    const cancelled = await nightshift(["cancel", second.id], s.env);
    assert.match(cancelled.stdout, /cancelled .* before it started/);
    assert.match(readFileSync(join(s.home, "outbox", "second.md"), "utf8"), /status: cancelled/);
  });

  it("answers approvals through the running daemon", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    await startDaemon(s);
    const { createApprovalStore } = await import("../runtime/approvals.ts");
    const { systemClock } = await import("../runtime/clock.ts");
    const store = createApprovalStore(join(s.home, "state", "approvals"), { clock: systemClock, expireMs: 60_000 });
    const record = store.create({ session: "s1", tool_use_id: "t1", tool: "bash", input: {}, summary: "connect to example.com", kind: "network", target: "example.com", reason: "a domain not on the allow list" });
    const listed = await nightshift(["approve"], s.env);
    assert.match(listed.stdout, new RegExp(`${record.id} {2}connect to example\\.com`));
    const approved = await nightshift(["approve", record.id, "--task"], s.env);
    assert.equal(approved.stdout, "connect to example.com: allowed for the rest of the task.\n");
    assert.equal(store.answerOf(record.id)?.decision, "task");
  });

  it("runs a task from nightshift run in the daemon and prints its answer", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("echo via daemon"));
    await startDaemon(s);
    const run = await nightshift(["run", "Say something"], s.env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "finished after: via daemon\n");
    assert.match(run.stderr, /handed to the running daemon/);
    const status = await nightshift(["status"], s.env);
    assert.match(status.stdout, /daemon running[\s\S]*done .* Say something/);
  });
  it("resumes a failed task handed to it with run --resume, from its log: its finished tool call is not run again", needs("bwrap", "socat"), async () => {
    const s = (current = await setup("model_retries:\n  attempts: 0\n"));
    let overloaded = true;
    s.api.respondWith(agent("echo ran >> counter.txt; echo counted", () => (overloaded ? { error: { status: 529, type: "overloaded_error", message: "Overloaded" } } : undefined)));
    await startDaemon(s);
    const failed = await nightshift(["run", "Count once"], s.env);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /task failed: .*overloaded/);
    const id = /nightshift run --resume (\S+)/.exec(failed.stderr)?.[1];
    assert.ok(id, failed.stderr);

    overloaded = false;
    const resumed = await nightshift(["run", "--resume", id], s.env);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /handed to the running daemon, which resumes it from its log/);
    assert.equal(resumed.stdout, "finished after: counted\n");
    assert.equal(readFileSync(join(s.home, "workspace", id, "counter.txt"), "utf8"), "ran\n");
    const events = await readSessionLog(join(s.home, "sessions", `${id}.jsonl`));
    assert.equal(events.filter((event) => event.type === "tool_start").length, 1);
    assert.deepEqual(events.filter((event) => event.type === "session_end").map((event) => event.type === "session_end" && event.status), ["failed", "done"]);
    const [record] = readTasks(s.home);
    assert.equal(record?.state, "done");
    assert.equal(record?.reason, undefined);
  });

  it("takes over a session that failed in the foreground before the daemon started, on run --resume", needs("bwrap", "socat"), async () => {
    const s = (current = await setup("model_retries:\n  attempts: 0\n"));
    let overloaded = true;
    s.api.respondWith(agent("echo ran >> counter.txt; echo counted", () => (overloaded ? { error: { status: 529, type: "overloaded_error", message: "Overloaded" } } : undefined)));
    const failed = await nightshift(["run", "Count once"], s.env); // no daemon: in the foreground
    assert.equal(failed.code, 1);
    const id = /nightshift run --resume (\S+)/.exec(failed.stderr)?.[1];
    assert.ok(id, failed.stderr);

    await startDaemon(s);
    overloaded = false;
    const resumed = await nightshift(["run", "--resume", id], s.env);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(resumed.stdout, "finished after: counted\n");
    assert.equal(readFileSync(join(s.home, "workspace", id, "counter.txt"), "utf8"), "ran\n");
    const status = await nightshift(["status"], s.env);
    assert.match(status.stdout, /done .* Count once/);
  });

  it("prints the answer of a finished task on run --resume without running it again, and refuses an unknown id", async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("true"));
    await startDaemon(s);
    const first = await nightshift(["run", "Say something"], s.env);
    assert.equal(first.code, 0, first.stderr);
    const [record] = readTasks(s.home);
    const requests = s.api.requests.length;
    const again = await nightshift(["run", "--resume", record!.id], s.env);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, first.stdout);
    assert.equal(s.api.requests.length, requests);
    const unknown = await nightshift(["run", "--resume", "no-such-task"], s.env);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no session no-such-task in .*sessions; `nightshift status` lists the tasks/);
  });
});
