import { Cron } from "croner";
import { ConfigError } from "./errors.ts";

/**
 * What a cron expression means here: what it means in a crontab (crontab(5), as cronie runs it),
 * computed by croner in an IANA time zone. Shared by schedules/, the daemon's jobs and config.
 *
 * - Day of month and day of week: when both are restricted (neither field starts with `*`), a day
 *   matching either runs the job; `0 9 1 * MON` is the 1st and every Monday. When one starts with
 *   `*` (even `*\/2`), both must match, as cronie's DOM_STAR/DOW_STAR flags do.
 * - Daylight saving, as cronie: a job whose minute or hour field starts with `*` (a "wild" job,
 *   `30 * * * *`, `*\/15 * * * *`) runs on the wall clock as it actually passes: not in a skipped
 *   hour, and in both copies of a repeated one. Every other job is fixed-time: a time skipped by
 *   spring-forward runs right after the jump (several of them, once), a time in the repeated
 *   hour runs once, at its first occurrence.
 *
 * croner does the day rules and DST (`fixedTimeRule: "no-wildcard"`); the two differences from
 * cronie are bridged here: croner treats `*\/2` in a day field as a restriction (cronie: a star),
 * and a stepped range such as `0-23/2` as an interval job (cronie: fixed-time, it does not start
 * with `*`), so such ranges are written out as lists before croner sees them.
 */

/** The instants one cron expression names in one time zone. */
export interface CronSlots {
  /** The first slot strictly after `at`; undefined if there is none. */
  next(at: number): number | undefined;
  /** The last slot at or before `at`; undefined if there is none. */
  previous(at: number): number | undefined;
  dispose(): void;
}

const DAY = 86_400_000;

/** Throws ConfigError for an unknown time zone, or a plain Error (see `cronProblem`) for a bad expression. */
export function cronSlots(expression: string, timezone: string): CronSlots {
  checkTimezone(timezone);
  const cron = toCron(expression, timezone);
  return {
    next: (at) => cron.nextRun(new Date(at))?.getTime(),
    previous: (at) => cron.previousRuns(1, new Date(at + 1))[0]?.getTime(),
    dispose: () => cron.stop(),
  };
}

/** Throws ConfigError naming `timezone` unless Intl knows the zone. */
export function checkTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
  } catch {
    throw new ConfigError("timezone", `timezone: unknown time zone "${timezone}"; use an IANA name like Europe/Berlin or America/New_York`);
  }
}

function toCron(expression: string, timezone: string): Cron {
  const fields = expression.trim().split(/\s+/);
  const star = (field: string | undefined) => field === undefined || /^[*?]/.test(field);
  // Day of month is third from last and day of week last, in 5- and 6-field forms alike; a
  // nickname (`@daily`) has neither.
  const [dayOfMonth, dayOfWeek] = fields.length >= 5 ? [fields.at(-3), fields.at(-1)] : [];
  const timeFields = fields.length - 3; // seconds (if given), minute, hour
  const pattern = fields.map((field, index) => (index < timeFields ? writeOutSteppedRanges(field, index === timeFields - 1 ? 23 : 59) : field)).join(" ");
  return new Cron(pattern, {
    timezone,
    mode: "5-or-6-parts",
    fixedTimeRule: "no-wildcard",
    domAndDow: star(dayOfMonth) || star(dayOfWeek),
  });
}

/** `0-23/2` → `0,2,4,…,22`: the same times, but a list, which croner (like cronie) treats as fixed-time. */
function writeOutSteppedRanges(field: string, max: number): string {
  return field
    .split(",")
    .map((part) => {
      const match = /^(\d+)-(\d+)\/(\d+)$/.exec(part);
      if (!match) return part;
      const [from, to, step] = [Number(match[1]), Number(match[2]), Number(match[3])];
      if (step < 1 || from > to || to > max) return part; // croner says what is wrong with it
      const values: number[] = [];
      for (let value = from; value <= to; value += step) values.push(value);
      return values.join(",");
    })
    .join(",");
}

const FIELDS_5 = ["minute (0-59)", "hour (0-23)", "day of month (1-31, L, W)", "month (1-12 or JAN-DEC)", "day of week (0-7 or SUN-SAT, 1#2, 5L)"];
const FIX = `write five fields, minute hour day-of-month month day-of-week (a sixth, seconds, may come first), like "0 7 * * 1"`;

/** Why `expression` is not a cron expression, naming the field and the fix; undefined if it is one. */
export function cronProblem(expression: string): string | undefined {
  const problem = croners(expression);
  if (problem === undefined) return undefined;
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) return `"${expression}" is not a cron expression (it has ${fields.length} field${fields.length === 1 ? "" : "s"}); ${FIX}`;
  const names = fields.length === 6 ? ["second (0-59)", ...FIELDS_5] : FIELDS_5;
  // The first field that is wrong on its own, every other field a star.
  const index = fields.findIndex((field, i) => croners(fields.map((_, j) => (j === i ? field : "*")).join(" ")) !== undefined);
  if (index < 0) return `"${expression}" is not a valid cron expression (${problem}); ${FIX}`;
  return `"${expression}" is not a valid cron expression: the ${names[index]} field is wrong (${problem}); ${FIX}`;
}

function croners(expression: string): string | undefined {
  try {
    toCron(expression, "UTC");
    return undefined;
  } catch (error) {
    return (error as Error).message.replace(/^CronPattern:\s*/, "");
  }
}

/**
 * A schedule that will not run for more than a year, or never, said in words with the fix; undefined
 * for any other. `now` is an instant; the expression must be valid.
 */
export function cronRarity(expression: string, timezone: string, now: number): string | undefined {
  const slots = cronSlots(expression, timezone);
  try {
    const next = slots.next(now);
    if (next === undefined) return cronNever(expression) ?? `"${expression}" has no run after ${new Date(now).toISOString()}`;
    if (next - now <= 366 * DAY) return undefined;
    const date = new Intl.DateTimeFormat("en-CA", { timeZone: timezone, year: "numeric", month: "2-digit", day: "2-digit" }).format(next);
    return `"${expression}" next runs on ${date}, more than a year away; check its day and month if that is not meant`;
  } finally {
    slots.dispose();
  }
}

/** `"0 0 30 2 *" never runs (February has no 30th); fix the day` for an expression no date matches. */
export function cronNever(expression: string): string | undefined {
  const slots = cronSlots(expression, "UTC");
  try {
    return slots.next(0) === undefined ? `"${expression}" never runs (${whyNever(expression)}); fix the day` : undefined;
  } finally {
    slots.dispose();
  }
}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const MONTH_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const MONTH_ABBREVIATIONS = MONTHS.map((month) => month.slice(0, 3).toUpperCase());

/** Why no date matches: the usual cause is a day of month that the chosen months do not have. */
function whyNever(expression: string): string {
  const fields = expression.trim().split(/\s+/);
  const [dayOfMonth = "", month = ""] = fields.slice(-3, -1);
  const days = numbers(dayOfMonth, 31);
  const months = numbers(month.toUpperCase().replace(/[A-Z]{3}/g, (name) => String(MONTH_ABBREVIATIONS.indexOf(name) + 1)), 12);
  if (days && months && days.length > 0 && months.length > 0 && months.every((m) => days.every((day) => day > MONTH_DAYS[m - 1]!))) {
    const first = Math.min(...days);
    const names = months.map((m) => MONTHS[m - 1]!);
    const list = names.length === 1 ? names[0]! : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
    return `${list} ${names.length === 1 ? "has" : "have"} no ${ordinal(first)}`;
  }
  return "no date matches its day, month and weekday fields";
}

/** The values of a field of plain numbers, lists and ranges; undefined for anything else (`*`, L, W, #). */
function numbers(field: string, max: number): number[] | undefined {
  const values: number[] = [];
  for (const part of field.split(",")) {
    const match = /^(\d+)(?:-(\d+))?(?:\/(\d+))?$/.exec(part);
    if (!match) return undefined;
    const from = Number(match[1]);
    const to = match[2] === undefined ? (match[3] === undefined ? from : max) : Number(match[2]);
    for (let value = from; value <= to; value += Number(match[3] ?? 1)) values.push(value);
  }
  return values;
}

function ordinal(day: number): string {
  const suffix = day % 10 === 1 && day !== 11 ? "st" : day % 10 === 2 && day !== 12 ? "nd" : day % 10 === 3 && day !== 13 ? "rd" : "th";
  return `${day}${suffix}`;
}
