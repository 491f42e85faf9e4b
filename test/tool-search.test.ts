import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { z } from "zod";
import { continueSession, startSession } from "../runtime/loop.ts";
import { createToolSearch, searchTools, toolCatalog, TOOL_CATALOG_CAP_BYTES } from "../runtime/mcp/search.ts";
import { defineTool, type Tool } from "../runtime/tools/tool.ts";
import { createHarness, type Harness } from "./support/session.ts";

const tool = (name: string, description: string): Tool =>
  defineTool({ name, description, schema: z.record(z.string(), z.unknown()), inputSchema: { type: "object", properties: {} }, execute: async () => `${name} ran` });

const github = [
  tool("mcp__github__create_issue", "Create a new issue in a GitHub repository."),
  tool("mcp__github__list_issues", "List issues of a repository, with filters."),
  tool("mcp__github__get_file_contents", "Get the contents of a file or directory."),
];
const files = [tool("mcp__filesystem__read_text_file", "Read a file as text."), tool("mcp__filesystem__listDirectory", "List the entries of a directory.")];

describe("tool search", () => {
  it("puts exact names first, then tools by the words of the query in their names and descriptions", () => {
    const all = [...github, ...files];
    assert.deepEqual(searchTools(all, "list_issues read_text_file").map((found) => found.name), ["mcp__github__list_issues", "mcp__filesystem__read_text_file"]);
    assert.deepEqual(searchTools(all, "mcp__github__create_issue").map((found) => found.name), ["mcp__github__create_issue"]);
    assert.equal(searchTools(all, "open an issue on github")[0]!.name, "mcp__github__create_issue", "ties keep the servers' order");
    assert.equal(searchTools(all, "list directory")[0]!.name, "mcp__filesystem__listDirectory", "camelCase names split into words");
    assert.deepEqual(searchTools(all, "weather forecast"), []);
    assert.equal(searchTools(all, "file", 2).length, 2);
  });

  it("returns references with tool references, schemas as text without, and the catalog when nothing matches", async () => {
    const context = {} as never;
    const byReference = await createToolSearch(github, true).execute({ query: "issues" }, context);
    assert.deepEqual(byReference, { output: "Loaded 2 tools: mcp__github__list_issues, mcp__github__create_issue.", references: ["mcp__github__list_issues", "mcp__github__create_issue"] });
    const asText = (await createToolSearch(github, false).execute({ query: "list_issues" }, context)) as string;
    assert.match(asText, /^1 tool found\. Run one with call_tool/);
    assert.match(asText, /## mcp__github__list_issues\nList issues of a repository, with filters\.\nInput schema: \{"type":"object","properties":\{\}\}/);
    const none = await createToolSearch(github, true).execute({ query: "weather" }, context);
    assert.equal(none, 'No tool matches "weather". Tools there are: mcp__github__create_issue, mcp__github__list_issues, mcp__github__get_file_contents.');
  });

  it("writes one catalog line per server, within its cap, and says how many servers it left out", () => {
    const catalog = toolCatalog([{ server: "github", tools: github }, { server: "filesystem", tools: files }, { server: "empty", tools: [] }], true);
    assert.deepEqual(catalog.split("\n").slice(2), ["- github (3 tools): create_issue, list_issues, get_file_contents", "- filesystem (2 tools): read_text_file, listDirectory"]);
    const many = Array.from({ length: 40 }, (_, index) => ({ server: `server${index}`, tools: github }));
    const capped = toolCatalog(many, true);
    assert.ok(Buffer.byteLength(capped) <= TOOL_CATALOG_CAP_BYTES);
    assert.match(capped, /\n\(\d+ more servers not listed, for space: tool_search finds their tools too\.\)$/);
    assert.equal(toolCatalog([], true), "");
  });
});

describe("deferred tools in a session", () => {
  let harness: Harness | undefined;
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });

  it("sends a tool only once a search loaded it, and turns a reference to a tool no longer offered into text", async () => {
    harness = await createHarness({ toolReferences: true, tools: [createToolSearch(github, true)] });
    const deps = { ...harness.deps, tools: [createToolSearch(github, true)], deferred: github };
    harness.api.script({ content: [{ type: "tool_use", name: "tool_search", input: { query: "create_issue" } }] }, { content: [{ type: "tool_use", name: "mcp__github__create_issue", input: {} }] }, { content: [{ type: "text", text: "done" }] });
    await startSession(harness.task, deps);
    const [first, second, third] = harness.api.requests.map((request) => request.body.tools.map((entry: { name: string; defer_loading?: boolean }) => `${entry.name}${entry.defer_loading ? " (deferred)" : ""}`));
    assert.deepEqual(first, ["tool_search"]);
    assert.deepEqual(second, ["tool_search", "mcp__github__create_issue (deferred)"]);
    assert.deepEqual(third, second, "a loaded tool stays for the rest of the session");

    // Next run, the tool is withheld (its definition changed): the old reference must not break the request.
    const later = await harness.reopen();
    const withheld = github.filter((entry) => entry.name !== "mcp__github__create_issue");
    harness.api.script({ content: [{ type: "text", text: "ok" }] });
    assert.equal((await continueSession("and now?", { ...later, tools: [createToolSearch(withheld, true)], deferred: withheld })).status, "done");
    const request = harness.api.requests.at(-1)!.body;
    assert.deepEqual(request.tools.map((entry: { name: string }) => entry.name), ["tool_search"]);
    const result = request.messages[2].content[0];
    assert.equal(result.content, "Not available any more: mcp__github__create_issue.");
  });
});
