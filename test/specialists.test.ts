import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import type { EventOf, SessionEvent, SpecialistReport } from "../runtime/events.ts";
import { loadConfig } from "../runtime/config.ts";
import { Shutdown } from "../runtime/loop.ts";
import { parseTaskFile, toTaskSpec } from "../tasks/index.ts";
import { readSessionLog } from "../runtime/session-log.ts";
import type { RecordedRequest, Reply } from "./support/messages-api.ts";
import { createRuntimeHarness, type RuntimeHarness } from "./support/runtime-harness.ts";

let h: RuntimeHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const text = (reply: string, usage = { input_tokens: 1000, output_tokens: 100 }): Reply => ({ content: [{ type: "text", text: reply }], usage });
const agentFile = (name: string, extra = "") => `---\nname: ${name}\ndescription: the ${name} test specialist\n${extra}---\nYou are ${name.toUpperCase()}, a test specialist.\n`;
const who = (request: RecordedRequest) => /You are (\w+), a test specialist/.exec(JSON.stringify(request.body.system))?.[1]?.toLowerCase() ?? "main";
/** The newest message's text and tool results, as plain text. */
const lastUserText = (request: RecordedRequest): string => {
  const content = request.body.messages.at(-1).content as string | Array<{ text?: string; content?: unknown }>;
  if (typeof content === "string") return content;
  return content.map((block) => block.text ?? (typeof block.content === "string" ? block.content : JSON.stringify(block.content ?? ""))).join("\n");
};
const consult = (specialists: string[], question: string, mode: "parallel" | "chain" = "parallel"): Reply => ({ content: [{ type: "tool_use", name: "consult", input: { specialists, question, mode } }] });
const endOf = (events: SessionEvent[]) => events.find((event): event is EventOf<"session_end"> => event.type === "session_end");

/** A harness whose agents/ holds the named test specialists (besides the defaults). */
async function withAgents(files: Record<string, string>, config?: string): Promise<RuntimeHarness> {
  const harness = await createRuntimeHarness(config ? { config } : {});
  mkdirSync(join(harness.home, "agents"), { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(harness.home, "agents", `${name}.md`), content);
  await harness.restart(); // the consult tool lists the specialists found at start
  return harness;
}

describe("consult", () => {
  it("runs parallel specialists at once, each in its own session, and returns every report", async () => {
    h = await withAgents({ alpha: agentFile("alpha"), beta: agentFile("beta"), gamma: agentFile("gamma") });
    const answered: Record<string, number> = {};
    h.api.respondWith((request) => {
      const name = who(request);
      if (name === "main") return /report from="alpha"/.test(lastUserText(request)) ? text("combined") : consult(["alpha", "beta", "gamma"], "Is the plan sound?");
      answered[name] = Date.now() + 300;
      return { ...text(`${name} says ok`), delayMs: 300 };
    });
    const id = h.runtime.newSessionId();
    const result = await h.runtime.start(id, h.task());
    assert.equal(result.status, "done");
    assert.equal(result.answer, "combined");
    const specialistRequests = h.api.requests.filter((request) => who(request) !== "main");
    assert.equal(specialistRequests.length, 3);
    const lastArrival = Math.max(...specialistRequests.map((request) => request.at));
    const firstAnswer = Math.min(...Object.values(answered));
    assert.ok(lastArrival < firstAnswer, "all three were asked before the first one answered: they ran at once");
    const end = (await h.events(id)).find((event): event is EventOf<"tool_end"> => event.type === "tool_end" && event.name === "consult")!;
    assert.deepEqual(end.specialists!.map((report: SpecialistReport) => [report.name, report.status, report.report]), [["alpha", "done", "alpha says ok"], ["beta", "done", "beta says ok"], ["gamma", "done", "gamma says ok"]]);
    for (const report of end.specialists!) {
      const log = join(h.home, "sessions", id, `${report.session}.jsonl`);
      assert.ok(existsSync(log), `${report.name} has its own log under its task's folder`);
      const start = (await readSessionLog(log))[0] as EventOf<"session_start">;
      assert.deepEqual(start.task.parent, { session: id, specialist: report.name });
    }
    const specialistTools = specialistRequests[0]!.body.tools.map((tool: { name: string }) => tool.name);
    assert.ok(!specialistTools.includes("consult"), "specialists cannot consult");
    assert.ok(!specialistTools.includes("bash") && specialistTools.includes("read_file"), "read-only tools by default");
  });

  it("hands each report to the next in a chain, in order", async () => {
    h = await withAgents({ alpha: agentFile("alpha"), beta: agentFile("beta") });
    h.api.respondWith((request) => {
      const name = who(request);
      if (name === "alpha") return text("ALPHA-REPORT");
      if (name === "beta") return text(`beta saw: ${/ALPHA-REPORT/.test(lastUserText(request)) ? "alpha's report" : "nothing"}`);
      return /report from="beta"/.test(lastUserText(request)) ? text("done") : consult(["alpha", "beta"], "Review the design.", "chain");
    });
    const id = h.runtime.newSessionId();
    await h.runtime.start(id, h.task());
    const order = h.api.requests.map(who).filter((name) => name !== "main");
    assert.deepEqual(order, ["alpha", "beta"]);
    const end = (await h.events(id)).find((event): event is EventOf<"tool_end"> => event.type === "tool_end" && event.name === "consult")!;
    assert.equal(end.specialists![1]!.report, "beta saw: alpha's report");
  });

  it("keeps going when one specialist fails, and counts every specialist's cost against the task", async () => {
    h = await withAgents({ alpha: agentFile("alpha"), beta: agentFile("beta") }, "model_retries:\n  attempts: 0\n");
    h.api.respondWith((request) => {
      const name = who(request);
      if (name === "alpha") return { error: { status: 400, type: "invalid_request_error", message: "alpha is broken" } };
      if (name === "beta") return text("beta report", { input_tokens: 100_000, output_tokens: 1000 });
      return /report from="alpha"/.test(lastUserText(request)) ? text("carried on") : consult(["alpha", "beta"], "Check it.");
    });
    const id = h.runtime.newSessionId();
    const result = await h.runtime.start(id, h.task());
    assert.equal(result.status, "done");
    const end = (await h.events(id)).find((event): event is EventOf<"tool_end"> => event.type === "tool_end" && event.name === "consult")!;
    const [alpha, beta] = end.specialists!;
    assert.equal(alpha!.status, "failed");
    assert.match(alpha!.report, /alpha is broken/);
    assert.equal(beta!.status, "done");
    assert.ok(beta!.cost_usd > 0.1, `beta cost ${beta!.cost_usd}`);
    assert.ok(Math.abs(end.cost_usd! - beta!.cost_usd) < 1e-9);
    const mainCost = (await h.events(id)).filter((event): event is EventOf<"model_response"> => event.type === "model_response").reduce((sum, event) => sum + event.cost_usd, 0);
    assert.ok(Math.abs(result.costUsd - (mainCost + beta!.cost_usd)) < 1e-9, "the task's cost includes its specialists'");
  });

  it("stops specialists when the task's budget runs out", async () => {
    h = await withAgents({ alpha: agentFile("alpha") });
    h.api.respondWith((request) => {
      const name = who(request);
      if (name === "alpha") return { content: [{ type: "tool_use", name: "list_files", input: { path: "." } }], usage: { input_tokens: 200_000, output_tokens: 100 } };
      return /report from="alpha"/.test(lastUserText(request)) ? text("over") : consult(["alpha"], "Spend.");
    });
    const id = h.runtime.newSessionId();
    const result = await h.runtime.start(id, h.task({ budget: { max_turns: 10, max_usd: 1.5, timeout_ms: 3_600_000 } }));
    const end = (await h.events(id)).find((event): event is EventOf<"tool_end"> => event.type === "tool_end" && event.name === "consult")!;
    assert.equal(end.specialists![0]!.status, "failed");
    assert.match(end.specialists![0]!.report, /budget/);
    assert.equal(result.status, "failed", "the task itself is then over budget");
    assert.match(result.reason!, /budget\.max_usd/);
  });

  it("runs a specialist under the task's permissions: a write the task does not allow is refused", async () => {
    h = await withAgents({ alpha: agentFile("alpha", "tools: [read_file, write_file]\n") });
    const outside = join(h.root, "outside.txt");
    h.api.respondWith((request) => {
      const name = who(request);
      if (name === "alpha") return /tool_result/.test(lastUserText(request)) ? text("could not write") : { content: [{ type: "tool_use", name: "write_file", input: { path: outside, content: "x" } }] };
      return /report from="alpha"/.test(lastUserText(request)) ? text("ok") : consult(["alpha"], "Write outside.");
    });
    const id = h.runtime.newSessionId();
    await h.runtime.start(id, h.task());
    assert.equal(existsSync(outside), false);
    const childEvents = await readSessionLog(childLog(h, id, "alpha")!);
    const answered = childEvents.find((event): event is EventOf<"approval_answered"> => event.type === "approval_answered");
    assert.equal(answered?.decision, "unreachable", "the ask had nobody to answer it, as for the task itself");
  });

  it("refuses consult inside a specialist", async () => {
    h = await withAgents({ alpha: agentFile("alpha", "tools: [read_file, consult]\n"), beta: agentFile("beta") });
    h.api.respondWith((request) => (who(request) === "beta" ? text("b") : /report from/.test(lastUserText(request)) ? text("done") : consult(["alpha", "beta"], "?")));
    const id = h.runtime.newSessionId();
    await h.runtime.start(id, h.task());
    const end = (await h.events(id)).find((event): event is EventOf<"tool_end"> => event.type === "tool_end" && event.name === "consult")!;
    assert.equal(end.specialists![0]!.status, "unavailable", "an agent file asking for consult is left out");
    assert.equal(end.specialists![1]!.report, "b");
  });

  it("resumes a fan-out after a restart: a finished report is read back, the unfinished specialist resumes", async () => {
    h = await withAgents({ alpha: agentFile("alpha"), beta: agentFile("beta") });
    let betaStalls = true;
    h.api.respondWith((request) => {
      const name = who(request);
      if (name === "alpha") return text("alpha done");
      if (name === "beta") return betaStalls ? { stall: true } : text("beta done after restart");
      return /report from="alpha"/.test(lastUserText(request)) ? text(`final: ${/beta done after restart/.test(lastUserText(request)) ? "both" : "partial"}`) : consult(["alpha", "beta"], "Go.");
    });
    const id = h.runtime.newSessionId();
    const stop = new AbortController();
    const running = h.runtime.start(id, h.task(), { signal: stop.signal });
    await until(() => h!.api.requests.filter((request) => who(request) === "beta").length === 1 && h!.api.requests.some((request) => who(request) === "alpha"));
    await until(() => readFileSync(childLog(h!, id, "alpha") ?? "/dev/null", "utf8").includes("session_end"));
    stop.abort(new Shutdown("restart"));
    assert.equal((await running).status, "interrupted");
    await h.restart();
    betaStalls = false;
    const result = await h.runtime.resume(id);
    assert.equal(result.answer, "final: both");
    assert.equal(h.api.requests.filter((request) => who(request) === "alpha").length, 1, `alpha's finished report was not recomputed: ${h.api.requests.map(who).join(",")}`);
    assert.equal(h.api.requests.filter((request) => who(request) === "beta").length, 2);
  });
});

describe("task files that name specialists", () => {
  it("refuses a task naming a specialist agents/ does not have, saying which exist", async () => {
    h = await createRuntimeHarness();
    const loaded = loadConfig({ NIGHTSHIFT_HOME: h.home, HOME: h.userHome }, h.home);
    const file = parseTaskFile("inbox/audit.md", "---\ntitle: Audit\nspecialists: [reviwer]\n---\nGo.\n");
    assert.throws(() => toTaskSpec(file, { loaded, id: "x", fileName: "inbox/audit.md", source: "inbox" }), /inbox\/audit\.md: specialists: there is no specialist "reviwer" \(agents\/ has challenger, planner, reviewer\)/);
    const good = toTaskSpec(parseTaskFile("inbox/audit.md", "---\ntitle: Audit\nspecialists: [reviewer]\nplan: true\nreview_rounds: 2\n---\nGo.\n"), { loaded, id: "y", fileName: "inbox/audit.md", source: "inbox" });
    assert.deepEqual([good.specialists, good.plan, good.review_rounds], [["reviewer"], true, 2]);
  });
});

describe("plan and review rounds", () => {
  it("runs the planner first with plan: true and gives its plan to the main agent", async () => {
    h = await withAgents({ planner: agentFile("planner") });
    h.api.respondWith((request) => (who(request) === "planner" ? text("1. look\n2. leap") : text("followed the plan")));
    const id = h.runtime.newSessionId();
    await h.runtime.start(id, h.task({ plan: true }));
    assert.deepEqual(h.api.requests.map(who), ["planner", "main"]);
    assert.match(JSON.stringify(h.api.requests[1]!.body.messages[0]), /1\. look\\n2\. leap/);
    assert.ok((await h.events(id)).some((event) => event.type === "plan"));
  });

  it("has the named specialists critique the first draft in parallel, then the main agent revises with every critique", async () => {
    h = await withAgents({ alpha: agentFile("alpha"), beta: agentFile("beta") });
    h.api.respondWith((request) => {
      const name = who(request);
      if (name !== "main") return /DRAFT-1/.test(lastUserText(request)) ? text(`${name}: fix the ending`) : text(`${name}: no draft seen`);
      return /Review round 1/.test(lastUserText(request)) ? text("REVISED") : text("DRAFT-1");
    });
    const id = h.runtime.newSessionId();
    const result = await h.runtime.start(id, h.task({ specialists: ["alpha", "beta"] }));
    assert.equal(result.answer, "REVISED");
    const revision = lastUserText(h.api.requests.at(-1)!);
    assert.match(revision, /alpha: fix the ending/);
    assert.match(revision, /beta: fix the ending/);
    const events = await h.events(id);
    const review = events.find((event): event is EventOf<"review"> => event.type === "review")!;
    assert.deepEqual(review.critiques.map((critique) => critique.report), ["alpha: fix the ending", "beta: fix the ending"]);
    assert.equal(endOf(events)?.answer, "REVISED");
    assert.equal(h.api.requests.filter((request) => who(request) === "main").length, 2, "one revision (review_rounds 1)");
  });
});

/** The log of a task's specialist, wherever its call id put it. */
function childLog(harness: RuntimeHarness, task: string, name: string): string | undefined {
  const folder = join(harness.home, "sessions", task);
  const file = existsSync(folder) ? readdirSync(folder).find((entry) => entry.endsWith(`.${name}.jsonl`)) : undefined;
  return file && join(folder, file);
}

async function until(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
