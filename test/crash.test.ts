import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { readSessionLog } from "../runtime/session-log.ts";
import { INTERRUPTED_NOTE } from "../runtime/conversation.ts";
import { tempDir } from "./support/home.ts";
import { agent, CLI, until } from "./support/cli.ts";
import { startMessagesApi, type MessagesApi } from "./support/messages-api.ts";
import { needs } from "./support/prerequisites.ts";


const CHILD = join(import.meta.dirname, "support", "kill-child.ts");

interface Setup {
  api: MessagesApi;
  home: string;
  workdir: string;
  env: NodeJS.ProcessEnv;
  cleanup(): Promise<void>;
}

async function setup(): Promise<Setup> {
  const api = await startMessagesApi();
  const dir = tempDir();
  const home = join(dir.path, "home");
  const workdir = join(dir.path, "work");
  mkdirSync(workdir);
  // These tests watch the folder itself across kills; staging (on by default for a --workdir) has its own tests.
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, "config.yaml"), "tasks:\n  stage: \"off\"\n");
  const env = { ...process.env, NIGHTSHIFT_HOME: home, ANTHROPIC_BASE_URL: api.url, ANTHROPIC_API_KEY: "sk-ant-crash-test" };
  return { api, home, workdir, env, cleanup: async () => (await api.close(), dir.cleanup()) };
}


/** Every process a test started: killed after it, so one a failed test left running cannot hold the file open. */
const children = new Set<ChildProcess>();

function run(args: string[], env: NodeJS.ProcessEnv, script = CLI, nodeArgs: string[] = []): { child: ChildProcess; done: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.on("close", () => children.delete(child));
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => (stdout += chunk));
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const done = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

function onlySession(home: string): string {
  const files = readdirSync(join(home, "sessions")).filter((name) => name.endsWith(".jsonl"));
  assert.equal(files.length, 1, `one session log, found ${files.join(", ")}`);
  return files[0]!.replace(/\.jsonl$/, "");
}

let current: Setup | undefined;
afterEach(async () => {
  for (const child of children) child.kill("SIGKILL");
  await current?.cleanup();
  current = undefined;
});

describe("a session killed with SIGKILL and resumed", () => {
  it("resumes after a kill during a model request, without running the finished tool call again", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    let stalled = false;
    s.api.respondWith(
      agent("echo ran >> counter.txt", () => {
        if (stalled) return undefined;
        stalled = true;
        return { stall: true };
      }),
    );
    const first = run(["run", "--workdir", s.workdir, "count once"], s.env);
    await until(() => stalled, "the second model request");
    first.child.kill("SIGKILL");
    assert.equal((await first.done).signal, "SIGKILL");

    const id = onlySession(s.home);
    const second = await run(["run", "--resume", id], s.env).done;
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, "finished after: (no output)\n");
    assert.equal(readFileSync(join(s.workdir, "counter.txt"), "utf8"), "ran\n");
    const events = await readSessionLog(join(s.home, "sessions", `${id}.jsonl`));
    assert.equal(events.filter((event) => event.type === "tool_start").length, 1);
    assert.equal(events.filter((event) => event.type === "resumed").length, 1);
  });

  it("reports a tool call killed mid-run as interrupted and never runs it again", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("echo started >> counter.txt; sleep 30; echo finished >> counter.txt"));
    const first = run(["run", "--workdir", s.workdir, "slow command"], s.env);
    // Its line written, not only the file created by the redirection (a kill between the two leaves it empty).
    await until(() => existsSync(join(s.workdir, "counter.txt")) && readFileSync(join(s.workdir, "counter.txt"), "utf8") === "started\n", "the command to start");
    first.child.kill("SIGKILL");
    await first.done;

    const id = onlySession(s.home);
    const second = await run(["run", "--resume", id], s.env).done;
    assert.equal(second.code, 0, second.stderr);
    assert.equal(readFileSync(join(s.workdir, "counter.txt"), "utf8"), "started\n", "the command was not re-run, and the killed one did not finish");
    const lastRequest = s.api.requests.at(-1)!.body;
    const result = lastRequest.messages.at(-1).content[0];
    assert.equal(result.type, "tool_result");
    assert.equal(result.is_error, true);
    assert.equal(result.content, INTERRUPTED_NOTE);
    const events = await readSessionLog(join(s.home, "sessions", `${id}.jsonl`));
    const end = events.find((event) => event.type === "tool_end");
    assert.equal(end?.type === "tool_end" && end.interrupted, true);
  });

  it("resumes after a kill between steps with the recorded tool result", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("echo ran >> counter.txt; echo counted"));
    const first = await run(["s-between", s.workdir, "count once", "tool_end", "1"], s.env, CHILD).done;
    assert.equal(first.signal, "SIGKILL");
    assert.equal(s.api.requests.length, 1);

    const second = await run(["run", "--resume", "s-between"], s.env).done;
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, "finished after: counted\n");
    assert.equal(readFileSync(join(s.workdir, "counter.txt"), "utf8"), "ran\n");
    assert.equal(s.api.requests.length, 2);
  });

  it("returns the recorded answer when asked to resume a finished session, without a model call", async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("true"));
    const first = await run(["run", "--workdir", s.workdir, "quick"], s.env).done;
    assert.equal(first.code, 0, first.stderr);
    const calls = s.api.requests.length;
    const again = await run(["run", "--resume", onlySession(s.home)], s.env).done;
    assert.equal(again.code, 0);
    assert.equal(again.stdout, first.stdout);
    assert.equal(s.api.requests.length, calls);
  });
});

const KILL_AT = join(import.meta.dirname, "support", "kill-at.ts");
const inboxTask = (title: string) => `---\ntitle: ${title}\n---\nDo it.\n`;

/** `nightshift start`, killing itself at `moment` (see support/kill-at.ts) when one is given. */
function daemon(s: Setup, moment?: string, match?: string) {
  const env = { ...s.env, ...(moment ? { NIGHTSHIFT_TEST_KILL_AT: moment } : {}), ...(match ? { NIGHTSHIFT_TEST_KILL_MATCH: match } : {}) };
  return run(["start"], env, CLI, moment ? ["--import", KILL_AT] : []);
}

/** Processes still running with this home in their environment: the daemon's commands, sandboxes and relays inherit it. */
function leftovers(home: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      if (!readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(`NIGHTSHIFT_HOME=${home}`)) continue;
      const command = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      found.push(`${pid}: ${command.length > 100 ? `${command.slice(0, 40)} … ${command.slice(-50)}` : command}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/**
 * Waits a while for the processes a killed daemon left to go; asserts none is left, killing any that
 * is. "Gone" must hold for 20 looks in a row: a process's environment reads empty for a moment
 * while it execs.
 */
async function assertNoneLeft(home: string): Promise<void> {
  let empty = 0;
  await until(() => (leftovers(home).length ? (empty = 0) : ++empty) >= 20, "no process left behind", 5_000).catch(() => undefined);
  const left = leftovers(home);
  for (const line of left) process.kill(Number(line.split(":")[0]), "SIGKILL");
  assert.deepEqual(left, []);
}

/** The kinds of a session's journal entries, in order. */
function journaled(home: string, session: string): string[] {
  const dir = join(home, "journal");
  const lines = existsSync(dir) ? readdirSync(dir).sort().flatMap((name) => readFileSync(join(dir, name), "utf8").split("\n").filter(Boolean)) : [];
  return lines.map((line) => JSON.parse(line) as { session: string; kind: string }).filter((entry) => entry.session === session).map((entry) => entry.kind);
}

function onlyResult(home: string, name: string): string {
  return readFileSync(join(home, "outbox", name), "utf8");
}

describe("a daemon killed with SIGKILL and started again", () => {
  it("starts a task afresh when killed after creating its session log, before the log's header", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("echo ran"));
    const first = daemon(s, "log-created");
    await until(() => existsSync(join(s.home, "inbox")), "the home");
    writeFileSync(join(s.home, "inbox", "fresh.md"), inboxTask("Fresh"));
    assert.equal((await first.done).signal, "SIGKILL");
    const id = onlySession(s.home);
    assert.equal(readFileSync(join(s.home, "sessions", `${id}.jsonl`), "utf8"), "", "killed before the header");

    const second = daemon(s);
    await until(() => existsSync(join(s.home, "outbox", "fresh.md")), "the result after restart");
    second.child.kill("SIGTERM");
    await second.done;
    assert.match(onlyResult(s.home, "fresh.md"), /status: done[\s\S]*finished after: ran/);
    const events = await readSessionLog(join(s.home, "sessions", `${id}.jsonl`));
    assert.equal(events[0]?.type, "session_start");
  });

  it("journals a session that ended just before the kill, once", needs("bwrap", "socat"), async () => {
    const s = (current = await setup());
    s.api.respondWith(agent("echo ran"));
    const first = daemon(s, "session-ended");
    await until(() => existsSync(join(s.home, "inbox")), "the home");
    writeFileSync(join(s.home, "inbox", "ends.md"), inboxTask("Ends"));
    assert.equal((await first.done).signal, "SIGKILL");
    const id = onlySession(s.home);
    assert.deepEqual(journaled(s.home, id), ["request"], "killed before the outcome reached the journal");

    for (let start = 0; start < 2; start++) {
      const again = daemon(s);
      await until(() => existsSync(join(s.home, "outbox", "ends.md")), "the result after restart");
      again.child.kill("SIGTERM");
      await again.done;
    }
    assert.match(onlyResult(s.home, "ends.md"), /status: done[\s\S]*finished after: ran/);
    assert.deepEqual(journaled(s.home, id), ["request", "outcome"]);
    assert.equal(s.api.requests.length, 2, "the session was not run again");
  });
  // Killed before the command's process has started: bwrap's --die-with-parent (or any death
  // signal) is set too late then, as on a loaded machine in the first milliseconds of a sandbox.
  for (const mode of ["bwrap", "off"] as const) {
    it(`leaves no command${mode === "bwrap" ? ", bubblewrap or relay" : ""} behind when killed as a command starts (sandbox.mode ${mode}), and resumes the task`, needs("bwrap", "socat"), async () => {
      const s = (current = await setup());
      if (mode === "off") writeFileSync(join(s.home, "config.yaml"), 'tasks:\n  stage: "off"\nsandbox:\n  mode: "off"\n');
      s.api.respondWith(agent("sleep 30 # the test's command"));
      const first = daemon(s, "spawned", "the test's command");
      await until(() => existsSync(join(s.home, "inbox")), "the home");
      writeFileSync(join(s.home, "inbox", "slow.md"), inboxTask("Slow"));
      assert.equal((await first.done).signal, "SIGKILL");
      await assertNoneLeft(s.home);

      s.api.respondWith(agent("true"));
      const second = daemon(s);
      await until(() => existsSync(join(s.home, "outbox", "slow.md")), "the result after restart");
      second.child.kill("SIGTERM");
      await second.done;
      assert.match(onlyResult(s.home, "slow.md"), /status: done/);
      const result = s.api.requests.at(-1)!.body.messages.at(-1).content[0];
      assert.equal(result.content, INTERRUPTED_NOTE, "the killed command is reported as interrupted, not run again");
    });
  }
});
