import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_IDENTITY, DEFAULT_MEMORY } from "../memory/index.ts";
import { DEFAULT_AGENTS } from "../runtime/specialists/agents.ts";

export const FOLDERS = ["agents", "skills", "inbox", "outbox", "schedules", "workspace", "state", "sessions", "journal", "memory-history", "logs"];

export const DEFAULT_CONFIG = `# Nightshift settings. Every key is optional; \`nightshift config schema\` lists them all.
# Keys and tokens do not belong here: put them in the environment or in .env next to this file.

models:
  main:
    model: claude-sonnet-5-5
    # base_url: http://localhost:11434     # any Messages API endpoint (Ollama, llama.cpp, a proxy)
    # api_key_env: ANTHROPIC_API_KEY       # which variable holds this role's key
  specialist:
    model: claude-sonnet-5-5
  small:
    model: claude-haiku-5-5                # compaction summaries, the nightly consolidator, the digest

budget:                                    # per task, unless the task file says otherwise
  max_turns: 40
  max_usd: 2.00
  timeout: 1h
  daily_usd: 10.00

sandbox:
  mode: auto                               # bwrap on Linux, srt (sandbox-runtime) on macOS; "off" runs commands unconfined: doctor and every trace flag it
  command_timeout: 2m
  max_output_bytes: 30000

compaction:
  threshold: 0.7                           # compact when a request uses 70% of the context window
  keep_recent_turns: 4
`;

/** Creates NIGHTSHIFT_HOME with defaults. Never overwrites: existing files are kept and reported. */
export function initHome(home: string): { created: string[]; kept: string[] } {
  const created: string[] = [];
  const kept: string[] = [];
  mkdirSync(home, { recursive: true, mode: 0o700 });
  for (const folder of FOLDERS) {
    const path = join(home, folder);
    if (existsSync(path)) kept.push(folder + "/");
    else {
      mkdirSync(path, { recursive: true, mode: folder === "state" || folder === "sessions" ? 0o700 : 0o755 });
      created.push(folder + "/");
    }
  }
  const files: [string, string][] = [["config.yaml", DEFAULT_CONFIG], ...defaultFiles()];
  for (const [name, content] of files) {
    try {
      writeFileSync(join(home, name), content, { flag: "wx" });
      created.push(name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      kept.push(name);
    }
  }
  return { created, kept };
}

/** The files `init` writes that every machine on a shared store holds alike (tasks/shared-files.ts), by path in the home. */
export function defaultFiles(): Array<[string, string]> {
  return [["IDENTITY.md", DEFAULT_IDENTITY], ["MEMORY.md", DEFAULT_MEMORY], ...Object.entries(DEFAULT_AGENTS).map(([file, text]): [string, string] => [`agents/${file}`, text])];
}
