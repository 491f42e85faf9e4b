import { z } from "zod";
import type { Sandbox } from "../sandbox/sandbox.ts";
import { realPath, resolvePath } from "./paths.ts";
import { defineTool, ToolError } from "./tool.ts";

const MAX_OUTPUT = 20_000;
const TIME_LIMIT_MS = 30_000;

/**
 * Search with ripgrep, run inside the sandbox like any command: it sees exactly what commands see
 * (secrets hidden, Nightshift's state hidden), whatever pattern, path or glob the model picks.
 */
export function createSearchFilesTool(sandbox: Sandbox) {
  return defineTool({
    name: "search_files",
    description: "Search file contents with a regular expression (ripgrep syntax). Returns path:line:text. Respects .gitignore; skips dotfiles.",
    schema: z.object({
      pattern: z.string().min(1),
      path: z.string().optional().describe("Folder or file; default the working directory"),
      glob: z.string().optional().describe("Only files matching, e.g. *.ts"),
      ignore_case: z.boolean().optional(),
    }),
    access: ({ path = "." }, { workdir, view }) => [{ kind: "read", path: realPath(workdir, path, view) }],
    async execute({ pattern, path = ".", glob, ignore_case }, { workdir, signal, paths, view }) {
      const target = resolvePath(workdir, path, paths, "read", view);
      const probe = await sandbox.probe();
      if (!probe.ok) throw new ToolError(`search_files is unavailable: ${probe.problem}`);
      const args = ["rg", "--no-config", "--line-number", "--no-heading", "--color=never", "--max-columns=300", "--max-count=50"];
      if (ignore_case) args.push("--ignore-case");
      if (glob) args.push(`--glob=${glob}`);
      args.push("--regexp", pattern, "--", target === workdir ? "." : target);
      const result = await sandbox.run(args.map(quote).join(" "), { cwd: workdir, timeoutMs: TIME_LIMIT_MS, maxOutputBytes: MAX_OUTPUT, signal, ...(view ? { stage: view.stage } : {}) });
      const output = result.output.replaceAll(workdir + "/", "");
      if (result.exitCode === 127) throw new ToolError("ripgrep (rg) is not installed; install it (apt-get install ripgrep) or use bash with grep");
      if (result.exitCode === 1 && !output.trim()) return "no matches";
      // 2 means some files could not be read; the matches found are still good.
      if (result.exitCode !== 0 && result.exitCode !== 2 && result.droppedBytes === 0) throw new ToolError(`search failed: ${output.trim().split("\n")[0]}`);
      const cut = result.droppedBytes > 0 ? `\n[cut at ${MAX_OUTPUT / 1000} KB; narrow the pattern, path or glob]` : "";
      return (output.trimEnd() || "no matches") + cut;
    },
  });
}

/** One shell word, single-quoted: nothing in it is expanded. */
function quote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
