import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, test } from "node:test";
import { checkSchedules, formatChecks } from "../cli/doctor.ts";
import { createScheduler, cronSlots } from "../tasks/schedules.ts";
import type { ScheduleEvent, Scheduler, SchedulerOptions, ScheduleStore } from "../tasks/schedules.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { tempDir, writeTree } from "./support/home.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

function scheduleFile(schedule: string, title = "Morning digest"): string {
  return `---\ntitle: ${title}\nschedule: "${schedule}"\n---\nSummarise what happened.\n`;
}

interface Fired {
  name: string;
  title: string;
  due: string;
  catchUp: boolean;
}

interface Harness {
  dir: string;
  clock: FakeClock;
  store: ScheduleStore & { saved: Map<string, number> };
  fired: Fired[];
  events: ScheduleEvent[];
  scheduler: Scheduler;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A scheduler over a temporary schedules/ folder, a fake clock and an in-memory store. */
function harness(setup: {
  files: Record<string, string>;
  now: string;
  lastRun?: Record<string, string>;
  timezone?: string;
  options?: Partial<SchedulerOptions>;
}): Harness {
  const home = tempDir();
  const dir = join(home.path, "schedules");
  writeTree(dir, { ".keep": "", ...setup.files });
  const clock = new FakeClock(at(setup.now));
  const saved = new Map(Object.entries(setup.lastRun ?? {}).map(([name, time]) => [name, at(time)]));
  const store = {
    saved,
    lastRun: (name: string) => saved.get(name),
    setLastRun: async (name: string, time: number) => void saved.set(name, time),
  };
  const fired: Fired[] = [];
  const events: ScheduleEvent[] = [];
  const scheduler = createScheduler({
    dir,
    timezone: setup.timezone ?? "UTC",
    clock,
    store,
    fire: async ({ name, file, due, catchUp }) => void fired.push({ name, title: file.title, due: iso(due)!, catchUp }),
    report: (event) => void events.push(event),
    watch: false,
    ...setup.options,
  });
  cleanups.push(() => {
    scheduler.close();
    home.cleanup();
  });
  return { dir, clock, store, fired, events, scheduler };
}

/** Lets the promise chains started by timers (fire, then setLastRun) finish. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** The machine sleeps: time passes and no timer runs until it wakes, when the overdue ones fire. */
async function sleepFor(clock: FakeClock, ms: number): Promise<void> {
  clock.time += ms;
  clock.advance(0);
  await settle();
}

/** Awake: time passes and every timer fires at its own time. */
async function advance(clock: FakeClock, ms: number): Promise<void> {
  clock.advance(ms);
  await settle();
}

describe("firing", () => {
  test("fires at the slot and persists the last run", async () => {
    const h = harness({
      files: { "digest.md": scheduleFile("0 7 * * *") },
      now: "2026-11-24T06:59:00Z",
      lastRun: { digest: "2026-11-23T07:00:00Z" },
    });
    await h.scheduler.start();
    await advance(h.clock, 59_000);
    assert.equal(h.fired.length, 0);

    await advance(h.clock, 1_000);
    assert.deepEqual(h.fired, [{ name: "digest", title: "Morning digest", due: "2026-11-24T07:00:00.000Z", catchUp: false }]);
    assert.equal(iso(h.store.saved.get("digest")), "2026-11-24T07:00:00.000Z");
    assert.deepEqual(h.events, []);
    assert.deepEqual(h.scheduler.list(), [
      { name: "digest", schedule: "0 7 * * *", next: at("2026-11-25T07:00:00Z"), last: at("2026-11-24T07:00:00Z"), error: undefined },
    ]);
  });

  test("while awake, each slot fires once, on time", async () => {
    const h = harness({
      files: { "hourly.md": scheduleFile("0 * * * *") },
      now: "2026-11-24T09:30:00Z",
      lastRun: { hourly: "2026-11-24T09:00:00Z" },
    });
    await h.scheduler.start();
    await advance(h.clock, 3 * HOUR);
    assert.deepEqual(
      h.fired.map((run) => [run.due, run.catchUp]),
      [
        ["2026-11-24T10:00:00.000Z", false],
        ["2026-11-24T11:00:00.000Z", false],
        ["2026-11-24T12:00:00.000Z", false],
      ],
    );
    assert.equal(iso(h.store.saved.get("hourly")), "2026-11-24T12:00:00.000Z");
    assert.deepEqual(h.events, []);
  });

  test("a clock jump over three slots runs once, as a catch-up, and reports the sleep", async () => {
    const h = harness({
      files: { "hourly.md": scheduleFile("0 * * * *") },
      now: "2026-11-24T09:30:00Z",
      lastRun: { hourly: "2026-11-24T09:00:00Z" },
    });
    await h.scheduler.start();
    await sleepFor(h.clock, 3 * HOUR + 10 * MINUTE); // wakes at 12:40: 10:00, 11:00 and 12:00 missed
    assert.deepEqual(h.fired, [{ name: "hourly", title: "Morning digest", due: "2026-11-24T12:00:00.000Z", catchUp: true }]);
    assert.equal(iso(h.store.saved.get("hourly")), "2026-11-24T12:00:00.000Z");
    const sleep = h.events.find((event) => event.kind === "sleep");
    assert.ok(sleep, "a sleep is reported");
    assert.match(sleep.message, /slept for about 3\.\dh/);
    const missed = h.events.find((event) => event.kind === "missed");
    assert.equal(missed?.name, "hourly");
    assert.match(missed!.message, /3 runs missed/);

    // Afterwards it is back on its slots.
    await advance(h.clock, 20 * MINUTE);
    assert.deepEqual(h.fired.at(-1), { name: "hourly", title: "Morning digest", due: "2026-11-24T13:00:00.000Z", catchUp: false });
    assert.equal(h.fired.length, 2);
  });

  test("a short timer delay is not a sleep", async () => {
    const h = harness({ files: { "hourly.md": scheduleFile("0 * * * *") }, now: "2026-11-24T09:30:00Z", lastRun: { hourly: "2026-11-24T09:00:00Z" } });
    await h.scheduler.start();
    await sleepFor(h.clock, 20_000); // under the 30 s threshold
    await advance(h.clock, HOUR);
    assert.deepEqual(h.events, []);
    assert.deepEqual(h.fired.map((run) => run.catchUp), [false]);
  });

  test("start after downtime with missed slots runs once, as a catch-up", async () => {
    const h = harness({
      files: { "digest.md": scheduleFile("0 7 * * *") },
      now: "2026-11-24T09:00:00Z",
      lastRun: { digest: "2026-11-21T07:00:00Z" },
    });
    await h.scheduler.start();
    await settle();
    assert.deepEqual(h.fired, [{ name: "digest", title: "Morning digest", due: "2026-11-24T07:00:00.000Z", catchUp: true }]);
    assert.equal(iso(h.store.saved.get("digest")), "2026-11-24T07:00:00.000Z");
    assert.match(h.events.find((event) => event.kind === "missed")!.message, /3 runs missed since 2026-11-21T07:00:00.000Z/);

    await advance(h.clock, 12 * HOUR);
    assert.equal(h.fired.length, 1, "nothing more until tomorrow's slot");
  });

  test("a catch-up another machine queued first is not said as missed here (several machines)", async () => {
    const h = harness({
      files: { "digest.md": scheduleFile("0 7 * * *") },
      now: "2026-11-24T09:00:00Z",
      lastRun: { digest: "2026-11-21T07:00:00Z" },
      options: { fire: async () => false },
    });
    await h.scheduler.start();
    await settle();
    assert.deepEqual(h.events, [], "the slot was run elsewhere: nothing is missed");
    assert.equal(iso(h.store.saved.get("digest")), "2026-11-24T07:00:00.000Z", "and it is not fired again here");
  });

  test("a first start without a last run does not catch up; it records now as the baseline", async () => {
    const h = harness({ files: { "digest.md": scheduleFile("0 7 * * *") }, now: "2026-11-24T09:00:00Z" });
    await h.scheduler.start();
    await settle();
    assert.equal(h.fired.length, 0);
    assert.equal(iso(h.store.saved.get("digest")), "2026-11-24T09:00:00.000Z");

    await advance(h.clock, 22 * HOUR);
    assert.deepEqual(h.fired, [{ name: "digest", title: "Morning digest", due: "2026-11-25T07:00:00.000Z", catchUp: false }]);
  });

  test("a run that cannot be queued keeps the cursor and is tried again", async () => {
    let failures = 1;
    const queued: number[] = [];
    const h = harness({
      files: { "digest.md": scheduleFile("0 7 * * *") },
      now: "2026-11-24T06:59:00Z",
      lastRun: { digest: "2026-11-23T07:00:00Z" },
      options: {
        fire: async ({ due }) => {
          if (failures-- > 0) throw new Error("state file is read-only");
          queued.push(due);
        },
      },
    });
    await h.scheduler.start();
    await advance(h.clock, MINUTE);
    assert.equal(queued.length, 0);
    assert.equal(iso(h.store.saved.get("digest")), "2026-11-23T07:00:00.000Z");
    assert.match(h.events.at(-1)!.message, /could not be queued \(state file is read-only\)/);
    assert.match(h.scheduler.list()[0]!.error!, /could not be queued/);

    await advance(h.clock, MINUTE);
    assert.deepEqual(queued.map(iso), ["2026-11-24T07:00:00.000Z"]);
    assert.equal(iso(h.store.saved.get("digest")), "2026-11-24T07:00:00.000Z");
    assert.equal(h.scheduler.list()[0]!.error, undefined);
  });
});

describe("schedule files", () => {
  test("a bad cron expression and a file without schedule are reported; a good one still works", async () => {
    const h = harness({
      files: {
        "good.md": scheduleFile("0 7 * * *"),
        "bad.md": scheduleFile("61 7 * * *"),
        "plain.md": "---\ntitle: No schedule here\n---\nDo it.\n",
        "typo.md": "---\ntitle: Typo\nschedul: \"0 7 * * *\"\n---\nDo it.\n",
        "notes.txt": "not a task",
      },
      now: "2026-11-24T06:00:00Z",
      lastRun: { good: "2026-11-23T07:00:00Z" },
      options: {
        report: (event) => {
          h.events.push(event);
          throw new Error("a broken reporter must not stop the scheduler");
        },
      },
    });
    await h.scheduler.start();

    const invalid = Object.fromEntries(h.events.filter((event) => event.kind === "invalid").map((event) => [event.name, event.message]));
    assert.deepEqual(Object.keys(invalid).sort(), ["bad", "plain", "typo"]);
    assert.match(invalid.bad!, /bad\.md:3: schedule: "61 7 \* \* \*" is not a valid cron expression: the minute \(0-59\) field is wrong .*; write five fields/);
    assert.match(invalid.plain!, /plain\.md: schedule: is missing; add a cron expression/);
    assert.match(invalid.typo!, /typo\.md:3: schedul: unknown key `schedul`; did you mean `schedule`\?/);

    const list = h.scheduler.list();
    assert.deepEqual(list.map((row) => [row.name, row.error === undefined]), [["bad", false], ["good", true], ["plain", false], ["typo", false]]);
    assert.equal(list.find((row) => row.name === "bad")!.schedule, "61 7 * * *");

    await advance(h.clock, HOUR);
    assert.deepEqual(h.fired.map((run) => run.name), ["good"]);

    // The same problems are not reported again on every reload.
    const before = h.events.length;
    await h.scheduler.reload();
    assert.equal(h.events.length, before);
  });

  test("reload picks up a new file, a changed expression and a removed file", async () => {
    const h = harness({
      files: { "digest.md": scheduleFile("0 7 * * *") },
      now: "2026-11-24T09:00:00Z",
      lastRun: { digest: "2026-11-24T07:00:00Z" },
    });
    await h.scheduler.start();
    writeFileSync(join(h.dir, "weekly.md"), scheduleFile("0 8 * * 3", "Weekly review"));
    writeFileSync(join(h.dir, "digest.md"), scheduleFile("0 10 * * *", "Later digest"));
    await h.scheduler.reload();

    assert.deepEqual(
      h.scheduler.list().map((row) => [row.name, row.schedule, iso(row.next)]),
      [
        ["digest", "0 10 * * *", "2026-11-24T10:00:00.000Z"],
        ["weekly", "0 8 * * 3", "2026-11-25T08:00:00.000Z"],
      ],
    );
    // Neither a new file nor a changed rule catches up on slots from before it was seen.
    assert.equal(h.fired.length, 0);
    assert.equal(iso(h.store.saved.get("weekly")), "2026-11-24T09:00:00.000Z");

    await advance(h.clock, DAY);
    assert.deepEqual(
      h.fired.map((run) => [run.name, run.title, run.due]),
      [
        ["digest", "Later digest", "2026-11-24T10:00:00.000Z"],
        ["weekly", "Weekly review", "2026-11-25T08:00:00.000Z"],
      ],
    );

    rmSync(join(h.dir, "weekly.md"));
    await h.scheduler.reload();
    await advance(h.clock, 7 * DAY);
    assert.equal(h.fired.filter((run) => run.name === "weekly").length, 1);
    assert.deepEqual(h.scheduler.list().map((row) => row.name), ["digest"]);
  });

  test("the folder is watched: a new file is picked up without calling reload", async () => {
    const h = harness({ files: {}, now: "2026-11-24T09:00:00Z", options: { watch: true } });
    await h.scheduler.start();
    const timers = h.clock.pendingTimers;
    writeFileSync(join(h.dir, "digest.md"), scheduleFile("0 7 * * *"));
    // Wait (without sleeping) for the change event to arm the debounce timer.
    const deadline = Date.now() + 5_000;
    while (h.clock.pendingTimers === timers && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
    assert.ok(h.clock.pendingTimers > timers, "the change was noticed");
    // The reload reads the folder with real I/O: keep advancing until it has, bounded by real time.
    const reloaded = Date.now() + 5_000;
    while (h.scheduler.list().length === 0 && Date.now() < reloaded) {
      await advance(h.clock, 1_000);
      await new Promise((resolve) => setTimeout(resolve, 5)); // let the file-system reads finish, not a wait for time to pass
    }
    assert.deepEqual(h.scheduler.list().map((row) => row.name), ["digest"]);
  });

  test("a change the folder's watch missed is found by the tick (macOS FSEvents, network folders)", async () => {
    const h = harness({ files: {}, now: "2026-11-24T09:00:00Z", options: { watch: false } });
    await h.scheduler.start();
    writeFileSync(join(h.dir, "digest.md"), scheduleFile("0 7 * * *"));
    await advance(h.clock, 5_000);
    assert.deepEqual(h.scheduler.list(), [], "nothing watches, and the tick has not come");
    // The reload reads the folder with real I/O: keep advancing until it has, bounded by real time.
    const reloaded = Date.now() + 5_000;
    while (h.scheduler.list().length === 0 && Date.now() < reloaded) {
      await advance(h.clock, 5_000);
      await new Promise((resolve) => setTimeout(resolve, 5)); // let the file-system reads finish, not a wait for time to pass
    }
    assert.deepEqual(h.scheduler.list().map((row) => row.name), ["digest"]);
  });

  test("close() clears every timer", async () => {
    const h = harness({ files: { "a.md": scheduleFile("0 7 * * *"), "b.md": scheduleFile("*/5 * * * *") }, now: "2026-11-24T09:00:00Z", options: { watch: true } });
    await h.scheduler.start();
    assert.ok(h.clock.pendingTimers >= 3);
    h.scheduler.close();
    assert.equal(h.clock.pendingTimers, 0);
  });
});

describe("time zones", () => {
  test("07:00 in New York and in Berlin are different instants", async () => {
    const next = async (timezone: string) => {
      const h = harness({ files: { "digest.md": scheduleFile("0 7 * * *") }, now: "2026-11-24T00:00:00Z", timezone });
      await h.scheduler.start();
      return iso(h.scheduler.list()[0]!.next);
    };
    assert.equal(await next("America/New_York"), "2026-11-24T12:00:00.000Z");
    assert.equal(await next("Europe/Berlin"), "2026-11-24T06:00:00.000Z");

    const h = harness({ files: { "digest.md": scheduleFile("0 7 * * *") }, now: "2026-11-24T00:00:00Z", timezone: "America/New_York", lastRun: { digest: "2026-11-23T12:00:00Z" } });
    await h.scheduler.start();
    await advance(h.clock, 12 * HOUR - 1);
    assert.equal(h.fired.length, 0);
    await advance(h.clock, 1);
    assert.deepEqual(h.fired.map((run) => run.due), ["2026-11-24T12:00:00.000Z"]);
  });

  test("slots follow the zone's offset across the year", () => {
    const slots = cronSlots("0 7 * * *", "Europe/Berlin");
    assert.equal(iso(slots.next(at("2026-07-01T00:00:00Z"))), "2026-07-01T05:00:00.000Z"); // CEST, +2
    assert.equal(iso(slots.next(at("2026-12-01T00:00:00Z"))), "2026-12-01T06:00:00.000Z"); // CET, +1
    assert.equal(iso(slots.previous(at("2026-12-01T06:00:00Z"))), "2026-12-01T06:00:00.000Z", "at or before");
    assert.equal(iso(slots.previous(at("2026-12-01T05:59:59Z"))), "2026-11-30T06:00:00.000Z");
    slots.dispose();
  });

  test("an unknown time zone is a config error", () => {
    assert.throws(
      () => createScheduler({ dir: "/nonexistent", timezone: "Mars/Olympus", clock: new FakeClock(), store: { lastRun: () => undefined, setLastRun: async () => {} }, fire: async () => {} }),
      { name: "ConfigError", message: /unknown time zone "Mars\/Olympus"/ },
    );
  });

  test("spring forward: a 02:30 slot that does not exist runs at 03:00, once", async () => {
    const slots = cronSlots("30 2 * * *", "America/New_York");
    assert.equal(iso(slots.next(at("2026-03-07T12:00:00Z"))), "2026-03-08T07:00:00.000Z"); // 03:00 EDT
    assert.equal(iso(slots.next(at("2026-03-08T07:00:00Z"))), "2026-03-09T06:30:00.000Z"); // 02:30 EDT
    assert.equal(iso(slots.previous(at("2026-03-08T07:10:00Z"))), "2026-03-08T07:00:00.000Z");

    // A wild job (minute or hour starts with `*`) runs only at times the clock shows: 03:00 is one.
    const halfHourly = cronSlots("*/30 * * * *", "America/New_York");
    const runs: Array<string | undefined> = [];
    for (let time = at("2026-03-08T06:00:00Z"); runs.length < 4; ) runs.push(iso((time = halfHourly.next(time)!)));
    assert.deepEqual(runs, ["2026-03-08T06:30:00.000Z", "2026-03-08T07:00:00.000Z", "2026-03-08T07:30:00.000Z", "2026-03-08T08:00:00.000Z"]);

    // Through the scheduler: one run that night, at 03:00 EDT.
    const h = harness({
      files: { "night.md": scheduleFile("30 2 * * *") },
      now: "2026-03-07T12:00:00Z",
      timezone: "America/New_York",
      lastRun: { night: "2026-03-07T07:30:00Z" },
    });
    await h.scheduler.start();
    await advance(h.clock, DAY);
    assert.deepEqual(h.fired.map((run) => [run.due, run.catchUp]), [["2026-03-08T07:00:00.000Z", false]]);
  });

  test("fall back: a 01:30 slot that happens twice runs once, at the first", () => {
    const slots = cronSlots("30 1 * * *", "America/New_York");
    assert.equal(iso(slots.next(at("2026-11-01T00:00:00Z"))), "2026-11-01T05:30:00.000Z"); // 01:30 EDT
    assert.equal(iso(slots.next(at("2026-11-01T05:30:00Z"))), "2026-11-02T06:30:00.000Z"); // not 01:30 EST
    assert.equal(iso(slots.previous(at("2026-11-01T06:45:00Z"))), "2026-11-01T05:30:00.000Z");
  });

  test("day tokens (L, 1#2, names) and six-field expressions are honoured", () => {
    const from = at("2026-02-10T00:00:00Z");
    assert.equal(iso(cronSlots("0 9 L * *", "UTC").next(from)), "2026-02-28T09:00:00.000Z");
    assert.equal(iso(cronSlots("0 9 * * 1#2", "UTC").next(from)), "2026-03-09T09:00:00.000Z");
    assert.equal(iso(cronSlots("0 9 * * MON-FRI", "UTC").next(at("2026-02-14T00:00:00Z"))), "2026-02-16T09:00:00.000Z");
    assert.equal(iso(cronSlots("*/15 * * * * *", "UTC").next(from)), "2026-02-10T00:00:15.000Z");
    assert.equal(iso(cronSlots("0 0 1 1 *", "UTC").previous(from)), "2026-01-01T00:00:00.000Z");
  });
});

/** The runs of `expression` in `timezone` in (from, to]. */
function runs(expression: string, timezone: string, from: string, to: string): string[] {
  const slots = cronSlots(expression, timezone);
  const found: string[] = [];
  for (let time = slots.next(at(from)); time !== undefined && time <= at(to); time = slots.next(time)) found.push(iso(time)!);
  slots.dispose();
  return found;
}

describe("what a crontab means", () => {
  test("when day of month and day of week are both restricted, either one matching runs the job", async () => {
    assert.deepEqual(runs("0 9 1 * MON", "UTC", "2026-06-01T10:00:00Z", "2026-07-06T09:00:00Z"), [
      "2026-06-08T09:00:00.000Z", "2026-06-15T09:00:00.000Z", "2026-06-22T09:00:00.000Z", "2026-06-29T09:00:00.000Z", // Mondays
      "2026-07-01T09:00:00.000Z", // the 1st, a Wednesday
      "2026-07-06T09:00:00.000Z",
    ]);
    assert.deepEqual(runs("0 9 1,15 * 5", "Europe/Berlin", "2026-05-01T10:00:00Z", "2026-06-15T09:00:00Z"), [
      "2026-05-08T07:00:00.000Z", "2026-05-15T07:00:00.000Z", "2026-05-22T07:00:00.000Z", "2026-05-29T07:00:00.000Z",
      "2026-06-01T07:00:00.000Z", "2026-06-05T07:00:00.000Z", "2026-06-12T07:00:00.000Z", "2026-06-15T07:00:00.000Z",
    ]);
    // A field starting with `*` (even `*/2`) is a star: then both must match, as cronie does.
    assert.deepEqual(runs("0 9 */2 * 1", "UTC", "2026-05-01T10:00:00Z", "2026-06-15T09:00:00Z"), ["2026-05-11T09:00:00.000Z", "2026-05-25T09:00:00.000Z", "2026-06-01T09:00:00.000Z", "2026-06-15T09:00:00.000Z"]);
    assert.deepEqual(runs("0 9 * * MON", "UTC", "2026-06-01T10:00:00Z", "2026-06-16T00:00:00Z"), ["2026-06-08T09:00:00.000Z", "2026-06-15T09:00:00.000Z"]);

    // Through the scheduler: the 1st of July, a Wednesday, runs `0 9 1 * MON`.
    const h = harness({ files: { "monthly.md": scheduleFile("0 9 1 * MON") }, now: "2026-06-30T12:00:00Z", lastRun: { monthly: "2026-06-29T09:00:00Z" } });
    await h.scheduler.start();
    await advance(h.clock, DAY);
    assert.deepEqual(h.fired.map((run) => run.due), ["2026-07-01T09:00:00.000Z"]);
  });

  for (const [zone, night, from, to, expected] of [
    // 02:00 EST → 03:00 EDT on 8 March 2026
    ["America/New_York", "spring forward", "2026-03-08T05:00:00Z", "2026-03-08T09:00:00Z", ["05:30", "06:30", "07:30", "08:30"]],
    // 02:00 AEST → 03:00 AEDT on 4 October 2026
    ["Australia/Sydney", "spring forward", "2026-10-03T14:00:00Z", "2026-10-03T18:00:00Z", ["14:30", "15:30", "16:30", "17:30"]],
  ] as const) {
    test(`a job with a wild hour does not run at the end of the skipped hour (${zone}, ${night})`, async () => {
      // `30 * * * *`: 00:30, 01:30, then 03:30; the clock never shows 02:30, and 03:00 is not :30.
      assert.deepEqual(runs("30 * * * *", zone, from, to).map((time) => time.slice(11, 16)), expected);
      const h = harness({ files: { "hourly.md": scheduleFile("30 * * * *") }, now: from, timezone: zone, lastRun: { hourly: from } });
      await h.scheduler.start();
      for (let minute = 0; minute < 4 * 60; minute++) await advance(h.clock, MINUTE);
      assert.deepEqual(h.fired.map((run) => run.due.slice(11, 16)), expected);
      assert.ok(h.fired.every((run) => !run.catchUp));
    });
  }

  for (const [zone, from, to] of [
    // 02:00 EDT → 01:00 EST on 1 November 2026: 01:00-01:59 twice
    ["America/New_York", "2026-11-01T04:59:00Z", "2026-11-01T07:00:00Z"],
    // 03:00 AEDT → 02:00 AEST on 5 April 2026: 02:00-02:59 twice
    ["Australia/Sydney", "2026-04-04T14:59:00Z", "2026-04-04T17:00:00Z"],
  ] as const) {
    test(`*/15 runs four times in each copy of the repeated hour (${zone}, fall back)`, async () => {
      const quarters = Array.from({ length: 9 }, (_, i) => iso(at(from) + MINUTE + i * 15 * MINUTE));
      assert.deepEqual(runs("*/15 * * * *", zone, from, to), quarters, "4 in the first copy, 4 in the second, then the hour after");
      const h = harness({ files: { "quarterly.md": scheduleFile("*/15 * * * *") }, now: from, timezone: zone, lastRun: { quarterly: from } });
      await h.scheduler.start();
      for (let minute = 0; minute < 121; minute++) await advance(h.clock, MINUTE);
      assert.deepEqual(h.fired.map((run) => run.due), quarters);
    });
  }
});

describe("cronie's daylight-saving rules for fixed-time jobs", () => {
  test("a time skipped by spring forward runs right after the jump, in the southern hemisphere and at +12:45 too", () => {
    // 02:30 does not exist in Sydney on 4 October 2026: it runs at 03:00 AEDT (16:00Z).
    assert.deepEqual(runs("30 2 * * *", "Australia/Sydney", "2026-10-02T00:00:00Z", "2026-10-05T00:00:00Z"), ["2026-10-02T16:30:00.000Z", "2026-10-03T16:00:00.000Z", "2026-10-04T15:30:00.000Z"]);
    // Chatham skips 02:45-03:45 on 27 September 2026: 03:00 runs at 03:45 (14:00Z).
    assert.deepEqual(runs("0 3 * * *", "Pacific/Chatham", "2026-09-25T00:00:00Z", "2026-09-28T00:00:00Z"), ["2026-09-25T14:15:00.000Z", "2026-09-26T14:00:00.000Z", "2026-09-27T13:15:00.000Z"]);
  });

  test("a time in the repeated hour runs once, at its first occurrence", () => {
    assert.deepEqual(runs("30 2 * * *", "Australia/Sydney", "2026-04-03T00:00:00Z", "2026-04-06T00:00:00Z"), ["2026-04-03T15:30:00.000Z", "2026-04-04T15:30:00.000Z", "2026-04-05T16:30:00.000Z"]);
    // A stepped range is fixed-time in cronie (its hour field does not start with `*`): 01:00 once.
    assert.deepEqual(runs("0 1-3/2 * * *", "America/New_York", "2026-11-01T04:00:00Z", "2026-11-01T09:00:00Z"), ["2026-11-01T05:00:00.000Z", "2026-11-01T08:00:00.000Z"]);
  });
});

describe("schedules that run rarely or never", () => {
  test("are reported at load with their next run, or why they never run, and keep their warning in the list", async () => {
    const h = harness({
      files: { "never.md": scheduleFile("0 0 30 2 *"), "leap.md": scheduleFile("0 0 29 2 *"), "daily.md": scheduleFile("0 7 * * *") },
      now: "2026-12-02T00:00:00Z",
    });
    await h.scheduler.start();
    const rare = Object.fromEntries(h.events.filter((event) => event.kind === "rare").map((event) => [event.name, event.message]));
    assert.deepEqual(Object.keys(rare).sort(), ["leap", "never"]);
    assert.match(rare.never!, /schedules\/never\.md: schedule "0 0 30 2 \*" never runs \(February has no 30th\); fix the day$/);
    assert.match(rare.leap!, /schedules\/leap\.md: schedule "0 0 29 2 \*" next runs on 2028-02-29, more than a year away/);
    const list = Object.fromEntries(h.scheduler.list().map((row) => [row.name, row]));
    assert.equal(list.never!.next, undefined);
    assert.equal(list.never!.error, undefined, "valid, so not an error");
    assert.match(list.never!.warning!, /never runs/);
    assert.equal(list.daily!.warning, undefined);

    // Not said again on a reload of the same files.
    const before = h.events.length;
    await h.scheduler.reload();
    assert.equal(h.events.length, before);
  });

  test("doctor warns about them, and about a memory job more than a year away", async () => {
    const home = tempDir();
    cleanups.push(() => home.cleanup());
    writeTree(join(home.path, "schedules"), { "never.md": scheduleFile("0 0 30 2 *"), "daily.md": scheduleFile("0 7 * * *"), "bad.md": scheduleFile("61 7 * * *") });
    const checks = checkSchedules({ home: home.path, timezone: "Europe/Berlin", jobs: { "memory.consolidate": "0 3 * * *", "memory.digest": "0 7 29 2 *" }, now: at("2026-12-02T00:00:00Z") });
    const text = formatChecks(await checks);
    assert.match(text, /! .*schedules\/never\.md: schedule "0 0 30 2 \*" never runs \(February has no 30th\); fix the day/);
    assert.match(text, /! memory\.digest: "0 7 29 2 \*" next runs on 2028-02-29, more than a year away/);
    assert.match(text, /✗ .*bad\.md:3: schedule: "61 7 \* \* \*" is not a valid cron expression/);
    assert.match(text, /✓ schedules: daily \(next 2026-12-02 07:00 Europe\/Berlin\)/);
    assert.doesNotMatch(text, /consolidate/);
  });
});
