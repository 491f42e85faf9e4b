import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { appendFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { TestContext } from "node:test";
import { parse } from "yaml";
import { systemClock } from "../runtime/clock.ts";
import { createInbox } from "../tasks/inbox.ts";
import type { AcceptedTask, InboxOptions, Rejection } from "../tasks/inbox.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { tempDir } from "./support/home.ts";
import { isCi } from "./support/prerequisites.ts";

const VALID = "---\ntitle: Audit the dependencies\nplan: true\n---\nList outdated dependencies.\n";
const SETTLE_MS = 300;

/** A real inbox folder under a temp home, driven by a fake clock; nothing is started unless a test says so. */
function setup(t: TestContext, overrides: Partial<InboxOptions> = {}) {
  const home = tempDir("nightshift-inbox-");
  const dir = join(home.path, "inbox");
  const outbox = join(home.path, "outbox");
  mkdirSync(dir, { recursive: true });
  const clock = new FakeClock();
  const accepted: AcceptedTask[] = [];
  const rejected: Rejection[] = [];
  const errors: unknown[] = [];
  const inbox = createInbox({
    dir,
    outbox,
    clock,
    settleMs: SETTLE_MS,
    async accept(task) {
      accepted.push(task);
      return `task-${accepted.length}`;
    },
    onRejected: (rejection) => rejected.push(rejection),
    onError: ({ error }) => errors.push(error),
    ...overrides,
  });
  t.after(async () => {
    await inbox.close();
    home.cleanup();
  });
  return {
    home: home.path,
    dir,
    outbox,
    clock,
    inbox,
    accepted,
    rejected,
    errors,
    /** One scan sees the files, the settle time passes with nothing changing, the next scan hands them over. */
    async settle() {
      await inbox.scan();
      clock.advance(SETTLE_MS);
      await inbox.scan();
    },
  };
}

type Setup = ReturnType<typeof setup>;

function frontMatter(text: string): Record<string, unknown> {
  const match = /^---\n([\s\S]*?)\n---\n/.exec(text);
  assert.ok(match, `expected front matter in:\n${text}`);
  return parse(match[1]!) as Record<string, unknown>;
}

/** Drops `content` as `name`, lets it settle and checks everything a rejection must leave behind. */
async function expectRejected(
  h: Setup,
  name: string,
  content: string | Buffer,
  expected: { says: RegExp; line?: number; field?: string; errorFile?: string },
): Promise<string> {
  writeFileSync(join(h.dir, name), content);
  await h.settle();

  assert.deepEqual(h.accepted, []);
  assert.deepEqual(h.errors, []);
  assert.equal(existsSync(join(h.dir, name)), false, "the file left the inbox");
  assert.deepEqual(readFileSync(join(h.dir, ".rejected", name)), Buffer.from(content), "the original bytes are intact");

  const errorFile = join(h.outbox, expected.errorFile ?? name.replace(/\.md$/i, ".error.md"));
  const text = readFileSync(errorFile, "utf8");
  const front = frontMatter(text);
  assert.equal(front.status, "rejected");
  assert.equal(front.task, name);
  assert.equal(front.rejected, new Date(h.clock.now()).toISOString());
  assert.equal(front.file, `inbox/${name}`);
  assert.equal(front.line, expected.line);
  assert.equal(front.field, expected.field);
  assert.equal(front.moved_to, `inbox/.rejected/${name}`);
  assert.ok(text.includes(`- File: \`inbox/${name}\``), text);
  if (expected.line !== undefined) assert.ok(text.includes(`- Line: ${expected.line}\n`), text);
  if (expected.field !== undefined) assert.ok(text.includes(`- Field: \`${expected.field}\``), text);
  assert.match(text, /- Fix: \S/);
  assert.match(text, expected.says);
  assert.ok(text.includes("`inbox/.rejected/" + name + "`"), "the error file says where the original went");

  assert.equal(h.rejected.length, 1);
  const [rejection] = h.rejected;
  assert.equal(rejection!.name, name);
  assert.equal(rejection!.errorFile, errorFile);
  assert.equal(rejection!.movedTo, join(h.dir, ".rejected", name));
  assert.match(rejection!.message, expected.says);
  assert.ok(rejection!.message.startsWith(`inbox/${name}`), rejection!.message);
  return text;
}

function deferred<T>(): { promise: Promise<T>; resolve(value: T): void; reject(error: unknown): void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

describe("valid task files", () => {
  test("accepts a valid task, then moves it to .done under the name given to accept", async (t) => {
    const h = setup(t);
    writeFileSync(join(h.dir, "audit.md"), VALID);
    await h.settle();

    assert.equal(h.accepted.length, 1);
    const [task] = h.accepted;
    assert.deepEqual(task, {
      file: { title: "Audit the dependencies", plan: true, body: "List outdated dependencies." },
      name: "audit.md",
      path: join(h.dir, ".done", "audit.md"),
      dropped: "audit.md",
    });
    assert.equal(existsSync(join(h.dir, "audit.md")), false);
    assert.equal(readFileSync(join(h.dir, ".done", "audit.md"), "utf8"), VALID);
    assert.deepEqual(h.rejected, []);
    assert.deepEqual(h.errors, []);

    await h.settle();
    assert.equal(h.accepted.length, 1, "a handled file is not handed over again");
  });

  test("does not read a half-written file until it stops changing", async (t) => {
    const h = setup(t);
    const path = join(h.dir, "growing.md");
    writeFileSync(path, "---\ntitle: Grow");
    await h.inbox.scan();
    h.clock.advance(SETTLE_MS - 100);
    await h.inbox.scan();
    assert.equal(h.accepted.length, 0, "not settled yet");

    appendFileSync(path, "ing file\n---\nFirst part.");
    h.clock.advance(200); // past the first sighting's settle time, but the file changed since
    await h.inbox.scan();
    assert.equal(h.accepted.length, 0);

    appendFileSync(path, "\nSecond part.\n");
    await h.inbox.scan();
    h.clock.advance(SETTLE_MS - 1);
    await h.inbox.scan();
    assert.equal(h.accepted.length, 0, "still within the settle time of the last change");

    h.clock.advance(1);
    await h.inbox.scan();
    assert.equal(h.accepted.length, 1);
    assert.equal(h.accepted[0]!.file.title, "Growing file");
    assert.equal(h.accepted[0]!.file.body, "First part.\nSecond part.");
    assert.deepEqual(h.rejected, [], "the partial file was never judged");
  });

  test("picks up files dropped while the daemon was down when it starts", async (t) => {
    const h = setup(t);
    writeFileSync(join(h.dir, "one.md"), VALID);
    writeFileSync(join(h.dir, "two.md"), "# Second task\nDo it.\n");
    await h.inbox.start();
    h.clock.advance(SETTLE_MS); // the settle timers hand them over
    await h.inbox.scan();
    assert.deepEqual(h.accepted.map((task) => task.name).sort(), ["one.md", "two.md"]);
    assert.deepEqual(readdirSync(join(h.dir, ".done")).sort(), ["one.md", "two.md"]);
  });

  test("keeps unicode and spaces in names", async (t) => {
    const h = setup(t);
    const name = "Rapport détaillé 📊 été.md";
    writeFileSync(join(h.dir, name), VALID);
    await h.settle();
    assert.equal(h.accepted[0]?.name, name);
    assert.equal(readFileSync(join(h.dir, ".done", name), "utf8"), VALID);
  });

  test("gives a second file with the same name a numbered name, so no earlier file or result is overwritten", async (t) => {
    const h = setup(t);
    const first = VALID;
    const second = "---\ntitle: Second report\n---\n";
    const third = "---\ntitle: Third report\n---\n";
    writeFileSync(join(h.dir, "report.md"), first);
    await h.settle();
    writeFileSync(join(h.dir, "report.md"), second);
    await h.settle();
    // A result whose task file was cleared out of .done still holds its name.
    mkdirSync(h.outbox, { recursive: true });
    writeFileSync(join(h.outbox, "report-3.md"), "an earlier result");
    writeFileSync(join(h.dir, "report.md"), third);
    await h.settle();

    assert.deepEqual(
      h.accepted.map((task) => [task.name, task.dropped, task.file.title]),
      [
        ["report.md", "report.md", "Audit the dependencies"],
        ["report-2.md", "report.md", "Second report"],
        ["report-4.md", "report.md", "Third report"],
      ],
    );
    assert.equal(h.accepted[1]!.path, join(h.dir, ".done", "report-2.md"));
    assert.equal(readFileSync(join(h.dir, ".done", "report.md"), "utf8"), first);
    assert.equal(readFileSync(join(h.dir, ".done", "report-2.md"), "utf8"), second);
    assert.equal(readFileSync(join(h.dir, ".done", "report-4.md"), "utf8"), third);
    assert.equal(readFileSync(join(h.outbox, "report-3.md"), "utf8"), "an earlier result");
  });
});

describe("rejected files", () => {
  test("broken YAML names the line", async (t) => {
    const h = setup(t);
    await expectRejected(h, "broken.md", "---\ntitle: Broken\nbudget: [unclosed\n---\nBody\n", { line: 3, says: /fix the YAML there/ });
  });

  test("an unknown key names the line and the key, with the likely fix", async (t) => {
    const h = setup(t);
    await expectRejected(h, "typo.md", "---\ntitel: Typo\n---\n", { line: 2, field: "titel", says: /unknown key `titel`; did you mean `title`\?/ });
  });

  test("a wrong type names the line and the field", async (t) => {
    const h = setup(t);
    const text = await expectRejected(h, "types.md", "---\ntitle: Types\nbudget: { max_turns: forty }\n---\n", {
      line: 3,
      field: "budget.max_turns",
      says: /must be a number, not "forty"/,
    });
    assert.match(text, /- Fix: write a number without quotes, like 40/);
  });

  test("an empty file", async (t) => {
    const h = setup(t);
    await expectRejected(h, "empty.md", "", { says: /the file is empty/ });
  });

  test("a file without front matter", async (t) => {
    const h = setup(t);
    await expectRejected(h, "plain.md", "just a sentence, no title\n", { line: 1, says: /has no front matter/ });
  });

  test("binary content", async (t) => {
    const h = setup(t);
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xfe]);
    await expectRejected(h, "image.md", png, { says: /is not a text file \(it contains NUL bytes\)/ });
  });

  test("a file over the size limit, without reading it", async (t) => {
    const h = setup(t, { maxBytes: 1024 });
    const huge = `---\ntitle: Huge\n---\n${"x".repeat(5000)}\n`;
    assert.equal(Buffer.byteLength(huge), 5021);
    await expectRejected(h, "huge.md", huge, { says: /is 4\.9 KiB \(5021 bytes\), over the 1 KiB limit for task files; shorten it, or raise inbox\.max_bytes/ });
  });

  test("a schedule in an inbox task points to schedules/", async (t) => {
    const h = setup(t);
    await expectRejected(h, "weekly.md", '---\ntitle: Weekly\nschedule: "0 7 * * 1"\n---\n', { line: 3, field: "schedule", says: /works only in schedules\// });
  });

  test("a file not ending in .md is rejected, not ignored", async (t) => {
    const h = setup(t);
    const text = await expectRejected(h, "notes.txt", "---\ntitle: Looks valid\n---\n", { errorFile: "notes.txt.error.md", says: /task files end in \.md/ });
    assert.match(text, /save it as notes\.md/);
  });

  test("a picture dropped by mistake", async (t) => {
    const h = setup(t);
    await expectRejected(h, "photo.png", Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01]), { errorFile: "photo.png.error.md", says: /task files end in \.md/ });
  });

  test("unicode and spaces in a rejected file's name", async (t) => {
    const h = setup(t);
    await expectRejected(h, "мій звіт 🚫.md", "---\ntitle: 12\nplan: yes please\n---\n", { line: 2, field: "title", says: /must be text/ });
  });

  test("a symlink is rejected and moved as a link; its target is neither read nor moved", async (t) => {
    const h = setup(t);
    const outside = join(h.home, "elsewhere");
    mkdirSync(outside);
    const target = join(outside, "secret.md");
    writeFileSync(target, VALID);
    symlinkSync(target, join(h.dir, "link.md"));
    await h.settle();

    assert.deepEqual(h.accepted, []);
    assert.equal(readFileSync(target, "utf8"), VALID, "the target is untouched");
    const moved = join(h.dir, ".rejected", "link.md");
    assert.ok(lstatSync(moved).isSymbolicLink(), "only the link moved");
    assert.equal(readlinkSync(moved), target);
    assert.equal(existsSync(join(h.dir, "link.md")), false);
    const text = readFileSync(join(h.outbox, "link.error.md"), "utf8");
    assert.equal(frontMatter(text).status, "rejected");
    assert.match(text, /inbox\/link\.md: is a symlink .*symlinks are not accepted/);
    assert.doesNotMatch(text, /Audit the dependencies/, "the target's content was not read");
    assert.equal(h.rejected[0]?.name, "link.md");
  });

  test("a named pipe is rejected without being opened", async (t) => {
    const h = setup(t);
    try {
      execFileSync("mkfifo", [join(h.dir, "pipe.md")]);
    } catch (error) {
      // coreutils has mkfifo on every Linux and macOS; under CI its absence is a broken machine, not a skip.
      if (isCi()) throw error;
      return t.skip("mkfifo is not available (it comes with coreutils)");
    }
    await h.settle();
    assert.deepEqual(h.accepted, []);
    assert.ok(lstatSync(join(h.dir, ".rejected", "pipe.md")).isFIFO());
    assert.match(readFileSync(join(h.outbox, "pipe.error.md"), "utf8"), /inbox\/pipe\.md: is not a regular file \(a named pipe\)/);
  });

  test("a second rejected file with the same name gets its own numbered place and error file", async (t) => {
    const h = setup(t);
    writeFileSync(join(h.dir, "report.md"), "---\ntitle: [\n---\n");
    await h.settle();
    writeFileSync(join(h.dir, "report.md"), "no front matter\n");
    await h.settle();

    assert.equal(readFileSync(join(h.dir, ".rejected", "report.md"), "utf8"), "---\ntitle: [\n---\n");
    assert.equal(readFileSync(join(h.dir, ".rejected", "report-2.md"), "utf8"), "no front matter\n");
    const first = readFileSync(join(h.outbox, "report.error.md"), "utf8");
    const second = readFileSync(join(h.outbox, "report-2.error.md"), "utf8");
    assert.match(first, /fix the YAML there/);
    assert.match(second, /has no front matter/);
    assert.equal(frontMatter(second).task, "report.md");
    assert.equal(frontMatter(second).moved_to, "inbox/.rejected/report-2.md");
    assert.deepEqual(
      h.rejected.map((rejection) => [rejection.name, rejection.movedTo, rejection.errorFile]),
      [
        ["report.md", join(h.dir, ".rejected", "report.md"), join(h.outbox, "report.error.md")],
        ["report.md", join(h.dir, ".rejected", "report-2.md"), join(h.outbox, "report-2.error.md")],
      ],
    );
  });
});

describe("what the inbox leaves alone", () => {
  test("ignores dotfiles, editor temp files and folders, .done and .rejected included", async (t) => {
    const h = setup(t);
    const names = [".#draft.md", "draft.md~", ".draft.md.swp", "draft.tmp", ".draft.md.partial", ".DS_Store", "#draft.md#"];
    for (const name of names) writeFileSync(join(h.dir, name), "half a thought");
    mkdirSync(join(h.dir, "sub"));
    writeFileSync(join(h.dir, "sub", "nested.md"), VALID);
    mkdirSync(join(h.dir, ".done"));
    writeFileSync(join(h.dir, ".done", "old.md"), VALID);
    mkdirSync(join(h.dir, ".rejected"));
    writeFileSync(join(h.dir, ".rejected", "bad.md"), "bad");
    await h.settle();

    assert.deepEqual(h.accepted, []);
    assert.deepEqual(h.rejected, []);
    assert.deepEqual(h.errors, []);
    assert.deepEqual(readdirSync(h.dir).sort(), [...names, ".done", ".rejected", "sub"].sort());
    assert.equal(existsSync(h.outbox), false);
  });

  test("a file deleted before it settled is forgotten quietly", async (t) => {
    const h = setup(t);
    writeFileSync(join(h.dir, "oops.md"), VALID);
    await h.inbox.scan();
    unlinkSync(join(h.dir, "oops.md"));
    h.clock.advance(SETTLE_MS);
    await h.inbox.scan();
    assert.deepEqual(h.accepted, []);
    assert.deepEqual(h.rejected, []);
    assert.deepEqual(h.errors, []);
    assert.equal(h.clock.pendingTimers, 0);
  });
});

describe("faults and concurrency", () => {
  test("close stops the watcher, the settle timers and the poll", async (t) => {
    const h = setup(t);
    await h.inbox.start();
    writeFileSync(join(h.dir, "early.md"), VALID);
    await h.inbox.scan();
    assert.ok(h.clock.pendingTimers > 0);
    await h.inbox.close();
    assert.equal(h.clock.pendingTimers, 0);
    writeFileSync(join(h.dir, "late.md"), VALID);
    h.clock.advance(10_000);
    await h.inbox.scan();
    assert.deepEqual(h.accepted, []);
    assert.deepEqual(readdirSync(h.dir).sort(), ["early.md", "late.md"]);
  });


  test("a failing accept leaves the file in place and retries on the next scan, accepting once", async (t) => {
    let calls = 0;
    const h = setup(t, {
      async accept(task) {
        calls++;
        if (calls === 1) throw new Error("state store is busy");
        h.accepted.push(task);
        return "task-1";
      },
    });
    writeFileSync(join(h.dir, "retry.md"), VALID);
    await h.settle();
    assert.equal(calls, 1);
    assert.equal(readFileSync(join(h.dir, "retry.md"), "utf8"), VALID, "still in the inbox");
    assert.equal(existsSync(join(h.outbox)), false, "a daemon fault is not a rejection");
    assert.match(String(h.errors[0]), /state store is busy/);

    await h.inbox.scan();
    assert.equal(calls, 2);
    assert.deepEqual(h.accepted.map((task) => task.name), ["retry.md"]);
    assert.equal(readFileSync(join(h.dir, ".done", "retry.md"), "utf8"), VALID);
    await h.inbox.scan();
    assert.equal(calls, 2);
  });

  test("hands a file over once however many scans and events race for it, moving it to .done before it is queued", async (t) => {
    const gate = deferred<string>();
    const h = setup(t, {
      async accept(task) {
        h.accepted.push(task);
        return gate.promise;
      },
    });
    writeFileSync(join(h.dir, "once.md"), VALID);
    await h.inbox.scan();
    h.clock.advance(SETTLE_MS); // the settle timer starts a handling too
    const scans = [h.inbox.scan(), h.inbox.scan(), h.inbox.scan()];
    // The handling does real file I/O (stat, read, rename): poll until it reaches accept, bounded by real time.
    const deadline = Date.now() + 5_000;
    while (h.accepted.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
    gate.resolve("task-1"); // resolved before any assertion, so a failure cannot leave the handling hanging
    assert.equal(h.accepted.length, 1);
    assert.ok(existsSync(join(h.dir, ".done", "once.md")), "moved before it is queued: a crash between leaves a .done file the daemon queues at start");

    const closing = h.inbox.close(); // in-flight handling finishes
    await Promise.all([...scans, closing]);
    assert.equal(h.accepted.length, 1);
    assert.equal(readFileSync(join(h.dir, ".done", "once.md"), "utf8"), VALID);
  });

  test("the watcher picks up a dropped file on its own", async (t) => {
    const picked = deferred<AcceptedTask>();
    const h = setup(t, {
      clock: systemClock,
      settleMs: 50,
      async accept(task) {
        picked.resolve(task);
        return "task-1";
      },
    });
    await h.inbox.start();
    writeFileSync(join(h.dir, "dropped.md"), VALID);
    const timeout = setTimeout(() => picked.reject(new Error("the watcher did not pick up the file within 3 s")), 3000);
    const task = await picked.promise.finally(() => clearTimeout(timeout));
    assert.equal(task.name, "dropped.md");
    await h.inbox.close();
    assert.equal(readFileSync(join(h.dir, ".done", "dropped.md"), "utf8"), VALID);
  });
});
