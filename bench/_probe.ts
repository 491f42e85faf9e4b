import { mkdtempSync } from "node:fs";
import { open } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { startMessagesApi } from "../test/support/messages-api.ts";
import Anthropic from "@anthropic-ai/sdk";

const dir = mkdtempSync("/tmp/probe-");
const h = await open(dir + "/x", "a+");
const line = "x".repeat(700) + "\n";
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!.toFixed(3);
async function appendSync() { const s = performance.now(); await h.write(line); await h.datasync(); return performance.now() - s; }

// 1: back to back
const a: number[] = []; for (let i = 0; i < 200; i++) a.push(await appendSync());
console.log("back-to-back", med(a));
// 2: with a 3 ms idle gap between
const b: number[] = []; for (let i = 0; i < 200; i++) { await new Promise((r) => setTimeout(r, 3)); b.push(await appendSync()); }
console.log("after 3ms idle", med(b));
// 3: with busy-wait 3 ms between
const c: number[] = []; for (let i = 0; i < 200; i++) { const e = performance.now() + 3; while (performance.now() < e); c.push(await appendSync()); }
console.log("after 3ms busy", med(c));
// 4: after an HTTP call
const api = await startMessagesApi({ responder: () => ({ content: [{ type: "text", text: "hi" }] }) });
const client = new Anthropic({ baseURL: api.url, apiKey: "k", maxRetries: 0 });
const d: number[] = [];
for (let i = 0; i < 200; i++) {
  const stream = client.messages.stream({ model: "m", max_tokens: 10, messages: [{ role: "user", content: "hi" }] });
  for await (const _ of stream) {}
  await stream.finalMessage();
  d.push(await appendSync());
}
console.log("after HTTP stream", med(d));
await api.close();
