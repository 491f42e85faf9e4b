import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startJobs } from "../cli/jobs.ts";
import { FakeClock } from "./support/fake-clock.ts";

const HOUR = 3_600_000;

/** The daemon's nightly jobs on a fake clock, their cursor in memory as the state file would hold it. */
function jobsAt(clock: FakeClock, cron = "0 3 * * *") {
  const cursor = new Map<string, number>();
  const runs: number[] = [];
  const jobs = startJobs({
    timezone: "UTC",
    clock,
    lastRun: (name) => cursor.get(name),
    setLastRun: async (name, at) => void cursor.set(name, at),
    report: (_name, error) => assert.fail(String(error)),
    jobs: [{ name: "@consolidate", cron, run: async (slot) => void runs.push(slot) }],
  });
  return { runs, cursor, jobs };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("nightly jobs", () => {
  it("does not run at the first start, then runs at each slot", async () => {
    const clock = new FakeClock(Date.parse("2026-11-24T09:00:00Z"));
    const { runs, jobs } = jobsAt(clock);
    await settle();
    assert.deepEqual(runs, [], "the first start only sets the cursor");
    clock.advance(18 * HOUR + 1000);
    await settle();
    assert.deepEqual(runs, [Date.parse("2026-11-25T03:00:00Z")]);
    jobs.close();
  });

  it("runs once on wake after nights missed while the machine slept, never once per night", async () => {
    const clock = new FakeClock(Date.parse("2026-11-24T09:00:00Z"));
    const { runs, jobs } = jobsAt(clock);
    await settle();
    clock.time += 3 * 24 * HOUR; // asleep: no timer fired, then the clock has jumped
    clock.advance(1); // the overdue check fires on wake
    await settle();
    assert.deepEqual(runs, [Date.parse("2026-11-27T03:00:00Z")], "the latest missed slot, once");
    clock.advance(HOUR);
    await settle();
    assert.equal(runs.length, 1, "and not again until the next slot");
    jobs.close();
  });
});
