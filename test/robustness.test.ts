import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, realpathSync, renameSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { loadConfig } from "../runtime/config.ts";
import { NOT_RUN_NOTE } from "../runtime/conversation.ts";
import { SessionBusy } from "../runtime/errors.ts";
import type { EventOf } from "../runtime/events.ts";
import { continueSession, resumeSession, Shutdown, startSession } from "../runtime/loop.ts";
import { createSandbox, pathRules } from "../runtime/runtime.ts";
import { lockSession, processStartTime } from "../runtime/session-lock.ts";
import { NO_RULES, resolvePath } from "../runtime/tools/paths.ts";
import { createHarness, types, type Harness } from "./support/session.ts";
import { tempDir } from "./support/home.ts";
import { until } from "./support/cli.ts";
import { needs } from "./support/prerequisites.ts";

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

const text = (value: string) => ({ type: "text" as const, text: value });
const call = (name: string, input: unknown) => ({ type: "tool_use" as const, name, input });

describe("follow-ups and retries", () => {
  it("resumes a follow-up that was interrupted instead of returning the earlier answer", async () => {
    harness = await createHarness();
    harness.api.script({ content: [text("first answer")] }, { stall: true }, { content: [text("second answer")] });
    await startSession(harness.task, harness.deps);
    const stop = new AbortController();
    const api = harness.api;
    const following = continueSession("and then?", await harness.reopen(), stop.signal);
    while (api.requests.length < 2) await new Promise((resolve) => setImmediate(resolve));
    stop.abort(new Shutdown("daemon stopping"));
    assert.equal((await following).status, "interrupted");
    const resumed = await resumeSession(await harness.reopen());
    assert.equal(resumed.status, "done");
    assert.equal(resumed.answer, "second answer");
  });

  it("does not count the wait before a follow-up against the time budget", async () => {
    harness = await createHarness({ budget: { timeout_ms: 3_600_000 } });
    harness.api.script({ content: [text("first")] }, { content: [text("second")] });
    await startSession(harness.task, harness.deps);
    harness.clock.advance(2 * 3_600_000); // two hours later, the user replies
    const result = await continueSession("more please", await harness.reopen());
    assert.equal(result.status, "done", result.reason);
    assert.equal(result.answer, "second");
  });

  it("tries a failed session again on resume, from where it stopped", async () => {
    harness = await createHarness({ retries: 0 });
    harness.api.script({ content: [call("write_file", { path: "a.txt", content: "a" })] }, { error: { status: 500, type: "api_error", message: "down" } });
    const failed = await startSession(harness.task, harness.deps);
    assert.equal(failed.status, "failed");
    harness.api.script({ content: [text("recovered")] });
    const retried = await resumeSession(await harness.reopen());
    assert.equal(retried.status, "done");
    assert.equal(retried.answer, "recovered");
    assert.equal(harness.api.requests.length, 3);
    assert.equal(harness.api.requests[2]!.body.messages.length, 3, "the retry carries the earlier turn and its tool result");
  });

  it("keeps an answer whose session_end was never written, without asking the model again", async () => {
    harness = await createHarness();
    harness.api.script({ content: [text("the answer")] });
    await startSession(harness.task, harness.deps);
    const lines = readFileSync(harness.logPath, "utf8").trimEnd().split("\n");
    writeFileSync(harness.logPath, lines.slice(0, -1).join("\n") + "\n"); // as if killed before session_end
    const result = await resumeSession(await harness.reopen());
    assert.equal(result.status, "done");
    assert.equal(result.answer, "the answer");
    assert.equal(harness.api.requests.length, 1);
  });

  it("survives an empty reply: a follow-up after it is still a valid conversation", async () => {
    harness = await createHarness();
    harness.api.script({ content: [] }, { content: [text("now with words")] });
    const first = await startSession(harness.task, harness.deps);
    assert.equal(first.answer, "");
    const second = await continueSession("say something", await harness.reopen());
    assert.equal(second.answer, "now with words");
  });

  it("reports calls that never started as not run after a cancel, and a follow-up does not run them", async () => {
    harness = await createHarness();
    const stop = new AbortController();
    harness.api.script({ content: [call("bash", { command: "sleep 20" }), call("write_file", { path: "later.txt", content: "x" })] }, { content: [text("ok")] });
    harness.deps.emit = (event) => {
      if (event.type === "tool_start") setImmediate(() => stop.abort(new Error("cancelled")));
    };
    assert.equal((await startSession(harness.task, harness.deps, stop.signal)).status, "cancelled");
    await continueSession("what happened?", await harness.reopen());
    const results = harness.api.requests[1]!.body.messages[2].content;
    assert.equal(results[1].content, NOT_RUN_NOTE);
    assert.throws(() => readFileSync(join(harness!.workdir, "later.txt")), /ENOENT/);
  });

  it("does not send a request when the signal is already aborted", async () => {
    harness = await createHarness();
    const stop = new AbortController();
    stop.abort(new Error("cancelled before the start"));
    const result = await startSession(harness.task, harness.deps, stop.signal);
    assert.equal(result.status, "cancelled");
    await assert.rejects(harness.deps.model.complete({ system: [], tools: [], messages: [{ role: "user", content: "hi" }] }, { signal: stop.signal }));
    assert.equal(harness.api.requests.length, 0);
  });

  it("waits as long as retry-after asks even past max_delay", async () => {
    harness = await createHarness();
    harness.api.script({ error: { status: 429, type: "rate_limit_error", message: "wait", retryAfter: 120 } }, { content: [text("ok")] });
    await startSession(harness.task, harness.deps);
    assert.equal(harness.clock.sleeps[0], 120_000);
  });
});

describe("file tools and the sandbox protect secrets and Nightshift itself", () => {
  it("refuse .env files, hidden paths and writes to NIGHTSHIFT_HOME even inside the workdir", async () => {
    harness = await createHarness();
    const home = join(harness.workdir, ".nightshift");
    mkdirSync(join(home, "workspace"), { recursive: true });
    mkdirSync(join(home, "state"), { recursive: true });
    writeFileSync(join(home, "config.yaml"), "log_level: info\n");
    writeFileSync(join(home, "state", "tasks.json"), "{}");
    writeFileSync(join(harness.workdir, ".env"), "SECRET=1\n");
    const loaded = loadConfig({ NIGHTSHIFT_HOME: home, HOME: harness.root });
    harness.deps.paths = pathRules(loaded);
    harness.api.script(
      {
        content: [
          call("read_file", { path: ".env" }),
          call("read_file", { path: ".nightshift/state/tasks.json" }),
          call("write_file", { path: ".nightshift/config.yaml", content: "sandbox: {mode: off}\n" }),
          call("write_file", { path: ".nightshift/workspace/ok.txt", content: "fine" }),
          call("read_file", { path: ".nightshift/config.yaml" }),
        ],
      },
      { content: [text("done")] },
    );
    await startSession(harness.task, harness.deps);
    const results = harness.api.requests[1]!.body.messages.at(-1).content;
    assert.match(results[0].content, /^Denied: read .*\.env: denied by rule "deny read \*\*\/\.env" \(default \(secrets\)\)/);
    assert.match(results[1].content, /holds secrets/);
    assert.match(results[2].content, /Nightshift's own settings/);
    assert.equal(results[3].is_error, undefined);
    assert.equal(results[4].is_error, undefined, "settings can be read");
    assert.equal(readFileSync(join(home, "config.yaml"), "utf8"), "log_level: info\n");
  });

  it("refuse a FIFO instead of blocking the session", async () => {
    harness = await createHarness();
    execFileSync("mkfifo", [join(harness.workdir, "pipe")]);
    harness.api.script({ content: [call("read_file", { path: "pipe" }), call("write_file", { path: "pipe", content: "x" }), call("edit_file", { path: "pipe", old_text: "a", new_text: "b" })] }, { content: [text("done")] });
    await startSession(harness.task, harness.deps);
    const results = harness.api.requests[1]!.body.messages.at(-1).content;
    assert.deepEqual(results.map((result: { is_error?: boolean }) => result.is_error), [true, true, true]);
    assert.match(results[0].content, /not a regular file/);
  });

  it("keep role keys and .env-only variables out of commands", needs("bwrap", "socat"), async () => {
    const dir = tempDir();
    try {
      const home = join(dir.path, "home");
      mkdirSync(home);
      writeFileSync(join(home, "config.yaml"), "models:\n  small:\n    model: llama\n    base_url: http://localhost:11434\n    api_key_env: LOCAL_LLM\n");
      writeFileSync(join(home, ".env"), "DATABASE_URL=postgres://user:pw@db/app\n");
      const loaded = loadConfig({ NIGHTSHIFT_HOME: home, PATH: process.env.PATH, HOME: dir.path, LOCAL_LLM: "plainvalue123" });
      const result = await createSandbox(loaded).run("env", { cwd: dir.path, timeoutMs: 10_000, maxOutputBytes: 10_000 });
      assert.match(result.output, /PATH=/);
      assert.doesNotMatch(result.output, /LOCAL_LLM|plainvalue123|DATABASE_URL/);
    } finally {
      dir.cleanup();
    }
  });
});

describe("one writer per session", () => {
  it("refuses a second live writer and takes over a lock left by a dead process", () => {
    const dir = tempDir();
    try {
      const log = join(dir.path, "s.jsonl");
      const release = lockSession(log);
      assert.throws(() => lockSession(log, process.pid + 1), (error: unknown) => error instanceof SessionBusy && /already running in process/.test(error.message));
      release();
      writeFileSync(`${log}.lock`, "999999999"); // no such process
      lockSession(log)();
      writeFileSync(`${log}.lock`, `${process.ppid} 1`); // a live process, but not the one that locked (PID reused after a reboot)
      lockSession(log)();
      // No start time (a platform without one): a live PID holds the lock, unless it was written before the last boot.
      writeFileSync(`${log}.lock`, `${process.ppid}`);
      assert.throws(() => lockSession(log), SessionBusy);
      utimesSync(`${log}.lock`, new Date(0), new Date(0));
      lockSession(log)();
    } finally {
      dir.cleanup();
    }
  });

  it("lets exactly one of several processes locking at the same instant win, a fresh lock or a stale one", async () => {
    const dir = tempDir();
    const rounds = 60;
    const racers = [0, 1, 2].map(() => spawn(process.execPath, [join(import.meta.dirname, "support", "lock-racer.ts"), dir.path, String(rounds)], { stdio: ["pipe", "pipe", "inherit"] }));
    try {
      const lines: string[] = [];
      for (const racer of racers) racer.stdout!.on("data", (chunk: Buffer) => lines.push(...chunk.toString().split("\n").filter(Boolean)));
      for (let round = 0; round < rounds; round++) {
        // Odd rounds race to take over a lock a killed process left (no such PID).
        if (round % 2) writeFileSync(join(dir.path, `${round}.lock`), "999999999 1 0123456789abcdef");
        writeFileSync(join(dir.path, `go-${round}`), "");
        await until(() => lines.filter((line) => line.startsWith(`${round} `)).length === racers.length, `round ${round}`);
      }
      const winners = (round: number) => lines.filter((line) => line === `${round} won`).length;
      const bad = Array.from({ length: rounds }, (_, round) => round).filter((round) => winners(round) !== 1);
      assert.deepEqual(bad.map((round) => `round ${round}: ${winners(round)} winners`), []);
    } finally {
      for (const racer of racers) racer.kill("SIGKILL");
      dir.cleanup();
    }
  });

  it("releases only its own lock, never one another process took over", () => {
    const dir = tempDir();
    try {
      const log = join(dir.path, "s.jsonl");
      const release = lockSession(log);
      // Someone judged it stale and took it (say, after a clock step made it look older than the boot).
      const other = `${process.ppid} ${processStartTime(process.ppid, process.platform)} fedcba9876543210`;
      writeFileSync(`${log}.tmp`, other);
      renameSync(`${log}.tmp`, `${log}.lock`);
      release();
      assert.equal(readFileSync(`${log}.lock`, "utf8"), other);
      assert.throws(() => lockSession(log), SessionBusy);
    } finally {
      dir.cleanup();
    }
  });

  it("knows a process's start time on Linux (/proc) and the way macOS and the BSDs ask (ps), and nothing of a gone process", () => {
    for (const platform of ["linux", "darwin", "freebsd"] as const) {
      const own = processStartTime(process.pid, platform);
      assert.ok(own, platform);
      assert.equal(processStartTime(process.pid, platform), own, `${platform}: the same process, the same answer`);
      assert.notEqual(processStartTime(1, platform), own, `${platform}: another process, another answer`);
      assert.equal(processStartTime(999_999_999, platform), undefined, `${platform}: no such process`);
    }
    assert.equal(processStartTime(process.pid, "win32"), undefined);
  });
});

describe("compaction requests", () => {
  it("carry the same tools as every step", async () => {
    harness = await createHarness({ contextWindow: 10_000, serverCompaction: true });
    const main = [
      { content: [call("list_files", {})], usage: { input_tokens: 2000 } },
      { content: [call("list_files", {})], usage: { input_tokens: 8000 } },
    ];
    harness.api.respondWith((request) => (request.body.compaction ? { compaction: { content: "summary" } } : main.shift() ?? { content: [text("done")] }));
    await startSession(harness.task, harness.deps);
    const compaction = harness.api.requests.find((request) => request.body.compaction)!;
    assert.deepEqual(compaction.body.tools, harness.api.requests[0]!.body.tools);
    const checkpoint = (await harness.events()).find((event): event is EventOf<"checkpoint"> => event.type === "checkpoint");
    assert.ok(checkpoint);
    assert.deepEqual(types(await harness.events()).slice(-1), ["session_end"]);
  });
});

describe("paths on a disk that ignores case (macOS)", () => {
  it("treats .ENV as .env, and resolves names as stored where the disk says so", () => {
    const dir = tempDir();
    try {
      writeFileSync(join(dir.path, ".ENV"), "KEY=1\n");
      assert.throws(() => resolvePath(dir.path, ".ENV"), /holds secrets/);
      assert.throws(() => resolvePath(dir.path, ".Env.Local", NO_RULES, "write"), /holds secrets/);
      // Linux's disk keeps case, so this checks the call, not macOS: the native realpath(3) returns
      // the stored name (it does on macOS's case-insensitive APFS), the JavaScript one the given one.
      mkdirSync(join(dir.path, "Keys"));
      assert.equal(resolvePath(dir.path, "Keys/id"), join(realpathSync.native(dir.path), "Keys", "id"));
    } finally {
      dir.cleanup();
    }
  });
});
