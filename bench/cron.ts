/**
 * Schedules against crontab(5) and cronie: Nightshift's slots (`cronSlots`), croner as it comes and
 * croner as Nightshift configures it, each compared with a small model of cronie's rules written
 * here, over ~2,000 generated expressions and the issue's named ones in seven time zones.
 *
 * A case is one expression in one zone. It is wrong when any of these differ from the model:
 * - the first 10 runs after 2026-01-01 (day rules: the day-of-month/day-of-week OR, months);
 * - every run within 2 h of each of the zone's 2026 DST changes (spring forward and fall back).
 *
 * Run alone with `npx node bench/cron.ts` (about 20 s); `npm run bench` includes it.
 */

import { Cron } from "croner";
import { cronSlots } from "../tasks/schedules.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export const ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "America/Santiago", "Pacific/Chatham"];

/** The issue's cases, and the defaults of memory.consolidate and memory.digest. */
export const NAMED = [
  "0 9 1 * MON", // the 1st, and every Monday
  "0 9 1,15 * 5", // the 1st, the 15th and every Friday
  "0 0 29 2 1", // 29 February, and every Monday in February
  "0 0 30 2 *", // never
  "0 0 29 2 *", // every four years
  "30 * * * *", // no run at 03:00 when 02:30 is skipped
  "*/15 * * * *", // four runs in each copy of a repeated hour
  "30 2 * * *", // skipped: right after the jump
  "30 1 * * *", // repeated: once
  "45 2 * * *", // Chatham's gap is 02:45-03:45
  "0 0 * * *", // Santiago's gap is 00:00-01:00
  "30 23 * * *", // Santiago's repeated hour is 23:00-24:00
  "0 3 * * *",
  "0 7 * * *",
  "0 9 * * MON-FRI",
  "0 */2 * * *",
  "0 0-23/2 * * *", // a step over a range: fixed-time for cronie
  "15 1,2 * * *", // a list: fixed-time for cronie
];

// ---------------------------------------------------------------------------------------------
// The model of cronie (cronie 1.7, entry.c and cron.c), written from crontab(5) and its source:
// - a field is a list of `*`, `*/n`, `a`, `a-b`, `a-b/n` (names for months and weekdays);
// - day-of-month and day-of-week: when either field starts with `*`, both must match; otherwise
//   either may (DOM_STAR/DOW_STAR);
// - a job is "wild" when its minute or its hour field starts with `*` (MIN_STAR/HR_STAR);
// - clock jumps forward by under 3 h (spring forward): for every skipped minute the fixed-time jobs
//   run (right after the jump); wild jobs run only at minutes the wall clock shows;
// - clock moves back by under 3 h (fall back): wild jobs run as the wall clock passes, in both
//   copies of the repeated hour; fixed-time jobs do not run again until the clock has caught up.
// Runs at the same instant count once (Nightshift's cursor makes them one).

interface Model {
  minutes: boolean[];
  hours: boolean[];
  doms: boolean[];
  months: boolean[];
  dows: boolean[];
  or: boolean;
  wild: boolean;
}

const MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

function modelField(text: string, low: number, high: number, names: string[] = [], nameBase = 0): boolean[] {
  const set = new Array<boolean>(high + 1).fill(false);
  const value = (token: string): number => {
    const named = names.indexOf(token.toLowerCase());
    const number = named >= 0 ? named + nameBase : Number(token);
    if (!Number.isInteger(number) || number < low || number > high) throw new Error(`model: bad value ${token}`);
    return number;
  };
  for (const part of text.split(",")) {
    const [range = "", stepText] = part.split("/");
    const step = stepText === undefined ? 1 : Number(stepText);
    const [from, to] = range === "*" ? [low, high] : range.includes("-") ? range.split("-").map(value) : [value(range), stepText === undefined ? value(range) : high];
    for (let at = from!; at <= to!; at += step) set[at] = true;
  }
  return set;
}

export function modelOf(expression: string): Model {
  const [minute = "", hour = "", dom = "", month = "", dow = ""] = expression.trim().split(/\s+/);
  const dows = modelField(dow, 0, 7, DAY_NAMES);
  if (dows[7]) dows[0] = true;
  return {
    minutes: modelField(minute, 0, 59),
    hours: modelField(hour, 0, 23),
    doms: modelField(dom, 1, 31),
    months: modelField(month, 1, 12, MONTH_NAMES, 1),
    dows,
    or: !dom.startsWith("*") && !dow.startsWith("*"),
    wild: minute.startsWith("*") || hour.startsWith("*"),
  };
}

/** A zone's offset (ms to add to an instant for its wall time) and its changes, read from Intl once. */
export function zoneOf(timezone: string, from = Date.parse("2025-01-01T00:00:00Z"), to = Date.parse("2033-01-01T00:00:00Z")) {
  const format = new Intl.DateTimeFormat("en-US", { timeZone: timezone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric" });
  const read = (at: number): number => {
    const minute = Math.floor(at / MINUTE) * MINUTE;
    const part: Record<string, number> = {};
    for (const { type, value } of format.formatToParts(minute)) part[type] = Number(value);
    return Date.UTC(part.year!, part.month! - 1, part.day, part.hour, part.minute) - minute;
  };
  // Every change in [from, to), found to the minute (no zone changes more often than every 6 h).
  const all: Array<{ at: number; before: number; after: number }> = [];
  for (let at = from, here = read(at); at < to; at += 6 * HOUR) {
    const there = read(at + 6 * HOUR);
    if (there === here) continue;
    let [low, high] = [at, at + 6 * HOUR];
    while (high - low > MINUTE) {
      const middle = low + Math.floor((high - low) / 2 / MINUTE) * MINUTE;
      if (read(middle) === here) low = middle;
      else high = middle;
    }
    all.push({ at: high, before: here, after: there });
    here = there;
  }
  const offset = (at: number): number => {
    if (at < from || at >= to) return read(at);
    let result = read(from);
    for (const change of all) {
      if (change.at > at) break;
      result = change.after;
    }
    return result;
  };
  const changes = (start: number, end: number) => all.filter(({ at }) => at >= start && at < end);
  return { offset, changes };
}
type Zone = ReturnType<typeof zoneOf>;

/** cronie's runs of `model` in (after, until], at most `limit`; undefined past five years without one. */
export function modelRuns(model: Model, zone: Zone, after: number, until: number, limit: number): number[] {
  const runs = new Set<number>();
  const firstDay = Math.floor((after + zone.offset(after)) / DAY) - 1;
  const lastDay = Math.floor((until + zone.offset(until)) / DAY) + 1;
  let enough: number | undefined;
  for (let day = firstDay; day <= lastDay && (enough === undefined || day <= enough); day++) {
    const date = new Date(day * DAY);
    const dom = model.doms[date.getUTCDate()]!;
    const dow = model.dows[date.getUTCDay()]!;
    if (!model.months[date.getUTCMonth() + 1] || !(model.or ? dom || dow : dom && dow)) continue;
    for (let hour = 0; hour < 24; hour++) {
      if (!model.hours[hour]) continue;
      for (let minute = 0; minute < 60; minute++) {
        if (!model.minutes[minute]) continue;
        const wall = day * DAY + hour * HOUR + minute * MINUTE;
        for (const at of instantsOf(wall, zone, model.wild)) if (at > after && at <= until) runs.add(at);
      }
    }
    if (enough === undefined && runs.size >= limit) enough = day + 1; // one more day: a DST shift can reorder
  }
  return [...runs].sort((a, b) => a - b).slice(0, limit);
}

/** The instants cronie runs a wall time at. */
function instantsOf(wall: number, zone: Zone, wild: boolean): number[] {
  const offsets = new Set([zone.offset(wall - DAY), zone.offset(wall + DAY)]);
  const shown = [...offsets].map((offset) => wall - offset).filter((at) => at + zone.offset(at) === wall).sort((a, b) => a - b);
  if (shown.length > 0) return wild ? shown : [shown[0]!];
  if (wild) return []; // skipped, and wild jobs run only at minutes the clock shows
  const change = zone.changes(wall - DAY, wall + DAY).find(({ at, before, after }) => wall >= at + before && wall < at + after);
  return change ? [change.at] : [];
}

/**
 * The same rules a second way, as a check on `modelRuns`: cronie's main loop (cron.c) stepped
 * minute by minute in real time over (after, until], with its virtual time. Only for short
 * windows; it starts 1 h early so the virtual time has settled.
 */
export function simulateCronie(model: Model, zone: Zone, after: number, until: number): number[] {
  const wallMinute = (at: number) => Math.floor((at + zone.offset(at)) / MINUTE);
  const matches = (minute: number, wild: boolean): boolean => {
    if (model.wild !== wild) return false;
    const date = new Date(minute * MINUTE);
    const dom = model.doms[date.getUTCDate()]!;
    const dow = model.dows[date.getUTCDay()]!;
    return model.minutes[date.getUTCMinutes()]! && model.hours[date.getUTCHours()]! && model.months[date.getUTCMonth() + 1]! && (model.or ? dom || dow : dom && dow);
  };
  const runs: number[] = [];
  const start = Math.floor((after - HOUR) / MINUTE) * MINUTE;
  let virtual = wallMinute(start);
  for (let at = start + MINUTE; at <= until; at += MINUTE) {
    const running = wallMinute(at);
    const diff = running - virtual;
    let run = false;
    if (diff > 0 && diff <= 5) {
      // on time, or woke a little late: every job for each minute up to now
      for (virtual++; virtual <= running; virtual++) run ||= matches(virtual, true) || matches(virtual, false);
      virtual = running;
    } else if (diff > 5 && diff <= 180) {
      // forward by under 3 h: wild jobs for now, fixed-time jobs for every minute skipped
      run = matches(running, true);
      for (virtual++; virtual <= running; virtual++) run ||= matches(virtual, false);
      virtual = running;
    } else if (diff <= 0 && diff > -180) {
      run = matches(running, true); // back (a repeated hour): wild jobs only, the virtual time waits
    } else {
      virtual = running;
      run = matches(running, true) || matches(running, false);
    }
    if (run && at > after) runs.push(at);
  }
  return runs;
}

// ---------------------------------------------------------------------------------------------
// Implementations

export interface Implementation {
  name: string;
  /** The first run strictly after `at`, or undefined. */
  slots(expression: string, timezone: string): (at: number) => number | undefined;
}

const nightshift: Implementation = {
  name: "Nightshift (`cronSlots`)",
  slots(expression, timezone) {
    const slots = cronSlots(expression, timezone);
    return (at) => slots.next(at);
  },
};

const croner = (name: string, options: ConstructorParameters<typeof Cron>[1]): Implementation => ({
  name,
  slots(expression, timezone) {
    const cron = new Cron(expression, { ...options, timezone });
    return (at) => cron.nextRun(new Date(at))?.getTime();
  },
});

export const IMPLEMENTATIONS: Implementation[] = [
  nightshift,
  croner("croner 11, defaults", {}),
  croner('croner 11, `fixedTimeRule: "no-wildcard"`', { fixedTimeRule: "no-wildcard" }),
];

// ---------------------------------------------------------------------------------------------
// Expressions

/** `count` expressions from a fixed seed: the same list every run. */
export function generate(count: number, seed = 11): string[] {
  let state = seed;
  const random = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const int = (low: number, high: number) => low + Math.floor(random() * (high - low + 1));
  const list = (low: number, high: number) => [...new Set([int(low, high), int(low, high), int(low, high)])].sort((a, b) => a - b).join(",");
  const range = (low: number, high: number, step = false) => {
    const from = int(low, high - 1);
    return `${from}-${int(from + 1, high)}${step ? `/${int(2, 4)}` : ""}`;
  };
  const weighted = (options: Array<[number, () => string]>) => {
    let roll = random() * options.reduce((sum, [weight]) => sum + weight, 0);
    for (const [weight, make] of options) if ((roll -= weight) < 0) return make();
    return options.at(-1)![1]();
  };
  const minute = () => weighted([[55, () => String(pick([0, 0, 15, 30, 45, int(0, 59)]))], [10, () => list(0, 59)], [15, () => `*/${pick([5, 10, 15, 20, 30])}`], [8, () => "*"], [12, () => range(0, 59, true)]]);
  // DST changes happen between 23:00 and 04:00 in these zones: hours there are drawn more often.
  const hour = () => weighted([[35, () => String(pick([0, 1, 2, 2, 3, 3, 23, int(0, 23)]))], [15, () => list(0, 4)], [25, () => "*"], [10, () => `*/${pick([2, 3, 4, 6])}`], [15, () => range(0, 5, random() < 0.5)]]);
  const dom = () => weighted([[45, () => "*"], [25, () => String(int(1, 31))], [15, () => list(1, 31)], [10, () => range(1, 28)], [5, () => `*/${pick([2, 3, 7])}`]]);
  const month = () => weighted([[70, () => "*"], [15, () => String(int(1, 12))], [15, () => pick([list(1, 12), range(1, 12), pick(["JAN-MAR", "FEB", "OCT,NOV"])])]]);
  const dow = () => weighted([[50, () => "*"], [25, () => pick([String(int(0, 7)), pick(DAY_NAMES).toUpperCase()])], [15, () => pick(["MON-FRI", "1-5", "SAT,SUN", range(0, 6)])], [10, () => list(0, 6)]]);
  const found = new Set<string>();
  while (found.size < count) found.add(`${minute()} ${hour()} ${dom()} ${month()} ${dow()}`);
  return [...found];
}

// ---------------------------------------------------------------------------------------------
// The comparison

export interface CronFigures {
  cases: number;
  expressions: number;
  rows: Array<{ name: string; wrong: number; dayRules: number; dst: number; orCases: number; refused: number; nextMicros: number; examples: string[] }>;
  model: { orCases: number; dstChanges: number; windows: number; disagreements: number };
}

const START = Date.parse("2026-01-01T00:00:00Z");

function sequence(next: (at: number) => number | undefined, after: number, until: number, limit: number): number[] {
  const runs: number[] = [];
  for (let at = next(after); at !== undefined && at <= until && runs.length < limit; at = next(at)) runs.push(at);
  return runs;
}

export function benchCron(count = 2000): CronFigures {
  const expressions = [...NAMED, ...generate(count)];
  const rows = IMPLEMENTATIONS.map((impl) => ({ name: impl.name, wrong: 0, dayRules: 0, dst: 0, orCases: 0, refused: 0, nextMicros: 0, examples: [] as string[] }));
  let calls = 0;
  const spent = rows.map(() => 0);
  let orCases = 0;
  let dstChanges = 0;
  let windows = 0;
  let disagreements = 0;
  for (const timezone of ZONES) {
    const zone = zoneOf(timezone);
    const changes = zone.changes(START, START + 366 * DAY);
    dstChanges += changes.length;
    for (const expression of expressions) {
      const model = modelOf(expression);
      const or = model.or;
      if (or) orCases++;
      const expectDays = modelRuns(model, zone, START, START + 5 * 366 * DAY, 10);
      const expectDst = changes.map(({ at }) => modelRuns(model, zone, at - 2 * HOUR, at + 2 * HOUR, 1000));
      changes.forEach(({ at }, i) => {
        windows++;
        if (!same(simulateCronie(model, zone, at - 2 * HOUR, at + 2 * HOUR), expectDst[i]!)) disagreements++;
      });
      IMPLEMENTATIONS.forEach((impl, index) => {
        const row = rows[index]!;
        const started = performance.now();
        let next: (at: number) => number | undefined;
        try {
          next = impl.slots(expression, timezone);
        } catch {
          row.refused++;
          next = () => undefined; // refused: no runs, which is right only for a date that never comes
        }
        const days = sequence(next, START, START + 5 * 366 * DAY, 10);
        const dst = changes.map(({ at }) => sequence(next, at - 2 * HOUR, at + 2 * HOUR, 1000));
        spent[index]! += performance.now() - started;
        if (index === 0) calls += days.length + dst.reduce((sum, runs) => sum + runs.length, 0);
        const dayWrong = !same(days, expectDays);
        const dstWrong = dst.some((runs, i) => !same(runs, expectDst[i]!));
        if (dayWrong) row.dayRules++;
        if (dstWrong) row.dst++;
        if (dayWrong && or) row.orCases++;
        if (dayWrong || dstWrong) {
          row.wrong++;
          if (row.examples.length < 6 && !row.examples.some((example) => example.startsWith(`\`${expression}\``))) row.examples.push(`\`${expression}\` in ${timezone} (${dayWrong ? "days" : "DST"})`);
        }
      });
    }
  }
  rows.forEach((row, index) => (row.nextMicros = (spent[index]! * 1000) / calls));
  return { cases: expressions.length * ZONES.length, expressions: expressions.length, rows, model: { orCases, dstChanges, windows, disagreements } };
}

function same(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

export function formatCron(figures: CronFigures): string {
  const lines = [
    `${figures.expressions} expressions (${NAMED.length} named, the rest generated) × ${ZONES.length} zones = ${figures.cases} cases; ${figures.model.orCases} of them restrict both day fields; ${figures.model.dstChanges} DST changes in 2026.`,
    "",
    "| implementation | cases wrong | first 10 runs wrong | of which day-of-month/day-of-week OR | DST windows wrong | refused as invalid | time per run found |",
    "|---|---:|---:|---:|---:|---:|---:|",
    ...figures.rows.map((row) => `| ${row.name} | ${row.wrong} | ${row.dayRules} | ${row.orCases} | ${row.dst} | ${row.refused} | ${row.nextMicros.toFixed(0)} µs |`),
    "",
    ...figures.rows.filter((row) => row.examples.length > 0).map((row) => `- ${row.name}, e.g. ${row.examples.join(", ")}`),
    `- The model checked against a minute-by-minute simulation of cronie's main loop: ${figures.model.disagreements} of ${figures.model.windows} DST windows differ.`,
  ];
  return lines.join("\n");
}

if (import.meta.main) {
  const count = Number(process.argv[2] ?? 2000);
  console.log(formatCron(benchCron(count)));
}
