import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import type { SessionResult } from "../runtime/index.ts";
import type { TaskRecord } from "./state.ts";

/**
 * Writes `outbox/<name>`: front matter (status, task, session, started, finished, turns, cost,
 * tokens) then the answer. Written to a temp file and renamed, so a reader never sees half of it.
 */
export function writeResult(outbox: string, record: TaskRecord, result: SessionResult, now: number): string {
  mkdirSync(outbox, { recursive: true });
  const name = record.name ?? `${record.id}.md`;
  const front = {
    status: result.status === "interrupted" ? "failed" : result.status,
    task: name,
    title: record.title,
    session: record.id,
    started: record.started ? new Date(record.started).toISOString() : undefined,
    finished: new Date(now).toISOString(),
    turns: result.turns,
    cost_usd: Number(result.costUsd.toFixed(6)),
    tokens: result.tokens,
    ...(result.reason ? { reason: result.reason } : {}),
  };
  const body = result.answer.trim() || (result.status === "done" ? "(no answer)" : `The task ${result.status}: ${(result.reason ?? "no reason recorded").replace(/\.$/, "")}.`);
  const path = join(outbox, name);
  const temp = join(outbox, `.${name}.tmp`);
  writeFileSync(temp, `---\n${stringify(front).trimEnd()}\n---\n${body}\n`);
  renameSync(temp, path);
  return path;
}
