import { readdirSync, statSync, watch } from "node:fs";
import type { FSWatcher } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import type { Clock } from "../runtime/clock.ts";
import { checkTimezone, cronProblem, cronRarity, cronSlots } from "../runtime/cron.ts";
import type { CronSlots } from "../runtime/cron.ts";
import { formatDuration } from "../runtime/duration.ts";
import { TaskFileError } from "../runtime/errors.ts";
import { readTaskFile } from "./task-file.ts";
import type { TaskFile } from "./task-file.ts";

/**
 * Recurring tasks from `schedules/*.md`.
 *
 * Why our own timers and not a cron library's: those arm real `setTimeout`s against `Date`, skip
 * what they missed, and know nothing of the persisted cursor. Here croner (runtime/cron.ts) says
 * which instants an expression names; they are waited for through the injected Clock, and the
 * cursor (`ScheduleStore`) decides what is due: a slot runs when it is after the
 * last run, so the daemon being down, the machine sleeping or a timer firing late all reduce to
 * "the latest slot at or before now is newer than the cursor": one run, never a burst.
 */

export interface ScheduleStore {
  lastRun(name: string): number | undefined;
  /** Durable when it resolves. */
  setLastRun(name: string, at: number): Promise<void>;
}

export interface ScheduleEvent {
  /** "rare": valid, but its next run is more than a year away, or never comes. */
  kind: "invalid" | "rare" | "sleep" | "missed";
  name?: string;
  message: string;
}

export interface SchedulerOptions {
  /** NIGHTSHIFT_HOME/schedules */
  dir: string;
  /** IANA zone, from config (default there: the system's). */
  timezone: string;
  clock: Clock;
  store: ScheduleStore;
  /** Queue a run of this schedule; resolves when durable. `due` is the slot's time. False: another machine queued this slot first. */
  fire(run: { name: string; file: TaskFile; due: number; catchUp: boolean }): Promise<boolean | void>;
  /** Problems to show the user (a bad schedule file, a bad cron expression, sleep detected). Must not throw. */
  report?(event: ScheduleEvent): void;
  /** Timer drift above this means the machine slept. Default 30 s. */
  driftMs?: number;
  /** Watch the folder and reload on change. Default true. */
  watch?: boolean;
}

export interface ScheduleStatus {
  name: string;
  schedule: string;
  next?: number;
  last?: number;
  error?: string;
  /** Runs more than a year from now, or never (see `cronRarity`). */
  warning?: string;
}

export interface Scheduler {
  start(): Promise<void>;
  reload(): Promise<void>;
  close(): void;
  /** For status. */
  list(): ScheduleStatus[];
}

export const DEFAULT_DRIFT_MS = 30_000;
/** How often the sleep detector looks at the clock. */
export const TICK_MS = 10_000;
/** A run that could not be queued is tried again this much later (or at its next slot, if sooner). */
const RETRY_MS = 60_000;
/** Long waits are cut into pieces: setTimeout overflows past ~24.8 days, and a shorter timer costs nothing. */
const MAX_TIMER_MS = 6 * 3_600_000;
const RELOAD_DEBOUNCE_MS = 250;

// ---------------------------------------------------------------------------------------------
// Slots: what an expression means (crontab(5), cronie's DST rules) is in runtime/cron.ts.

export { cronSlots, type CronSlots } from "../runtime/cron.ts";

// ---------------------------------------------------------------------------------------------
// Reading schedules/

export interface Loaded {
  name: string;
  path: string;
  schedule: string;
  file: TaskFile;
}

export interface Rejected {
  name: string;
  schedule?: string;
  message: string;
}

/** Every `*.md` in `dir`, valid or not; a missing folder has none. Also for `nightshift doctor`. */
export async function readSchedules(dir: string): Promise<Array<Loaded | Rejected>> {
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((entry) => !entry.isDirectory()).map((entry) => entry.name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const files = names.filter((name) => name.endsWith(".md") && !name.startsWith(".")).sort();
  return Promise.all(files.map((name) => readSchedule(join(dir, name))));
}

async function readSchedule(path: string): Promise<Loaded | Rejected> {
  const name = basename(path, ".md");
  let file: TaskFile;
  try {
    file = await readTaskFile(path);
  } catch (error) {
    if (error instanceof TaskFileError) return { name, message: error.message };
    throw error;
  }
  const schedule = file.schedule;
  if (schedule === undefined) {
    const fix = `add a cron expression to the front matter, like schedule: "0 7 * * 1" (07:00 every Monday), or move the file to inbox/ to run it once`;
    return { name, message: `${path}: schedule: is missing; ${fix}` };
  }
  const problem = cronProblem(schedule);
  if (problem !== undefined) {
    const line = await lineOf(path, "schedule");
    const where = line === undefined ? path : `${path}:${line}`;
    return { name, schedule, message: `${where}: schedule: ${problem}` };
  }
  return { name, path, schedule, file };
}

/** The 1-based line of `key:` in the front matter, for messages; undefined if not found. */
async function lineOf(path: string, key: string): Promise<number | undefined> {
  try {
    const lines = (await readFile(path, "utf8")).split(/\r?\n/);
    const index = lines.findIndex((line, i) => i > 0 && new RegExp(`^${key}\\s*:`).test(line));
    return index < 0 ? undefined : index + 1;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// The scheduler

interface Entry extends Loaded {
  slots: CronSlots;
  next?: number;
  cancelTimer?: () => void;
  error?: string;
  warning?: string;
}

/** Per schedule name, across reloads: the newest slot handed to `fire` and the chain of runs. */
interface RunState {
  claimed?: number;
  chain: Promise<void>;
}

type Trigger = "start" | "reload" | "timer" | "wake";

export function createScheduler(options: SchedulerOptions): Scheduler {
  const { dir, timezone, clock, store } = options;
  const driftMs = options.driftMs ?? DEFAULT_DRIFT_MS;
  checkTimezone(timezone); // fail now on a bad zone, not at the first file
  const report = (event: ScheduleEvent): void => {
    try {
      options.report?.(event);
    } catch {
      // report must not throw; if it does anyway, scheduling goes on
    }
  };

  const entries = new Map<string, Entry>();
  const rejected = new Map<string, Rejected>();
  const runs = new Map<string, RunState>();
  let loading: Promise<void> = Promise.resolve();
  let stopTick: (() => void) | undefined;
  let stopDebounce: (() => void) | undefined;
  /** The folder as the last load saw it (`folderPrint`). */
  let printed = "";
  let watcher: FSWatcher | undefined;
  let started = false;
  let closed = false;

  const runState = (name: string): RunState => {
    let state = runs.get(name);
    if (!state) runs.set(name, (state = { chain: Promise.resolve() }));
    return state;
  };
  const lastKnown = (name: string): number | undefined => {
    const stored = store.lastRun(name);
    const claimed = runs.get(name)?.claimed;
    return stored === undefined ? claimed : Math.max(stored, claimed ?? stored);
  };

  /** Arms the entry's timer for its next slot, or sooner when `within` is given. */
  function arm(entry: Entry, within?: number): void {
    entry.cancelTimer?.();
    entry.cancelTimer = undefined;
    if (closed) return;
    const now = clock.now();
    entry.next = entry.slots.next(now);
    const untilNext = entry.next === undefined ? Infinity : entry.next - now;
    const delay = Math.min(untilNext, within ?? Infinity, MAX_TIMER_MS);
    entry.cancelTimer = clock.setTimer(() => {
      entry.cancelTimer = undefined;
      check(entry, "timer");
    }, delay);
  }

  /** Runs the latest slot at or before now if the cursor is older, once; then re-arms. */
  function check(entry: Entry, trigger: Trigger): void {
    if (closed) return;
    const now = clock.now();
    const due = entry.slots.previous(now);
    const last = lastKnown(entry.name);
    if (due !== undefined && last !== undefined && due > last) {
      const earlier = entry.slots.previous(due - 1);
      const missedBefore = earlier !== undefined && earlier > last;
      const catchUp = trigger !== "timer" || missedBefore || now - due > driftMs;
      // Said once it is queued here: with several machines, another one may have run the slot already.
      const missed = catchUp ? `${entry.name}: ${countSlots(entry.slots, last, due)} missed since ${iso(last)}, the latest due ${iso(due)}; running it once now` : undefined;
      enqueue(entry, due, catchUp, missed);
    }
    arm(entry);
  }

  /** Claims the slot now (so no other check fires it again) and fires after earlier runs of the same schedule. */
  function enqueue(entry: Entry, due: number, catchUp: boolean, missed?: string): void {
    const state = runState(entry.name);
    const previousClaim = state.claimed;
    state.claimed = due;
    const { name, file } = entry;
    state.chain = state.chain.then(async () => {
      try {
        const queued = await options.fire({ name, file, due, catchUp });
        if (missed && queued !== false) report({ kind: "missed", name, message: missed });
      } catch (error) {
        if (state.claimed === due) state.claimed = previousClaim;
        const current = entries.get(name);
        const message = `${name}: the run due ${iso(due)} could not be queued (${errorText(error)}); trying again in ${formatDuration(RETRY_MS)}`;
        if (current) {
          current.error = message;
          arm(current, RETRY_MS);
        }
        report({ kind: "missed", name, message });
        return;
      }
      const current = entries.get(name);
      if (current) current.error = undefined;
      try {
        await store.setLastRun(name, due);
      } catch (error) {
        // The run is queued and this process will not fire the slot again; after a restart it might.
        const message = `${name}: queued the run due ${iso(due)} but could not save it (${errorText(error)}); a restart may run it again`;
        if (current) current.error = message;
        report({ kind: "missed", name, message });
      }
    });
  }

  /** Reads the folder and brings entries in line with it. Serialized: one load at a time. */
  function load(trigger: "start" | "reload"): Promise<void> {
    const run = loading.then(async () => {
      if (closed) return;
      printed = folderPrint(dir);
      const found = await readSchedules(dir);
      if (closed) return;
      const valid = new Set(found.filter((item) => "file" in item).map((item) => item.name));
      const seen = new Set(found.map((item) => item.name));
      for (const entry of entries.values()) if (!valid.has(entry.name)) drop(entry);
      for (const name of rejected.keys()) if (!seen.has(name)) rejected.delete(name);

      const added: Array<{ entry: Entry; changed: boolean }> = [];
      for (const item of found) {
        if (!("file" in item)) {
          if (rejected.get(item.name)?.message !== item.message) report({ kind: "invalid", name: item.name, message: item.message });
          rejected.set(item.name, item);
          continue;
        }
        rejected.delete(item.name);
        const existing = entries.get(item.name);
        if (existing && existing.schedule === item.schedule) {
          existing.file = item.file; // new title or body; same slots
          continue;
        }
        if (existing) drop(existing);
        const entry: Entry = { ...item, slots: cronSlots(item.schedule, timezone) };
        const rarity = cronRarity(item.schedule, timezone, clock.now());
        if (rarity) {
          entry.warning = `${item.path}: schedule ${rarity}`;
          report({ kind: "rare", name: item.name, message: entry.warning });
        }
        entries.set(item.name, entry);
        added.push({ entry, changed: existing !== undefined });
      }
      await Promise.all(added.map(({ entry, changed }) => begin(entry, changed ? "changed" : trigger)));
    });
    loading = run.catch(() => {});
    return run;
  }

  /**
   * A schedule seen for the first time: with a cursor it catches up (the daemon was down); without
   * one, or with a changed expression, it starts from now (old slots of a new rule are not missed).
   */
  async function begin(entry: Entry, why: "start" | "reload" | "changed"): Promise<void> {
    const last = lastKnown(entry.name);
    if (last === undefined || why === "changed") {
      const now = clock.now();
      try {
        await store.setLastRun(entry.name, Math.max(now, last ?? now));
      } catch (error) {
        entry.error = `${entry.name}: could not save its starting point (${errorText(error)})`;
      }
      if (entries.get(entry.name) === entry) arm(entry);
      return;
    }
    if (entries.get(entry.name) === entry) check(entry, why);
  }

  function drop(entry: Entry): void {
    entry.cancelTimer?.();
    entry.cancelTimer = undefined;
    entry.slots.dispose();
    entries.delete(entry.name);
  }

  /** Every TICK_MS, compares where the clock is with where it should be; a jump means sleep. */
  function startTick(): void {
    let expected = clock.now() + TICK_MS;
    const tick = (): void => {
      const now = clock.now();
      const drift = now - expected;
      if (Math.abs(drift) > driftMs) {
        const message =
          drift > 0
            ? `the machine seems to have slept for about ${formatDuration(drift)} (or the clock jumped ahead); running missed schedules once`
            : `the clock moved back by about ${formatDuration(-drift)}; schedules follow the new time and slots already run are not run again`;
        report({ kind: "sleep", message });
        for (const entry of entries.values()) check(entry, "wake");
      }
      // The folder's watch can miss a change (macOS coalesces FSEvents, network folders send none):
      // the tick also compares the schedule files' names, sizes and times, a few stat calls.
      if (!stopDebounce && folderPrint(dir) !== printed) reloadSoon();
      expected = now + TICK_MS;
      stopTick = closed ? undefined : clock.setTimer(tick, TICK_MS);
    };
    stopTick = clock.setTimer(tick, TICK_MS);
  }

  /** A reload shortly after a change, once for a burst of changes (an editor writes several times). */
  function reloadSoon(): void {
    if (stopDebounce || closed) return;
    stopDebounce = clock.setTimer(() => {
      stopDebounce = undefined;
      load("reload").catch((error) => report({ kind: "invalid", message: `${dir}: cannot be read (${errorText(error)}); check the folder` }));
    }, RELOAD_DEBOUNCE_MS);
  }

  function startWatch(): void {
    if (options.watch === false) return;
    try {
      watcher = watch(dir, reloadSoon);
      watcher.on("error", () => {}); // e.g. the folder was removed; reload() still works
      watcher.unref();
    } catch {
      // No folder yet: nothing to watch; `nightshift init` creates it and reload() picks it up.
    }
  }

  return {
    async start() {
      if (started || closed) return;
      started = true;
      await load("start");
      if (closed) return;
      startTick();
      startWatch();
    },
    reload: () => load("reload"),
    close() {
      closed = true;
      for (const entry of entries.values()) drop(entry);
      stopTick?.();
      stopDebounce?.();
      watcher?.close();
    },
    list() {
      const rows: ScheduleStatus[] = [];
      for (const entry of entries.values()) {
        rows.push({ name: entry.name, schedule: entry.schedule, next: entry.next, last: store.lastRun(entry.name), error: entry.error, ...(entry.warning ? { warning: entry.warning } : {}) });
      }
      for (const item of rejected.values()) {
        rows.push({ name: item.name, schedule: item.schedule ?? "", last: store.lastRun(item.name), error: item.message });
      }
      return rows.sort((a, b) => a.name.localeCompare(b.name));
    },
  };
}

/** Slots in (after, through], counted up to a cap: the report says "3 runs", not a list. */
function countSlots(slots: CronSlots, after: number, through: number): string {
  const CAP = 100;
  let count = 0;
  for (let at = slots.previous(through); at !== undefined && at > after && count < CAP; at = slots.previous(at - 1)) count++;
  return count >= CAP ? `${CAP}+ runs` : count === 1 ? "1 run" : `${count} runs`;
}

function iso(at: number): string {
  return new Date(at).toISOString();
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Names, sizes and modification times of a folder's schedule files, as one string; "" without the folder. */
function folderPrint(dir: string): string {
  try {
    return readdirSync(dir)
      .filter((name) => name.endsWith(".md"))
      .sort()
      .map((name) => {
        const { size, mtimeMs } = statSync(join(dir, name));
        return `${name}:${size}:${mtimeMs}`;
      })
      .join("/");
  } catch {
    return "";
  }
}
