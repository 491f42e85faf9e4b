import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readStateQuietly, type TaskRecord } from "../../tasks/state.ts";

/**
 * A version-1 state file (state/nightshift.json, one JSON document with every task ever run) as
 * Nightshift wrote it before the task history moved to SQLite: `n` finished tasks (every tenth
 * failed, every third from Telegram, the rest from the inbox), each record about 1.2 KB as real
 * ones are, a minute apart and ending at `now`, plus one queued task, `hot-task`, and one schedule
 * cursor (`queued: false` leaves the queued task out). Returns the ids (`hot-task` last).
 */
export function writeV1State(home: string, n: number, now: number, options: { queued?: boolean } = {}): string[] {
  const prompt = "Look through the project's open issues, pick the three oldest, and write a short summary of each with what blocks it. ".repeat(6);
  const record = (index: number, state: string) => ({
    id: index < 0 ? "hot-task" : syntheticId(index),
    title: `Synthetic task ${index}`,
    origin: index % 3 === 0 ? "telegram" : "inbox",
    ...(index % 3 === 0 ? {} : { name: `task ${index}.md` }),
    priority: "normal",
    state,
    spec: {
      title: `Synthetic task ${index}`,
      prompt,
      workdir: join(home, "workspace", `task-${index}`),
      model: "claude-sonnet-4-5",
      budget: { max_turns: 50, max_usd: 1, timeout_ms: 1_800_000 },
      source: index % 3 === 0 ? `telegram:1000:${index}` : `inbox:task ${index}.md`,
      notify: true,
    },
    created: now - (n - index) * 60_000,
    ...(state === "queued" ? {} : { started: now - (n - index) * 60_000 + 1_000, finished: now - (n - index) * 60_000 + 30_000, answer_chars: 1_200, ...(state === "failed" ? { reason: "the budget ran out" } : {}) }),
    attempts: state === "queued" ? 0 : 1,
    crashes: 0,
    turns: state === "queued" ? 0 : 7,
    cost_usd: state === "queued" ? 0 : 0.0421,
  });
  const tasks = Array.from({ length: n }, (_, index) => record(index, index % 10 === 9 ? "failed" : "done"));
  if (options.queued !== false) tasks.push(record(-1, "queued"));
  mkdirSync(join(home, "state"), { recursive: true });
  writeFileSync(join(home, "state", "nightshift.json"), JSON.stringify({ version: 1, tasks, schedules: { "daily.md": { last_run: now } } }));
  return tasks.map((task) => task.id);
}

/** The id `writeV1State` gives its `index`th finished task. */
export function syntheticId(index: number): string {
  return `20261101-${String(index).padStart(6, "0")}-abcdef`;
}

/** Every task in a home's state, newest first, read as the CLI reads it (no daemon must be writing a change you wait for). */
export function readTasks(home: string): TaskRecord[] {
  const reader = readStateQuietly(home);
  try {
    return reader.overview(100_000);
  } finally {
    reader.close();
  }
}
