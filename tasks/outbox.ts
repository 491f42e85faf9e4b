import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
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
    ...(result.staged ? { staged_changes: result.staged.changes.length } : {}),
  };
  const answer = result.answer.trim() || (result.status === "done" ? "(no answer)" : `The task ${result.status}: ${(result.reason ?? "no reason recorded").replace(/\.$/, "")}.`);
  const body = result.staged ? `${answer}\n\n${stagedText(record.id, result.staged)}` : answer;
  const path = join(outbox, name);
  const temp = join(outbox, `.${name}.tmp`);
  try {
    writeFileSync(temp, `---\n${stringify(front).trimEnd()}\n---\n${body}\n`);
    renameSync(temp, path);
  } catch (error) {
    try {
      rmSync(temp, { force: true }); // a half-written temp file (a full disk) must not hold on to space
    } catch {
      // a read-only disk: there is no temp file to remove
    }
    throw error;
  }
  return path;
}

/** What a staged task changed, not yet in the folder, and the three commands to review, apply or discard it. */
export function stagedText(id: string, staged: NonNullable<SessionResult["staged"]>): string {
  if (staged.changes.length === 0) return `## Staged changes\nNone: ${staged.original} would stay as it is. Drop the copy with \`nightshift discard ${id}\`.`;
  const shown = staged.changes.slice(0, 50);
  return [
    `## Staged changes, not applied yet`,
    `The task worked on a copy of ${staged.original}; nothing reached the folder. ${staged.changes.length} change${staged.changes.length === 1 ? "" : "s"}:`,
    "",
    ...shown.map((line) => `    ${line}`),
    ...(staged.changes.length > shown.length ? [`    … and ${staged.changes.length - shown.length} more`] : []),
    "",
    `Review with \`nightshift changes ${id}\` (the diff), then \`nightshift apply ${id}\` or \`nightshift discard ${id}\`.`,
  ].join("\n");
}
