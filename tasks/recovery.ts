import { existsSync, readdirSync, readFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import type { EventOf, SessionEvent, TaskSpec } from "../runtime/events.ts";
import { readSessionLogPrefix, SessionLogError } from "../runtime/session-log.ts";
import type { TaskRecord } from "./state.ts";

/**
 * What the session logs still prove when the state does not: which task each log ran, where it came
 * from (an inbox file), and how it ended. A log is the proof that a task's commands ran, so its task
 * is never queued afresh: a log that is damaged gives a failed task (its readable part is still
 * its identity), and an inbox file whose log cannot be told is held back, not run again.
 */

export interface LoggedTask {
  id: string;
  /** The task's `source` (`inbox:NAME`…): from its start, or from the raw text of a log whose start does not read. Undefined: unknown. */
  source: string | undefined;
  record: TaskRecord;
  /** What is wrong with the file (it is left where it is, as the proof of what ran). */
  damage?: string;
}

/** Every top-level session log (a specialist's are in sessions/<task>/ and belong to its task). */
export async function readLoggedTasks(sessionsDir: string, now: number): Promise<LoggedTask[]> {
  const names = existsSync(sessionsDir) ? readdirSync(sessionsDir).filter((name) => name.endsWith(".jsonl")) : [];
  const tasks: LoggedTask[] = [];
  for (const name of names) {
    const task = await readLoggedTask(join(sessionsDir, name), name.slice(0, -".jsonl".length), now);
    if (task) tasks.push(task);
  }
  return tasks;
}

/** Undefined for a log that proves nothing ran: no complete session_start line (a crash as it was created). */
async function readLoggedTask(path: string, id: string, now: number): Promise<LoggedTask | undefined> {
  if ((await head(path)).lines.length < 2) return undefined;
  let events: SessionEvent[] = [];
  let damage: string | undefined;
  try {
    const read = await readSessionLogPrefix(path);
    events = read.events;
    damage = read.damage?.problem;
  } catch (error) {
    damage = error instanceof SessionLogError ? error.problem : (error as Error).message;
  }
  const start = events[0]?.type === "session_start" ? events[0] : undefined;
  if (!start) damage ??= `${path}: no session_start`;
  const spec = start?.task ?? guessedSpec(path);
  const source = spec.source;
  const name = source?.startsWith("inbox:") ? source.slice("inbox:".length) : undefined;
  const end = endOf(events);
  const base = {
    id,
    title: spec.title,
    origin: source?.split(":")[0] ?? "recovered",
    ...(name ? { name } : {}),
    priority: "normal" as const,
    spec,
    created: start?.at ?? now,
    started: start?.at ?? now,
    attempts: 1,
    crashes: 0,
    turns: events.filter((event) => event.type === "model_response").length,
    cost_usd: events.reduce((sum, event) => sum + (event.type === "model_response" || event.type === "checkpoint" ? event.cost_usd : 0), 0),
  };
  if (damage) {
    const reason = `its session log is damaged (${damage}); the log is kept as it is and the task is not resumed, so nothing in it runs again`;
    return { id, source, damage, record: { ...base, state: "failed", finished: now, reason } };
  }
  if (end) return { id, source, record: { ...base, state: end.status, finished: end.at, turns: end.turns, cost_usd: end.cost_usd, ...(end.reason ? { reason: end.reason } : {}) } };
  return { id, source, record: { ...base, state: "running" } }; // unfinished: resumed from its log
}

/** The session's end as a resume sees it: a follow-up reopens it, a retry reopens a failed one (runtime/conversation.ts). */
function endOf(events: SessionEvent[]): EventOf<"session_end"> | undefined {
  let end: EventOf<"session_end"> | undefined;
  for (const event of events) {
    if (event.type === "session_end") end = event;
    else if (event.type === "user" || (event.type === "resumed" && end?.status === "failed")) end = undefined;
  }
  return end;
}

/** A log whose start does not read: its title and source, if the raw text still holds them, so the person can tell which task it was. */
function guessedSpec(path: string): TaskSpec {
  let text = "";
  try {
    text = readFileSync(path, "utf8").slice(0, 64 * 1024);
  } catch {
    // unreadable: nothing to guess from
  }
  const field = (key: string) => {
    const raw = new RegExp(`"${key}":("(?:[^"\\\\]|\\\\.)*")`).exec(text)?.[1];
    try {
      return raw === undefined ? undefined : (JSON.parse(raw) as string);
    } catch {
      return undefined;
    }
  };
  const source = field("source");
  return { title: field("title") ?? "(a session log that does not read)", prompt: "", workdir: "", model: "main", budget: { max_turns: 0, max_usd: 0, timeout_ms: 0 }, ...(source ? { source } : {}) };
}

/** An inbox file in inbox/.done/ that the state has no task for. */
export type Orphan =
  /** Its session log was found: its task, to record again (resumed if unfinished). */
  | { name: string; kind: "logged"; task: LoggedTask }
  /** Not queued again: it may have run (why says how). */
  | { name: string; kind: "held"; why: string }
  /** It never ran: queue it. */
  | { name: string; kind: "unstarted" };

/**
 * Sorts out the inbox files the state has no task for: normally a crash between the move to
 * .done/ and the queue (never started), but after a lost or rebuilt state also files whose task
 * ran, finished ones among them (`answered`: their result is in outbox/; only recorded again,
 * never queued). Only when there is such a file does it look at the logs: the start of each (its
 * source), then the whole of the ones that ran those files.
 */
export async function sortOrphans(files: Array<{ name: string; answered: boolean }>, sessionsDir: string, now: number, logged?: LoggedTask[]): Promise<Orphan[]> {
  if (files.length === 0) return [];
  const byName = new Map<string, () => Promise<LoggedTask>>();
  const unknown: string[] = [];
  if (logged) {
    for (const task of logged) {
      if (task.source?.startsWith("inbox:")) byName.set(task.source.slice("inbox:".length), async () => task);
      else if (task.source === undefined && task.damage) unknown.push(`sessions/${task.id}.jsonl`);
    }
  } else {
    for (const file of existsSync(sessionsDir) ? readdirSync(sessionsDir).filter((each) => each.endsWith(".jsonl")) : []) {
      const path = join(sessionsDir, file);
      const id = file.slice(0, -".jsonl".length);
      const source = await sourceOf(path);
      if (source === null) {
        // Its start does not read: what its raw text still names (readLoggedTask's guess), or unknown.
        const task = await readLoggedTask(path, id, now);
        if (task?.source?.startsWith("inbox:")) byName.set(task.source.slice("inbox:".length), async () => task);
        else unknown.push(`sessions/${file}`);
      } else if (source?.startsWith("inbox:")) byName.set(source.slice("inbox:".length), async () => (await readLoggedTask(path, id, now))!);
    }
  }
  const orphans: Orphan[] = [];
  for (const { name, answered } of files) {
    const task = byName.get(name);
    if (task) orphans.push({ name, kind: "logged", task: await task() });
    else if (answered) continue; // finished before its task was lost: nothing to run, nothing to say
    else if (unknown.length) orphans.push({ name, kind: "held", why: `${unknown.join(", ")} does not read, and may be its run` });
    else orphans.push({ name, kind: "unstarted" });
  }
  return orphans;
}

/**
 * A log's task source from its first two lines, read without the rest: undefined for a log that
 * proves nothing ran (no complete start line) or a task without a source, null for a log whose
 * start does not read.
 */
async function sourceOf(path: string): Promise<string | undefined | null> {
  const { lines } = await head(path);
  if (lines.length < 2) return undefined;
  try {
    if (!lines[0]!.includes('"format":"nightshift-session"')) return null;
    const event = JSON.parse(lines[1]!) as Partial<EventOf<"session_start">>;
    return event.type === "session_start" && event.task ? event.task.source : null;
  } catch {
    return null;
  }
}

/** The first two complete lines of a file (fewer if it has fewer), reading no more than it needs. */
async function head(path: string): Promise<{ lines: string[] }> {
  const handle = await open(path, "r").catch(() => undefined);
  if (!handle) return { lines: [] };
  try {
    const chunks: Buffer[] = [];
    let newlines = 0;
    for (let position = 0; newlines < 2 && position < 4 * 1024 * 1024; ) {
      const chunk = Buffer.alloc(64 * 1024);
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      position += bytesRead;
      for (let i = 0; i < bytesRead; i++) if (chunk[i] === 0x0a) newlines++;
    }
    return { lines: Buffer.concat(chunks).toString("utf8").split("\n").slice(0, Math.min(newlines, 2)) };
  } finally {
    await handle.close();
  }
}
