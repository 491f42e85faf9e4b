import { mkdtempSync } from "node:fs";
import { startMessagesApi } from "../test/support/messages-api.ts";
import { runToolSession } from "./runtime.ts";
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!.toFixed(3);
const api = await startMessagesApi();
const dir = { path: mkdtempSync("/tmp/probe-") };
await runToolSession(api, dir, "w", 30);
for (const sync of [true, false, true]) {
  const appends: number[] = [];
  const s = await runToolSession(api, dir, "m" + sync + Math.random(), 200, sync, appends);
  const first = appends.filter((_, i) => i % 2 === 1); // index0 = session_start
  const second = appends.filter((_, i) => i % 2 === 0 && i > 0);
  console.log({ sync, harness: med(s.map((x) => x.stepMs - x.modelMs - x.toolMs)), log: med(s.map((x) => x.logMs)), model: med(s.map((x) => x.modelMs)), first: med(first), second: med(second) });
}
await api.close();
