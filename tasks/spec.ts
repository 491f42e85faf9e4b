import { existsSync, realpathSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { BUILTIN_TOOL_NAMES, createWorkdir, expandHome, loadAgents, TaskFileError, type LoadedConfig, type TaskSpec } from "../runtime/index.ts";
import { sandboxBackend } from "../runtime/config.ts";
import type { TaskFile } from "./task-file.ts";

/**
 * What a session runs, from a validated task file: config defaults for what the file leaves out, a
 * real workdir (an existing folder, or a fresh one under workspace/). Throws TaskFileError for a
 * workdir that does not exist, naming the file and the field.
 */
export function toTaskSpec(file: TaskFile, options: { loaded: LoadedConfig; id: string; fileName: string; source: string; workdir?: string }): TaskSpec {
  const { loaded } = options;
  const { budget } = loaded.config;
  const requested = options.workdir ?? file.workdir;
  let workdir: string;
  if (requested) {
    const path = resolve(expandHome(requested, loaded.env));
    if (!existsSync(path) || !statSync(path).isDirectory()) {
      throw new TaskFileError(options.fileName, `${options.fileName}: workdir: ${requested} is not an existing folder; create it or name another`, { field: "workdir" });
    }
    workdir = realpathSync(path);
  } else {
    workdir = createWorkdir(loaded.home, options.id);
  }
  checkSpecialists(file, options.fileName, join(loaded.home, "agents"));
  return {
    title: file.title,
    prompt: file.body.trim() || file.title,
    workdir,
    model: file.model ?? "main",
    budget: {
      max_turns: file.budget?.max_turns ?? budget.max_turns,
      max_usd: file.budget?.max_usd ?? budget.max_usd,
      timeout_ms: file.budget?.timeout ?? budget.timeout,
    },
    source: options.source,
    ...(file.permissions ? { permissions: file.permissions } : {}),
    ...(file.notify !== undefined ? { notify: file.notify } : {}),
    ...(file.plan ? { plan: true } : {}),
    ...(file.specialists?.length ? { specialists: file.specialists } : {}),
    ...(file.review_rounds !== undefined ? { review_rounds: file.review_rounds } : {}),
    ...(staged(file, loaded, requested !== undefined) ? { stage: true } : {}),
  };
}

/**
 * The file's `stage:`, else `tasks.stage`: `auto` stages the person's own folder where this machine
 * can (bubblewrap: Linux); a fresh folder under workspace/ has nothing to lose.
 */
function staged(file: TaskFile, loaded: LoadedConfig, ownFolder: boolean): boolean {
  if (file.stage !== undefined) return file.stage;
  const setting = loaded.config.tasks.stage;
  return setting === "on" || (setting === "auto" && ownFolder && sandboxBackend(loaded.config.sandbox.mode) === "bwrap");
}

/** A task that names a specialist agents/ lacks is refused now, not half-run later. */
function checkSpecialists(file: TaskFile, fileName: string, agentsDir: string): void {
  const wanted = [...(file.specialists ?? []), ...(file.plan ? ["planner"] : [])];
  if (wanted.length === 0) return;
  const { agents } = loadAgents(agentsDir, BUILTIN_TOOL_NAMES);
  const missing = wanted.find((name) => !agents.has(name));
  if (!missing) return;
  const field = file.specialists?.includes(missing) ? "specialists" : "plan";
  const known = [...agents.keys()].join(", ") || "none";
  throw new TaskFileError(fileName, `${fileName}: ${field}: there is no specialist "${missing}" (agents/ has ${known}); fix the name or add agents/${missing}.md (nightshift doctor checks agent files)`, { field });
}
