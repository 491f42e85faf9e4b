import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { createTraceLogger } from "../runtime/trace.ts";

const dir = mkdtempSync(join(tmpdir(), "nightshift-trace-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const lines = (file: string) => readFileSync(file, "utf8").trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);

describe("the trace", () => {
  test("writes one JSON line per call in pino's shape, at once, only at or above its level", () => {
    const file = join(dir, "logs", "levels.jsonl");
    const trace = createTraceLogger(file, "info");
    trace.debug({ event: "quiet" }, "not written");
    trace.info({ session: "s1", event: "tool_start" }, "tool call");
    trace.warn({ event: "budget_warning" });
    const [info, warn, ...rest] = lines(file); // read before close: nothing waits in a buffer
    assert.deepEqual(rest, []);
    assert.deepEqual(Object.keys(info!), ["level", "time", "session", "event", "msg"]);
    assert.equal(info!.level, 30);
    assert.equal(info!.msg, "tool call");
    assert.equal(warn!.level, 40);
    assert.equal(typeof info!.time, "number");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    trace.close();
  });

  test("never writes a key or token field, at any depth, and survives cycles, bigints and errors", () => {
    const file = join(dir, "secrets.jsonl");
    const trace = createTraceLogger(file, "debug");
    const loop: Record<string, unknown> = { name: "loop" };
    loop.self = loop;
    const shared = { id: 7 };
    trace.error({ apiKey: "sk-ant-secret", role: { api_key: "sk-ant-other" }, headers: { authorization: "Bearer x", "x-api-key": "y" }, loop, a: shared, b: shared, big: 10n, error: new Error("boom") }, "call failed");
    const text = readFileSync(file, "utf8");
    assert.doesNotMatch(text, /sk-ant|Bearer x|"y"/);
    const [line] = lines(file);
    assert.equal(line!.apiKey, "[redacted]");
    assert.deepEqual(line!.loop, { name: "loop", self: "[Circular]" });
    assert.deepEqual([line!.a, line!.b], [{ id: 7 }, { id: 7 }], "an object seen twice is not a cycle");
    assert.equal(line!.big, "10");
    assert.equal((line!.error as { message: string }).message, "boom");
    trace.close();
  });

  test("silent writes nothing and creates no file", () => {
    const file = join(dir, "silent", "trace.jsonl");
    const trace = createTraceLogger(file, "silent");
    trace.error({ event: "x" }, "nothing");
    assert.throws(() => statSync(file));
  });
});
