import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startJobs } from "../cli/jobs.ts";
import { FakeClock } from "./support/fake-clock.ts";

const HOUR = 3_600_000;

/** The daemon's nightly jobs on a fake clock, their cursor in memory as the state file would hold it. */
function jobsAt(clock: FakeClock, cron = "0 3 * * *", run?: (slot: number) => Promise<void>) {
  const cursor = new Map<string, number>();
  const runs: number[] = [];
  const jobs = startJobs({
    timezone: "UTC",
    clock,
    lastRun: (name) => cursor.get(name),
    setLastRun: async (name, at) => void cursor.set(name, at),
    report: (_name, error) => assert.fail(String(error)),
    jobs: [{ name: "@consolidate", cron, run: run ?? (async (slot) => void runs.push(slot)) }],
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

  it("closing waits for a job that is running, so its last write lands before the state closes", async () => {
    const clock = new FakeClock(Date.parse("2026-11-24T09:00:00Z"));
    let finish!: () => void;
    const steps: string[] = [];
    const digest = () => new Promise<void>((resolve) => (finish = () => (steps.push("digest sent, cursor written"), resolve())));
    const { jobs } = jobsAt(clock, "0 7 * * *", digest);
    await settle();
    clock.advance(22 * HOUR); // 07:00 the next day: the digest starts and waits on Telegram
    await settle();
    const closed = jobs.close().then(() => steps.push("closed"));
    await settle();
    assert.deepEqual(steps, [], "close waits while the job runs");
    finish();
    await closed;
    assert.deepEqual(steps, ["digest sent, cursor written", "closed"]);
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

  it("says at start when a job's next run is more than a year away", async () => {
    const clock = new FakeClock(Date.parse("2026-12-02T00:00:00Z"));
    const warnings: string[] = [];
    const jobs = startJobs({
      timezone: "Europe/Berlin",
      clock,
      lastRun: () => undefined,
      setLastRun: async () => {},
      report: (_name, error) => assert.fail(String(error)),
      warn: (_name, message) => void warnings.push(message),
      jobs: [
        { name: "@digest", setting: "memory.digest", cron: "0 7 29 2 *", run: async () => {} },
        { name: "@consolidate", setting: "memory.consolidate", cron: "0 3 * * *", run: async () => {} },
      ],
    });
    jobs.close();
    assert.deepEqual(warnings, ['memory.digest: "0 7 29 2 *" next runs on 2028-02-29, more than a year away; check its day and month if that is not meant']);
  });

  it("runs a wild-hour job in both copies of the repeated hour, as cron does", async () => {
    // 02:00 CEST → 02:00 CET on 25 October 2026 in Berlin: 02:00-02:59 twice.
    const clock = new FakeClock(Date.parse("2026-10-24T23:30:00Z"));
    const cursor = new Map<string, number>();
    const runs: number[] = [];
    const jobs = startJobs({
      timezone: "Europe/Berlin",
      clock,
      lastRun: (name) => cursor.get(name),
      setLastRun: async (name, at) => void cursor.set(name, at),
      report: (_name, error) => assert.fail(String(error)),
      jobs: [{ name: "@half-hourly", cron: "*/30 2 * * *", run: async (slot) => void runs.push(slot) }],
    });
    for (let minute = 0; minute < 4 * 60; minute++) {
      clock.advance(60_000);
      await settle();
    }
    jobs.close();
    assert.deepEqual(runs.map((slot) => new Date(slot).toISOString()), ["2026-10-25T00:00:00.000Z", "2026-10-25T00:30:00.000Z", "2026-10-25T01:00:00.000Z", "2026-10-25T01:30:00.000Z"]);
  });
});
