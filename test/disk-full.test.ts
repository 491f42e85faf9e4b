import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { openSessionLog, readSessionLog } from "../runtime/session-log.ts";
import { createTraceLogger } from "../runtime/trace.ts";
import { nightshift } from "./support/cli.ts";
import { tempDir } from "./support/home.ts";
import { mountSmallDisk, smallDiskSupport, type SmallDisk } from "./support/tmpfs.ts";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
const disk = (size = "1m"): SmallDisk => {
  const mounted = mountSmallDisk(size);
  cleanups.push(() => mounted.cleanup());
  return mounted;
};
const event = (text: string) => ({ type: "warning" as const, at: 1, message: text });

describe("a session log on a full disk", smallDiskSupport(), () => {
  it("fails an append whole: once space returns the next append is not glued to a torn line", async () => {
    const small = disk();
    const path = join(small.path, "s.jsonl");
    const log = await openSessionLog(path, "s");
    cleanups.push(() => log.close());
    await log.append(event("before"));
    small.fill();
    await assert.rejects(log.append(event("x".repeat(20_000))), { code: "ENOSPC" });
    small.unfill();
    await log.append(event("after"));
    await log.append(event("y".repeat(20_000)));
    assert.deepEqual((await readSessionLog(path)).map((entry) => (entry as { message: string }).message.slice(0, 6)), ["before", "after", "yyyyyy"]);
  });
});

describe("the trace on a full disk", smallDiskSupport(), () => {
  it("cuts back a line cut short and counts the lines it lost in one line once writes work", () => {
    const small = disk();
    const file = join(small.path, "trace.jsonl");
    const trace = createTraceLogger(file, "info");
    cleanups.push(() => trace.close());
    trace.info({ event: "before" });
    small.fill();
    trace.info({ event: "long", text: "x".repeat(20_000) });
    trace.info({ event: "long", text: "y".repeat(20_000) });
    small.unfill();
    trace.info({ event: "after" });
    // Every line parses: none was left half written for the next to be glued to.
    const lines = readFileSync(file, "utf8").trimEnd().split("\n").map((line) => JSON.parse(line) as { event: string; dropped?: number; error?: string });
    assert.deepEqual([lines[0]!.event, lines.at(-1)!.event], ["before", "after"]);
    const notices = lines.filter((line) => line.event === "trace_lines_dropped");
    assert.equal(notices.reduce((sum, line) => sum + line.dropped!, 0), 2);
    assert.deepEqual(new Set(notices.map((line) => line.error)), new Set(["ENOSPC"]));
    assert.equal(lines.length, 2 + notices.length);
  });
});

describe("status of a damaged session log", () => {
  it("names the damaged line and what to do instead of reporting a bug", async () => {
    const dir = tempDir();
    cleanups.push(() => dir.cleanup());
    const home = join(dir.path, "home");
    mkdirSync(join(home, "sessions"), { recursive: true });
    const header = JSON.stringify({ format: "nightshift-session", version: 1, id: "t1", created: new Date(0).toISOString() });
    writeFileSync(join(home, "sessions", "t1.jsonl"), `${header}\n{"type":"warning","at":1,"mess{"type":"warning","at":2,"message":"glued"}\n`);
    const status = await nightshift(["status", "t1"], { ...process.env, NIGHTSHIFT_HOME: home });
    assert.equal(status.code, 2, status.stderr);
    assert.match(status.stderr, /t1\.jsonl:2: damaged line in session log; move the file aside/);
    assert.doesNotMatch(status.stderr, /a bug/);
  });
});
