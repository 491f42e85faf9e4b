import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { TaskFileError } from "../runtime/errors.ts";
import { DEFAULT_MAX_TASK_BYTES, parseTaskFile, readTaskFile, taskFromPrompt } from "../tasks/index.ts";
import type { TaskFile, TaskFileOptions } from "../tasks/index.ts";

const FILE = "inbox/audit deps.md";

/** Parses `content` expecting a TaskFileError; checks the shape every message must have. */
function reject(content: Buffer | string, options?: TaskFileOptions, file = FILE): TaskFileError {
  let caught: unknown;
  try {
    parseTaskFile(file, content, options);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof TaskFileError, `expected a TaskFileError, got ${String(caught)}`);
  assert.equal(caught.file, file);
  const prefix = caught.line === undefined ? `${file}: ` : `${file}:${caught.line}: `;
  assert.ok(caught.message.startsWith(prefix), `message should start with "${prefix}": ${caught.message}`);
  if (caught.field !== undefined) {
    assert.ok(caught.message.startsWith(`${prefix}${caught.field}: `), `message should name the field: ${caught.message}`);
  }
  assert.ok(!caught.message.includes("\n"), `message should be one line: ${caught.message}`);
  assert.ok(!/\bat .*\.ts:\d+/.test(caught.message), `message should hold no stack: ${caught.message}`);
  assert.match(caught.message, /; /, "message should say how to fix it");
  return caught;
}

function task(frontMatter: string, body = "Do the thing."): string {
  return `---\n${frontMatter}\n---\n${body}\n`;
}

describe("valid task files", () => {
  test("parses the full example from the spec, with the timeout in milliseconds", () => {
    const content = [
      "---",
      "title: Audit the app's dependencies",
      "model: main                       # a role or a model id",
      "workdir: ~/code/app               # default: a fresh folder under workspace/",
      "specialists: [reviewer, challenger]   # review round after the first draft",
      "plan: true                        # planner runs first",
      "permissions:                      # can only narrow the global policy; wider asks go to approval",
      '  write: ["~/code/app/**"]',
      '  commands: ["npm outdated", "git status", "git diff *"]',
      '  network: ["registry.npmjs.org"]',
      "budget: { max_turns: 40, max_usd: 2.00, timeout: 2h }",
      "notify: true                      # Telegram message when it finishes",
      'schedule: "0 7 * * 1"             # schedules/ only',
      "---",
      "List outdated dependencies, say which updates are risky and why.",
      "",
    ].join("\n");
    const expected: TaskFile = {
      title: "Audit the app's dependencies",
      body: "List outdated dependencies, say which updates are risky and why.",
      model: "main",
      workdir: "~/code/app",
      specialists: ["reviewer", "challenger"],
      plan: true,
      permissions: {
        write: ["~/code/app/**"],
        commands: ["npm outdated", "git status", "git diff *"],
        network: ["registry.npmjs.org"],
      },
      budget: { max_turns: 40, max_usd: 2, timeout: 2 * 3_600_000 },
      notify: true,
      schedule: "0 7 * * 1",
    };
    assert.deepEqual(parseTaskFile(FILE, content), expected);
  });

  test("needs only a title, and the title alone is the task when the body is empty", () => {
    assert.deepEqual(parseTaskFile(FILE, "---\ntitle: Water the plants\n---\n"), { title: "Water the plants", body: "" });
    assert.deepEqual(parseTaskFile(FILE, "---\ntitle: Water the plants\n---"), { title: "Water the plants", body: "" });
  });

  test("accepts priority and read permissions", () => {
    const parsed = parseTaskFile(FILE, task("title: t\npriority: high\npermissions:\n  read: [~/notes]"));
    assert.equal(parsed.priority, "high");
    assert.deepEqual(parsed.permissions, { read: ["~/notes"] });
  });

  test("accepts a tools list that narrows which MCP tools run without asking", () => {
    const parsed = parseTaskFile(FILE, task('title: t\npermissions:\n  tools: ["mcp__github__list_*"]'));
    assert.deepEqual(parsed.permissions, { tools: ["mcp__github__list_*"] });
  });

  test("takes a leading markdown heading as the title when there is no front matter", () => {
    const parsed = parseTaskFile(FILE, "# Fix the flaky login test\n\nIt fails one run in ten.\nLook at the retry.\n");
    assert.deepEqual(parsed, { title: "Fix the flaky login test", body: "It fails one run in ten.\nLook at the retry." });
    assert.deepEqual(parseTaskFile(FILE, "\n## Ship #42 ##\n"), { title: "Ship #42", body: "" });
  });

  test("reads CRLF line endings", () => {
    const parsed = parseTaskFile(FILE, "---\r\ntitle: Windows task\r\nplan: true\r\n---\r\nLine one\r\nLine two\r\n");
    assert.deepEqual(parsed, { title: "Windows task", plan: true, body: "Line one\nLine two" });
  });

  test("strips a UTF-8 byte order mark, from bytes and from a string", () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("---\ntitle: With BOM\n---\nbody\n")]);
    assert.deepEqual(parseTaskFile(FILE, bytes), { title: "With BOM", body: "body" });
    assert.deepEqual(parseTaskFile(FILE, "\uFEFF# Heading after BOM\n"), { title: "Heading after BOM", body: "" });
  });

  test("keeps a unicode title and body intact", () => {
    const content = Buffer.from("---\ntitle: Résumé des tâches 📋 日本語\n---\nÉcris un haïku — 俳句 ✨\n", "utf8");
    assert.deepEqual(parseTaskFile(FILE, content), { title: "Résumé des tâches 📋 日本語", body: "Écris un haïku — 俳句 ✨" });
  });

  test("keeps the body's indentation and inner blank lines, trimming only around it", () => {
    const parsed = parseTaskFile(FILE, task("title: t", "\n\n    code block\n\nafter\n\n"));
    assert.equal(parsed.body, "    code block\n\nafter");
  });

  test("accepts schedule anywhere and leaves the decision to the caller", () => {
    assert.equal(parseTaskFile("inbox/x.md", task('title: t\nschedule: "*/5 * * * *"')).schedule, "*/5 * * * *");
  });

  test("accepts a file exactly at the size limit", () => {
    const content = task("title: t", "x".repeat(100));
    assert.equal(parseTaskFile(FILE, content, { maxBytes: Buffer.byteLength(content) }).title, "t");
  });
});

describe("rejected task files", () => {
  test("says an empty file is empty, for zero bytes and for whitespace only", () => {
    for (const content of [Buffer.alloc(0), "", "  \n\n\t\r\n"]) {
      const error = reject(content);
      assert.equal(error.message, `${FILE}: the file is empty; write a task: front matter with a title, then what to do`);
      assert.equal(error.line, undefined);
    }
  });

  test("says a file with NUL bytes is not a text file", () => {
    const error = reject(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00]));
    assert.match(error.message, /^inbox\/audit deps\.md: is not a text file \(it contains NUL bytes\); /);
    assert.match(reject("---\ntitle: a\0b\n---\n").message, /is not a text file/);
  });

  test("says a file of invalid UTF-8 is not a text file", () => {
    const error = reject(Buffer.from([0x2d, 0x2d, 0x2d, 0x0a, 0xc3, 0x28, 0xff, 0xfe]));
    assert.match(error.message, /: is not a text file \(it is not valid UTF-8\); .*UTF-8/);
    assert.match(reject("# title \ud800 lone surrogate").message, /is not a text file \(it is not valid Unicode\)/);
  });

  test("names the size and the limit of a file that is too large, and the setting that raises it", () => {
    const big = task("title: t", "x".repeat(DEFAULT_MAX_TASK_BYTES));
    const error = reject(big);
    assert.equal(
      error.message,
      `${FILE}: is 256.0 KiB (${Buffer.byteLength(big)} bytes), over the 256 KiB limit for task files; shorten it, or raise inbox.max_bytes in config.yaml`,
    );
    const small = task("title: t", "x".repeat(2000));
    assert.match(reject(small, { maxBytes: 1024 }).message, new RegExp(`is 2\\.0 KiB \\(${small.length} bytes\\), over the 1 KiB limit`));
    assert.match(reject("---\ntitle: t\n---\n", { maxBytes: 10 }).message, /is 17 bytes, over the 10 bytes limit/);
  });

  test("checks the size before the content, so a huge binary file is called too large", () => {
    assert.match(reject(Buffer.alloc(2048), { maxBytes: 1024 }).message, /over the 1 KiB limit/);
  });

  test("asks for front matter when a file has text but neither front matter nor a heading", () => {
    const error = reject("\nJust do the thing please.\n");
    assert.equal(error.line, 2);
    assert.match(error.message, /^inbox\/audit deps\.md:2: the file has no front matter; start it with a line ---, then title: /);
  });

  test("points at front matter that does not start on the first line", () => {
    const error = reject("\n\n---\ntitle: late\n---\n");
    assert.equal(error.line, 3);
    assert.match(error.message, /:3: front matter must start on the first line; delete the blank lines above this ---$/);
  });

  test("names the opening line of front matter that is never closed", () => {
    const error = reject("---\ntitle: never closed\nplan: true\nDo it.\n");
    assert.equal(error.line, 1);
    assert.match(error.message, /:1: the front matter opened here is never closed; add a line with just --- after the last key$/);
  });

  test("reports broken YAML at the file line the parser gives", () => {
    const error = reject("---\ntitle: ok\nbudget: { max_turns: 4\nplan: true\n---\n");
    assert.equal(error.line, 4);
    assert.match(error.message, /:4: Flow map .*; fix the YAML there/);
    const nested = reject("---\ntitle: a: b\n---\n");
    assert.equal(nested.line, 2);
    assert.match(nested.message, /:2: Nested mappings are not allowed in compact mappings; /);
  });

  test("reports a key written twice on its second line", () => {
    const error = reject("---\ntitle: a\nplan: true\ntitle: b\n---\n");
    assert.equal(error.line, 4);
    assert.match(error.message, /:4: Map keys must be unique; /);
  });

  test("rejects front matter that is a list or a plain value, on line 2", () => {
    const list = reject("---\n- title\n- plan\n---\n");
    assert.equal(list.line, 2);
    assert.match(list.message, /:2: the front matter is a list, not a set of keys; write it as key: value lines/);
    const scalar = reject("---\njust some words\n---\nbody\n");
    assert.equal(scalar.line, 2);
    assert.match(scalar.message, /:2: the front matter is "just some words", not a set of keys; /);
  });

  test("names the line of an unknown key and suggests the closest one", () => {
    const error = reject(task("title: t\nplan: true\nbugdet: { max_turns: 3 }"));
    assert.equal(error.line, 4);
    assert.equal(error.field, "bugdet");
    assert.equal(error.message, `${FILE}:4: bugdet: unknown key \`bugdet\`; did you mean \`budget\`?`);
  });

  test("suggests the closest key inside a nested mapping, in flow style too", () => {
    const error = reject(task("title: t\nbudget: { max_turn: 3 }"));
    assert.equal(error.line, 3);
    assert.equal(error.field, "budget.max_turn");
    assert.match(error.message, /:3: budget\.max_turn: unknown key `max_turn`; did you mean `max_turns`\?$/);
    const nested = reject(task("title: t\npermissions:\n  write: [a]\n  netwrk: [b]"));
    assert.equal(nested.line, 5);
    assert.equal(nested.field, "permissions.netwrk");
    assert.match(nested.message, /did you mean `network`\?$/);
  });

  test("lists the known keys when an unknown key is close to none of them", () => {
    const error = reject(task("title: t\ncolour: blue"));
    assert.equal(error.line, 3);
    assert.equal(error.field, "colour");
    assert.match(error.message, /unknown key `colour`; remove it, or use one of title, model, workdir, .*priority$/);
  });

  test("reports a misspelt title as unknown rather than the title as missing", () => {
    const error = reject(task("plan: true\ntitel: t"));
    assert.equal(error.line, 3);
    assert.equal(error.field, "titel");
    assert.match(error.message, /did you mean `title`\?$/);
  });

  test("says a missing title is missing", () => {
    const error = reject(task("plan: true"));
    assert.equal(error.field, "title");
    assert.equal(error.line, 2);
    assert.match(error.message, /:2: title: is missing; add title: /);
    const empty = reject("---\n---\nbody\n");
    assert.equal(empty.field, "title");
    assert.equal(empty.line, 1);
  });

  test("rejects a title that is not text, or is empty", () => {
    const number = reject(task("plan: true\ntitle: 42"));
    assert.equal(number.line, 3);
    assert.equal(number.field, "title");
    assert.equal(number.message, `${FILE}:3: title: must be text, not 42; put it in quotes, like title: "42"`);
    const blank = reject(task('title: "  "'));
    assert.equal(blank.line, 2);
    assert.match(blank.message, /:2: title: is empty; /);
    const none = reject(task("title:"));
    assert.equal(none.line, 2);
    assert.match(none.message, /:2: title: has no value; give it one, or delete the line$/);
  });

  test("expects true or false for plan and notify", () => {
    const error = reject(task('title: t\n\nplan: "yes"'));
    assert.equal(error.line, 4);
    assert.equal(error.field, "plan");
    assert.equal(error.message, `${FILE}:4: plan: must be true or false, not "yes"; write true or false without quotes`);
    assert.equal(reject(task("title: t\nnotify: 1")).field, "notify");
  });

  test("expects numbers in the budget", () => {
    const usd = reject(task("title: t\nbudget:\n  max_turns: 10\n  max_usd: two"));
    assert.equal(usd.line, 5);
    assert.equal(usd.field, "budget.max_usd");
    assert.match(usd.message, /:5: budget\.max_usd: must be a number, not "two"; write a number without quotes, like 2\.50$/);
    const turns = reject(task("title: t\nbudget: { max_turns: 2.5 }"));
    assert.equal(turns.field, "budget.max_turns");
    assert.match(turns.message, /must be a whole number, not 2\.5; /);
    const zero = reject(task("title: t\nbudget: { max_usd: 0 }"));
    assert.match(zero.message, /budget\.max_usd: must be more than 0, not 0; write a positive number$/);
  });

  test("rejects a timeout that is not a duration", () => {
    const error = reject(task("title: t\nbudget:\n  timeout: two hours"));
    assert.equal(error.line, 4);
    assert.equal(error.field, "budget.timeout");
    assert.match(error.message, /:4: budget\.timeout: "two hours" is not a duration; write it like 90s, 30m, 2h or 1h30m$/);
    assert.match(reject(task("title: t\nbudget: { timeout: 0s }")).message, /budget\.timeout: must be longer than zero; /);
  });

  test("expects lists where lists belong, naming the bad item's line", () => {
    const single = reject(task("title: t\nspecialists: reviewer"));
    assert.equal(single.field, "specialists");
    assert.match(single.message, /specialists: must be a list, not "reviewer"; write it like \[reviewer\]$/);
    const item = reject(task("title: t\nspecialists:\n  - reviewer\n  - 7"));
    assert.equal(item.line, 5);
    assert.equal(item.field, "specialists[1]");
    assert.match(item.message, /:5: specialists\[1\]: must be text, not 7; put it in quotes, like specialists: "7"$/);
  });

  test("expects a set of keys for permissions and budget", () => {
    const error = reject(task("title: t\nbudget: 5"));
    assert.equal(error.field, "budget");
    assert.match(error.message, /budget: must be a set of keys, not 5; write it like budget: \{ max_turns: \.\.\. \}$/);
  });

  test("names the allowed priorities", () => {
    const error = reject(task("title: t\npriority: urgent"));
    assert.equal(error.line, 3);
    assert.equal(error.field, "priority");
    assert.match(error.message, /priority: must be one of low, normal, high, not "urgent"; pick one of them$/);
  });

  test("reports the topmost of several wrong values", () => {
    const error = reject(task('title: t\nnotify: "no"\nplan: "yes"'));
    assert.equal(error.field, "notify");
    assert.equal(error.line, 3);
  });

  test("numbers lines from the top of the file with CRLF endings and a BOM", () => {
    const error = reject("\uFEFF---\r\ntitle: t\r\nplna: true\r\n---\r\n");
    assert.equal(error.line, 3);
    assert.match(error.message, /did you mean `plan`\?$/);
  });
});

describe("readTaskFile", () => {
  const dir = mkdtempSync(join(tmpdir(), "nightshift-task-file-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("reads and parses a file from disk", async () => {
    const file = join(dir, "ok.md");
    writeFileSync(file, task("title: From disk"));
    assert.deepEqual(await readTaskFile(file), { title: "From disk", body: "Do the thing." });
  });

  test("says a missing file does not exist", async () => {
    const file = join(dir, "gone.md");
    await assert.rejects(readTaskFile(file), (error: unknown) => {
      assert.ok(error instanceof TaskFileError);
      assert.equal(error.message, `${file}: no such file; check the path`);
      return true;
    });
  });

  test("rejects a folder and an oversized file without reading them", async () => {
    const folder = join(dir, "folder.md");
    mkdirSync(folder);
    await assert.rejects(readTaskFile(folder), /is a folder, not a task file/);
    const big = join(dir, "big.md");
    writeFileSync(big, task("title: t", "x".repeat(4096)));
    await assert.rejects(readTaskFile(big, { maxBytes: 1024 }), (error: unknown) => {
      assert.ok(error instanceof TaskFileError);
      assert.match(error.message, /over the 1 KiB limit for task files; .*inbox\.max_bytes/);
      return true;
    });
  });

  test("passes the file name through to parse errors", async () => {
    const file = join(dir, "bad.md");
    writeFileSync(file, task("title: t\nplan: maybe"));
    await assert.rejects(readTaskFile(file), (error: unknown) => {
      assert.ok(error instanceof TaskFileError);
      assert.ok(error.message.startsWith(`${file}:3: plan: `), error.message);
      return true;
    });
  });
});

describe("taskFromPrompt", () => {
  test("uses the first line as the title and the whole prompt as the body", () => {
    assert.deepEqual(taskFromPrompt("  Summarise my inbox  \nKeep it short."), {
      title: "Summarise my inbox",
      body: "Summarise my inbox  \nKeep it short.",
    });
  });

  test("cuts a long first line to about 60 characters with an ellipsis", () => {
    const long = "Refactor the billing module so that every invoice line is rounded once at the end";
    const { title, body } = taskFromPrompt(long);
    assert.ok(title.endsWith("…"));
    assert.ok(Array.from(title).length <= 60);
    assert.ok(long.startsWith(title.slice(0, -1)));
    assert.equal(body, long);
    assert.equal(taskFromPrompt("x".repeat(60)).title, "x".repeat(60));
  });

  test("does not split an emoji when cutting the title", () => {
    const title = taskFromPrompt("🌙".repeat(80)).title;
    assert.equal(title, "🌙".repeat(59) + "…");
  });

  test("drops the hashes of a heading from the title", () => {
    assert.equal(taskFromPrompt("# Plan the trip\ndetails").title, "Plan the trip");
  });

  test("rejects an empty prompt", () => {
    assert.throws(() => taskFromPrompt(" \n "), (error: unknown) => error instanceof TaskFileError && /the prompt is empty; /.test(error.message));
  });
});
