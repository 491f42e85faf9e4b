import assert from "node:assert/strict";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BUILTIN_TOOL_NAMES, DEFAULT_AGENTS, loadAgents } from "../runtime/specialists/agents.ts";
import { nightshift } from "./support/cli.ts";
import { tempDir } from "./support/home.ts";
import { startMessagesApi, type MessagesApi } from "./support/messages-api.ts";

let dir: ReturnType<typeof tempDir>;
before(() => {
  dir = tempDir();
});
after(() => dir.cleanup());

let count = 0;
/** A fresh `<home>/agents` holding `files` (file name → text). */
function agentsDir(files: Record<string, string | Buffer>): string {
  const path = join(dir.path, `home-${++count}`, "agents");
  mkdirSync(path, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(path, name), content);
  return path;
}

const agent = (name: string, front = "", body = `You are ${name}.\n`) => `---\nname: ${name}\ndescription: the ${name} specialist\n${front}---\n${body}`;

describe("loadAgents", () => {
  it("loads the three defaults cleanly, each short and read-only", () => {
    const { agents, problems } = loadAgents(agentsDir(DEFAULT_AGENTS), BUILTIN_TOOL_NAMES);
    assert.deepEqual(problems, []);
    assert.deepEqual([...agents.keys()], ["challenger", "planner", "reviewer"]);
    for (const spec of agents.values()) {
      assert.equal(spec.model, "specialist");
      assert.deepEqual(spec.tools, ["read_file", "list_files", "search_files"]);
      assert.equal(spec.max_turns, 8);
      assert.match(spec.prompt, /under 250 words/);
      assert.doesNotMatch(spec.description, /\n/);
      assert.ok(readFileSync(spec.file, "utf8").length <= 1200, `${spec.name} stays short`);
    }
    assert.match(agents.get("challenger")!.prompt, /Your job is to disagree/);
    assert.match(agents.get("reviewer")!.prompt, /Verdict/);
  });

  it("defaults to the read-only tools, model specialist and 8 turns, and keeps the body as the prompt", () => {
    const { agents, problems } = loadAgents(agentsDir({ "scout.md": agent("scout", "", "\n\nLook around.\n\n  Then report.\n\n") }), BUILTIN_TOOL_NAMES);
    assert.deepEqual(problems, []);
    const scout = agents.get("scout")!;
    assert.deepEqual(
      { model: scout.model, tools: scout.tools, max_turns: scout.max_turns, prompt: scout.prompt, description: scout.description },
      { model: "specialist", tools: ["read_file", "list_files", "search_files"], max_turns: 8, prompt: "Look around.\n\n  Then report.", description: "the scout specialist" },
    );
    assert.match(scout.file, /agents\/scout\.md$/);
  });

  it("takes model, tools and max_turns from the front matter", () => {
    const { agents } = loadAgents(agentsDir({ "fixer.md": agent("fixer", "model: claude-opus-5\ntools: [read_file, bash, bash]\nmax_turns: 20\n") }), BUILTIN_TOOL_NAMES);
    const fixer = agents.get("fixer")!;
    assert.deepEqual([fixer.model, fixer.tools, fixer.max_turns], ["claude-opus-5", ["read_file", "bash"], 20]);
  });

  it("reports each bad file with its file, line and field, leaves it out and loads the good ones", () => {
    const dir = agentsDir({
      "good.md": agent("good"),
      "typo.md": agent("typo", "max_turn: 3\n"),
      "unknown.md": agent("unknown", "colour: blue\n"),
      "badtool.md": agent("badtool", "tools:\n  - read_file\n  - serch_files\n"),
      "consults.md": agent("consults", "tools: [read_file, consult]\n"),
      "empty.md": agent("empty", "", "\n   \n"),
      "mismatch.md": agent("other"),
      "broken.md": "---\nname: broken\ndescription: [unclosed\n---\nBody.\n",
      "turns.md": agent("turns", "max_turns: 500\n"),
      "nodesc.md": "---\nname: nodesc\n---\nBody.\n",
      "twolines.md": "---\nname: twolines\ndescription: |\n  one\n  two\n---\nBody.\n",
      "bare.md": "Just a prompt, no front matter.\n",
      "notes.txt": "not an agent",
    });
    const { agents, problems } = loadAgents(dir, BUILTIN_TOOL_NAMES);
    assert.deepEqual([...agents.keys()], ["good"]);
    const message = (file: string) => problems.find((problem) => problem.file === join(dir, file))?.message;
    assert.equal(message("typo.md"), "agents/typo.md:4: max_turn: unknown key; did you mean `max_turns`?");
    assert.match(message("unknown.md")!, /^agents\/unknown\.md:4: colour: unknown key; remove it, or use one of name, description, model, tools, max_turns$/);
    assert.equal(message("badtool.md"), "agents/badtool.md:6: tools: unknown tool `serch_files`; did you mean `search_files`?");
    assert.equal(message("consults.md"), "agents/consults.md:4: tools: specialists cannot consult (depth 1); remove consult from the list");
    assert.match(message("empty.md")!, /^agents\/empty\.md:4: body: is empty; /);
    assert.match(message("mismatch.md")!, /^agents\/mismatch\.md:2: name: is `other` but the file is mismatch\.md; /);
    assert.match(message("broken.md")!, /^agents\/broken\.md:\d+: front matter: .+; fix the YAML there/);
    assert.match(message("turns.md")!, /^agents\/turns\.md:4: max_turns: must be between 1 and 100, not 500; /);
    assert.match(message("nodesc.md")!, /^agents\/nodesc\.md:\d+: description: is missing; add description: /);
    assert.match(message("twolines.md")!, /^agents\/twolines\.md:3: description: must be one line; /);
    assert.match(message("bare.md")!, /^agents\/bare\.md:1: front matter: missing; start the file with a line ---/);
    assert.equal(problems.length, 11, problems.map((problem) => problem.message).join("\n"));
  });

  it("refuses a symlink, a folder, a binary or oversized file, and a file name that is not a name", () => {
    const dir = agentsDir({
      "good.md": agent("good"),
      "binary.md": Buffer.from([0x2d, 0x2d, 0x2d, 0x0a, 0xff, 0xfe, 0x00]),
      "latin1.md": Buffer.from(agent("latin1", "", "caf\xe9\n"), "latin1"),
      "huge.md": agent("huge", "", "x".repeat(65 * 1024)),
      "Big Name.md": agent("big-name"),
    });
    symlinkSync(join(dir, "good.md"), join(dir, "link.md"));
    mkdirSync(join(dir, "folder.md"));
    symlinkSync(join(dir, "nowhere"), join(dir, ".#good.md")); // an editor's lock file: ignored
    const { agents, problems } = loadAgents(dir, BUILTIN_TOOL_NAMES);
    assert.deepEqual([...agents.keys()], ["good"]);
    const message = (file: string) => problems.find((problem) => problem.file === join(dir, file))?.message;
    assert.match(message("link.md")!, /^agents\/link\.md: is a symbolic link; /);
    assert.match(message("folder.md")!, /^agents\/folder\.md: is a folder; /);
    assert.match(message("binary.md")!, /^agents\/binary\.md: is not a text file \(it contains NUL bytes\)/);
    assert.match(message("latin1.md")!, /^agents\/latin1\.md: is not a text file \(it is not valid UTF-8\)/);
    assert.match(message("huge.md")!, /^agents\/huge\.md: is 66 KiB, over the 64 KiB limit/);
    assert.match(message("Big Name.md")!, /rename the file to lowercase letters, digits and dashes, like big-name\.md/);
    assert.equal(problems.length, 6, problems.map((problem) => problem.message).join("\n"));
  });

  it("finds nothing and reports nothing when the folder is missing", () => {
    assert.deepEqual(loadAgents(join(dir.path, "no-home", "agents"), BUILTIN_TOOL_NAMES), { agents: new Map(), problems: [] });
  });
});

describe("specialists in the CLI", () => {
  let api: MessagesApi;
  let env: NodeJS.ProcessEnv;
  let home: string;
  before(async () => {
    api = await startMessagesApi();
    home = join(dir.path, "cli-home");
    const { ANTHROPIC_API_KEY: _a, ANTHROPIC_BASE_URL: _b, TELEGRAM_BOT_TOKEN: _t, ...rest } = process.env;
    env = { ...rest, NIGHTSHIFT_HOME: home, ANTHROPIC_BASE_URL: api.url, ANTHROPIC_API_KEY: "sk-ant-agents-test" };
  });
  after(() => api.close());

  it("nightshift init writes the three defaults and never overwrites an edited one", async () => {
    const first = await nightshift(["init"], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /created: .*agents\/planner\.md, agents\/reviewer\.md, agents\/challenger\.md/);
    for (const file of Object.keys(DEFAULT_AGENTS)) assert.equal(readFileSync(join(home, "agents", file), "utf8"), DEFAULT_AGENTS[file]);
    const edited = agent("reviewer", "", "Be brief.\n");
    writeFileSync(join(home, "agents", "reviewer.md"), edited);
    const second = await nightshift(["init"], env);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /kept as they were: .*agents\/reviewer\.md/);
    assert.equal(readFileSync(join(home, "agents", "reviewer.md"), "utf8"), edited);
  });

  it("nightshift doctor lists the specialists and fails on a bad agent file, with its fix", async () => {
    const good = await nightshift(["doctor"], env);
    assert.match(good.stdout, /✓ specialists: challenger, planner, reviewer\n/);
    writeFileSync(join(home, "agents", "critic.md"), agent("critic", "tools: [read_file, consult]\n"));
    const bad = await nightshift(["doctor"], env);
    assert.equal(bad.code, 1, bad.stdout);
    assert.match(bad.stdout, /✓ specialists: challenger, planner, reviewer\n/);
    assert.match(bad.stdout, /✗ agents\/critic\.md:4: tools: specialists cannot consult \(depth 1\); remove consult from the list\n\s+fix: edit .*agents\/critic\.md as the message says, or delete it/);
  });
});
