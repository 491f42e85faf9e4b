import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, it } from "node:test";
import type { EventOf, SessionEvent } from "../runtime/events.ts";
import { readSessionLog } from "../runtime/session-log.ts";
import type { RecordedRequest, Reply } from "./support/messages-api.ts";
import { createRuntimeHarness, type RuntimeHarness } from "./support/runtime-harness.ts";

let h: RuntimeHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});
const text = (reply: string): Reply => ({ content: [{ type: "text", text: reply }], usage: { input_tokens: 1000, output_tokens: 100 } });
const agentFile = (name: string) => `---\nname: ${name}\ndescription: the ${name} test specialist\n---\nYou are ${name.toUpperCase()}, a test specialist.\n`;
const who = (request: RecordedRequest) => /You are (\w+), a test specialist/.exec(JSON.stringify(request.body.system))?.[1]?.toLowerCase() ?? "main";
const lastUserText = (request: RecordedRequest): string => JSON.stringify(request.body.messages.at(-1).content);

it("two parallel specialists with the same name do not share one session log", async () => {
  h = await createRuntimeHarness();
  mkdirSync(join(h.home, "agents"), { recursive: true });
  writeFileSync(join(h.home, "agents", "alpha.md"), agentFile("alpha"));
  await h.restart();
  h.api.respondWith((request) => {
    if (who(request) === "alpha") return { ...text("alpha ok"), delayMs: 200 };
    return /report from/.test(lastUserText(request)) ? text("done") : { content: [{ type: "tool_use", name: "consult", input: { specialists: ["alpha", "alpha"], question: "Two views please." } }] };
  });
  const id = h.runtime.newSessionId();
  await h.runtime.start(id, h.task());
  const end = (await h.events(id)).find((event): event is EventOf<"tool_end"> => event.type === "tool_end" && event.name === "consult")!;
  const sessions = end.specialists!.map((report) => report.session);
  const log: SessionEvent[] = await readSessionLog(join(h.home, "sessions", id, `${sessions[0]}.jsonl`));
  const starts = log.filter((event) => event.type === "session_start").length;
  assert.equal(starts, 1, `one log holds ${starts} session_start events (two writers, one file): ${sessions.join(" / ")}`);
});

it("a restart while the planner runs resumes the planner instead of recording it as the plan", async () => {
  const { Shutdown } = await import("../runtime/loop.ts");
  h = await createRuntimeHarness();
  mkdirSync(join(h.home, "agents"), { recursive: true });
  writeFileSync(join(h.home, "agents", "planner.md"), agentFile("planner"));
  await h.restart();
  let stall = true;
  h.api.respondWith((request) => {
    if (who(request) === "planner") return stall ? { ...text("late plan"), delayMs: 2000 } : text("1. look 2. leap");
    return text("main answer");
  });
  const id = h.runtime.newSessionId();
  const stop = new AbortController();
  const running = h.runtime.start(id, h.task({ plan: true }), { signal: stop.signal });
  for (let i = 0; i < 200 && !h.api.requests.some((request) => who(request) === "planner"); i++) await new Promise((r) => setTimeout(r, 10));
  stop.abort(new Shutdown("restart"));
  await running;
  const plan = (await h.events(id)).find((event): event is EventOf<"plan"> => event.type === "plan");
  assert.equal(plan, undefined, `an interrupted planner was recorded as the plan: ${JSON.stringify(plan?.report)}`);
});
