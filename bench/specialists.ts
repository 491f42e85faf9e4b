/**
 * Fan-out: the main agent consults 4 specialists in parallel, each answering after 1 s of model
 * latency at the Messages API stand-in. Measured in wall time (the stand-in stamps each request on
 * arrival): from the main agent's consult reply to its next request, which carries the 4 reports.
 * The real runtime (`createRuntime` through `test/support/runtime-harness.ts`), real session logs
 * with fdatasync, one child session each. Nothing is asserted. Run with `node bench/specialists.ts`.
 */

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRuntimeHarness } from "../test/support/runtime-harness.ts";
import type { RecordedRequest, Reply } from "../test/support/messages-api.ts";
import { formatRows, type Row } from "./daemon.ts";

const NAMES = ["alpha", "beta", "gamma", "delta"];
const LATENCY_MS = 1000;

export async function benchFanOut(runs = 5): Promise<Row[]> {
  const h = await createRuntimeHarness();
  try {
    mkdirSync(join(h.home, "agents"), { recursive: true });
    for (const name of NAMES) writeFileSync(join(h.home, "agents", `${name}.md`), `---\nname: ${name}\ndescription: bench specialist ${name}\n---\nYou are ${name.toUpperCase()}, a bench specialist.\n`);
    await h.restart();
    const who = (request: RecordedRequest) => /You are (\w+), a bench specialist/.exec(JSON.stringify(request.body.system))?.[1] ?? "main";
    const consultedAt: number[] = [];
    h.api.respondWith((request): Reply => {
      if (who(request) !== "main") return { content: [{ type: "text", text: `${who(request)}: looks fine` }], delayMs: LATENCY_MS };
      const last = JSON.stringify(request.body.messages.at(-1));
      if (last.includes("tool_result")) return { content: [{ type: "text", text: "done" }] };
      consultedAt.push(Date.now());
      return { content: [{ type: "tool_use", name: "consult", input: { specialists: NAMES, question: "Is this sound?", mode: "parallel" } }] };
    });
    const walls: number[] = [];
    for (let run = 0; run < runs; run++) {
      const before = h.api.requests.length;
      const id = h.runtime.newSessionId();
      await h.runtime.start(id, h.task());
      const next = h.api.requests.slice(before).filter((request) => who(request) === "main")[1]!;
      walls.push(next.at - consultedAt[run]!);
    }
    const sorted = [...walls].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    return [
      { name: `consult of 4 specialists at ${LATENCY_MS} ms latency, wall, median of ${runs}`, value: median, unit: "ms", target: 1200 },
      { name: "  of which not model latency (4 sessions started, logged, reported)", value: median - LATENCY_MS, unit: "ms" },
      { name: "  slowest run", value: sorted.at(-1)!, unit: "ms" },
      { name: "  the same 4 run one after another would take at least", value: NAMES.length * LATENCY_MS, unit: "ms" },
    ];
  } finally {
    await h.close();
  }
}

if (import.meta.main) console.log(`## Fan-out of 4 specialists\n\n${formatRows(await benchFanOut())}\n`);
