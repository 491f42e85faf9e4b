import assert from "node:assert/strict";
import { readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { openSessionLog, type EventOf, type SessionEvent } from "../runtime/index.ts";
import type { TaskRecord } from "../tasks/index.ts";
import { chargeReader } from "../dashboard/spend.ts";
import { send, type Setup, signedInDashboards } from "./support/dashboard.ts";

const DAY = 86_400_000;

const signedIn = signedInDashboards();

function task(id: string, title: string): TaskRecord {
  return {
    id,
    title,
    origin: "cli",
    priority: "normal",
    state: "done",
    spec: { title, prompt: "Do it.", workdir: "/tmp/work", model: "main", budget: { max_turns: 10, max_usd: 5, timeout_ms: DAY } },
    created: Date.parse("2026-11-01T00:00:00Z"),
    attempts: 1,
    crashes: 0,
    turns: 1,
    cost_usd: 0,
  };
}

const usage = { input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
const response = (at: number, usd: number): SessionEvent => ({ type: "model_response", at, turn: 1, model: "claude-test", content: [{ type: "text", text: "ok" }], stop_reason: "end_turn", usage, cost_usd: usd, latency_ms: 100, request_bytes: 100 });
const checkpoint = (at: number, usd: number): EventOf<"checkpoint"> => ({ type: "checkpoint", at, summary: "s", keep_from: 0, dropped_turns: 1, input_tokens_before: 1000, method: "small", cost_usd: usd });

async function log(s: Setup, name: string, ...events: SessionEvent[]) {
  const file = await openSessionLog(join(s.home, "sessions", `${name}.jsonl`), name, { now: () => s.clock.now() });
  await file.append(...events);
  await file.close();
}

const dayOf = (at: number) => {
  const date = new Date(at);
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
};

describe("dashboard Cost page", () => {
  it("draws a bar per day of the last 30 with its spend, the daily budget line, a table, the month's total and the costliest tasks", async () => {
    // The fake clock starts on 2026-11-24: the 30 days reach back into October, the month does not.
    const { s, session } = await signedIn({ dailyUsd: 2, tasks: [task("t1", "Big <b>job</b>"), task("t2", "Small job")] });
    const now = s.clock.now();
    await log(s, "t1", response(now - 22 * DAY, 0.25), checkpoint(now - 3 * DAY, 1), response(now, 2.5));
    await log(s, "t2", response(now - 27 * DAY, 0.75), response(now, 0.5));
    await log(s, "t3", response(now - 40 * DAY, 7)); // before both windows
    const response_ = await send(s, "/cost", { cookie: session });
    assert.equal(response_.status, 200);
    const page = await response_.text();
    assert.match(page, /<a href="\/cost">Cost<\/a>/, "the nav");
    const bars = [...page.matchAll(/<rect class="bar( over)?" data-day="([\d-]+)" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"><title>[\d-]+: \$([\d.]+)<\/title>/g)];
    assert.equal(bars.length, 30, "a bar per day");
    assert.equal(bars[29]![2], dayOf(now), "today last");
    assert.equal(bars[0]![2], dayOf(now - 29 * DAY));
    // Today's $3.00 is the tallest (the scale's top) and over the $2.00 budget; the budget line sits at 2/3 of it.
    assert.deepEqual(bars[29]!.slice(1), [" over", dayOf(now), "12.0", "148.0", "3.00"]);
    assert.deepEqual(bars[26]!.slice(1), [undefined, dayOf(now - 3 * DAY), "110.7", "49.3", "1.00"]);
    assert.deepEqual(bars[2]!.slice(1), [undefined, dayOf(now - 27 * DAY), "123.0", "37.0", "0.7500"]);
    assert.equal(bars.filter((bar) => bar[5] !== "0.00").length, 4, "days without spend draw an empty bar");
    assert.match(page, /<line class="budget" x1="0" x2="360" y1="61\.3" y2="61\.3"><title>budget\.daily_usd: \$2\.00<\/title><\/line>/);
    assert.ok(page.indexOf("<table") > page.indexOf("</svg>"), "the table under the chart");
    assert.match(page, new RegExp(`<tr class="warn"><td>${dayOf(now)}</td><td>\\$3\\.00 \\(over the budget\\)</td></tr>`));
    assert.match(page, new RegExp(`<tr><td>${dayOf(now - 27 * DAY)}</td><td>\\$0\\.7500</td></tr>`));
    // November: 0.25 + 1 + 2.5 + 0.5 (October's 0.75 and the 7 from 40 days ago are not this month's).
    assert.match(page, /This month \(2026-11\)<\/h2>\n<p>Total: <strong>\$4\.25<\/strong>/);
    assert.match(page, /<ol class="top"><li><a class="task" href="\/tasks\/t1">Big &lt;b&gt;job&lt;\/b&gt;<\/a> \$3\.75<\/li><li><a class="task" href="\/tasks\/t2">Small job<\/a> \$0\.5000<\/li><\/ol>/);
  });

  it("says so when nothing was spent, and needs a session", async () => {
    const { s, session } = await signedIn();
    const page = await (await send(s, "/cost", { cookie: session })).text();
    assert.match(page, /Total: <strong>\$0\.00<\/strong>/);
    assert.match(page, /Nothing spent this month\./);
    assert.equal((await send(s, "/cost")).status, 401);
  });
});

describe("the charges the Cost and Now pages count (chargeReader)", () => {
  const charge = (at: number, usd: number): SessionEvent => ({ type: "checkpoint", at, summary: "", keep_from: 0, dropped_turns: 1, input_tokens_before: 1, method: "small", cost_usd: usd });

  it("reads a log again only where it grew, and whole when it shrank", async () => {
    const { s } = await signedIn();
    const dir = join(s.home, "sessions");
    const charges = chargeReader(dir);
    const now = s.clock.now();
    const log = await openSessionLog(join(dir, "t1.jsonl"), "t1", { sync: false });
    await log.append(charge(now - 1000, 0.5));
    const sum = async (since: number) => (await charges(since)).reduce((total, item) => total + item.usd, 0);
    assert.equal(await sum(0), 0.5);
    // A byte changed inside what was read is not seen: that part is not read again.
    const text = readFileSync(join(dir, "t1.jsonl"), "utf8");
    writeFileSync(join(dir, "t1.jsonl"), text.replace('"cost_usd":0.5', '"cost_usd":0.7'));
    assert.equal(await sum(0), 0.5);
    await log.append(charge(now, 0.25));
    assert.equal(await sum(0), 0.75, "the new line is read");
    assert.equal(await sum(now), 0.25, "dated from `since` on");
    await log.close();
    writeFileSync(join(dir, "t1.jsonl"), text.split("\n")[0] + "\n" + JSON.stringify(charge(now, 2)) + "\n");
    assert.equal(await sum(0), 2, "a log that shrank is read whole again");
  });

  it("forgets the logs no page can ask for any more, and the ones removed", async () => {
    const { s } = await signedIn();
    const dir = join(s.home, "sessions");
    const charges = chargeReader(dir);
    const now = s.clock.now();
    const day = 86_400_000;
    for (const id of ["old", "recent", "gone"]) {
      const log = await openSessionLog(join(dir, `${id}.jsonl`), id, { sync: false });
      await log.append(charge(now - 1000, 1));
      await log.close();
    }
    const longAgo = (now - 90 * day) / 1000;
    utimesSync(join(dir, "old.jsonl"), longAgo, longAgo);
    await charges(0); // a wide window reads all three
    assert.equal(charges.cached(), 3);
    rmSync(join(dir, "gone.jsonl"));
    assert.equal((await charges(now - 30 * day)).length, 1);
    assert.equal(charges.cached(), 1, "only the log written within the last month is kept");
  });
});
