import { z } from "zod";
import type { Sandbox } from "../sandbox/sandbox.ts";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { pathArguments } from "./command-paths.ts";
import { guardGit } from "./git-guard.ts";
import { isSecretFileName } from "./paths.ts";
import { PermissionDenied } from "../errors.ts";
import { defineTool, ToolError } from "./tool.ts";

export { pathArguments };

export interface BashToolOptions {
  timeoutMs: number;
  maxOutputBytes: number;
  /** For `~` in command arguments. */
  userHome?: string;
  /** Network through the sandbox's proxy: each run registers how its requests are decided. Without it, commands have no network. */
  network?: NetworkRegistry;
}

/** Maps a run's key (given to the sandbox) to the check its proxy requests go through. */
export interface NetworkRegistry {
  register(check: (host: string) => Promise<{ allow: boolean; reason: string }>, blocked: (host: string, reason: string) => void): { key: string; release(): void };
}

export function createBashTool(sandbox: Sandbox, options: BashToolOptions) {
  const limit = Math.round(options.timeoutMs / 1000);
  return defineTool({
    name: "bash",
    description: `Run a shell command in a sandbox: it can write only in the working directory${options.network ? "; network goes through a proxy that allows listed domains and asks the user about others" : " and has no network"}. Time limit ${limit} s; long output is cut, so filter it (grep, head, tail).`,
    schema: z.object({
      command: z.string().min(1),
      timeout_seconds: z.number().int().min(1).max(limit).optional(),
    }),
    access: ({ command }, { workdir }) => [{ kind: "command", command }, ...pathArguments(command, workdir, options.userHome)],
    async execute({ command, timeout_seconds }, { workdir, signal, writable, readOnly, permissions, view }) {
      const probe = await sandbox.probe();
      if (!probe.ok) throw new ToolError(`bash is unavailable: ${probe.problem}`);
      // Blocked hosts are reported after the output: an HTTPS client only says "403" and not why.
      const blocked = new Map<string, string>();
      const registration = options.network?.register(async (host) => {
        try {
          await permissions.check([{ kind: "network", host }]);
          return { allow: true, reason: "allowed" };
        } catch (error) {
          const reason = error instanceof PermissionDenied ? error.message : `the check failed (${(error as Error).message})`;
          blocked.set(host, reason);
          return { allow: false, reason };
        }
      }, (host, reason) => blocked.set(host, reason));
      // Git runs hooks and config commands (core.fsmonitor, core.pager) later, outside the sandbox.
      const git = guardGit([workdir, ...writable]);
      let result;
      try {
        result = await sandbox.run(command, {
          cwd: workdir,
          writable,
          hidden: [workdir, ...writable].flatMap(secretFiles),
          readOnly: [...readOnly, ...git.readOnly],
          pinned: git.pinned,
          timeoutMs: timeout_seconds ? timeout_seconds * 1000 : options.timeoutMs,
          maxOutputBytes: options.maxOutputBytes,
          signal,
          ...(registration ? { sessionKey: registration.key } : {}),
          ...(view ? { stage: view.stage } : {}),
        });
      } finally {
        registration?.release();
      }
      const notes: string[] = [...blocked].map(([host, reason]) => `[network: ${host} blocked: ${reason}]`);
      notes.push(...git.check(Date.now()));
      for (const line of result.violations ?? []) notes.push(`[sandbox refused: ${line}]`);
      if (result.droppedBytes > 0) notes.push(`[output cut: ${result.droppedBytes} more bytes dropped; filter the output with grep, head or tail]`);
      if (result.incomplete) notes.push(`[output may be incomplete: the command exited but something it started kept writing or held its output open; what came later was not read]`);
      if (result.timedOut) notes.push(`[killed: the command ran past its time limit]`);
      if (result.aborted) notes.push(`[killed: the task was cancelled]`);
      const status = result.exitCode === null ? "killed" : `exit code ${result.exitCode}`;
      const body = [result.output.trimEnd() || "(no output)", ...notes, status].join("\n");
      if (result.exitCode !== 0) throw new ToolError(body);
      return body;
    },
  });
}

const NOT_SCANNED = new Set([".git", "node_modules", ".venv", "venv", "__pycache__", "target", "dist", "build"]);

/**
 * `.env` files under a writable folder, hidden from the command: four levels, skipping dependency
 * and build folders, and at most a few thousand entries, so this stays a few milliseconds. Deeper
 * ones are still denied to the file tools and to commands that name them.
 */
function secretFiles(root: string): string[] {
  const found: string[] = [];
  let budget = 5000;
  const scan = (folder: string, depth: number) => {
    let entries;
    try {
      entries = readdirSync(folder, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (--budget < 0) return;
      if (entry.isFile() && isSecretFileName(entry.name)) found.push(join(folder, entry.name));
      else if (entry.isDirectory() && depth < 4 && !NOT_SCANNED.has(entry.name)) scan(join(folder, entry.name), depth + 1);
    }
  };
  scan(root, 1);
  return found;
}

