import { spawn } from "node:child_process";
import { relative } from "node:path";
import { z } from "zod";
import { realPath, resolvePath } from "./paths.ts";
import { defineTool, ToolError } from "./tool.ts";

const MAX_OUTPUT = 20_000;
const TIME_LIMIT_MS = 30_000;

/**
 * Search with ripgrep: a fixed argument list of ours, so it runs without the sandbox. It skips
 * hidden files (dotfiles such as .env and .ssh) by default, follows no symlinks, reads no config
 * file, and is told to skip every hidden path inside the workdir.
 */
export function createSearchFilesTool(options: { rgPath?: string } = {}) {
  const rg = options.rgPath ?? "rg";
  return defineTool({
    name: "search_files",
    description: "Search file contents with a regular expression (ripgrep syntax). Returns path:line:text. Respects .gitignore; skips dotfiles.",
    schema: z.object({
      pattern: z.string().min(1),
      path: z.string().optional().describe("Folder or file; default the working directory"),
      glob: z.string().optional().describe("Only files matching, e.g. *.ts"),
      ignore_case: z.boolean().optional(),
    }),
    access: ({ path = "." }, { workdir }) => [{ kind: "read", path: realPath(workdir, path) }],
    async execute({ pattern, path = ".", glob, ignore_case }, { workdir, signal, paths }) {
      const target = resolvePath(workdir, path, paths);
      const args = ["--no-config", "--line-number", "--no-heading", "--color=never", "--max-columns=300", "--max-count=50"];
      if (ignore_case) args.push("--ignore-case");
      if (glob) args.push(`--glob=${glob}`);
      for (const hidden of paths.hidden) {
        const inside = relative(workdir, hidden);
        if (!inside.startsWith("..") && inside !== "") args.push(`--glob=!/${inside}`);
      }
      args.push("--regexp", pattern, "--", target === workdir ? "." : target);
      const { code, output, error, cut } = await capture(rg, args, workdir, signal);
      if (error) throw new ToolError(error === "ENOENT" ? "ripgrep (rg) is not installed; install it (apt-get install ripgrep) or use bash with grep" : `search failed: ${error}`);
      if (code === 1 && !output) return "no matches";
      // 2 means some files could not be read; the matches found are still good.
      if (code !== 0 && code !== 2 && !cut) throw new ToolError(`search failed: ${output.trim().split("\n")[0]}`);
      const text = output.replaceAll(workdir + "/", "");
      return cut ? `${text}\n[cut at ${MAX_OUTPUT / 1000} KB; narrow the pattern, path or glob]` : text || "no matches";
    },
  });
}

interface Captured {
  code: number | null;
  output: string;
  error?: string;
  cut: boolean;
}

/** Runs rg, killing it once the output cap is reached, on abort, or after the time limit. */
function capture(command: string, args: string[], cwd: string, signal: AbortSignal): Promise<Captured> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, signal, stdio: ["ignore", "pipe", "pipe"], timeout: TIME_LIMIT_MS, killSignal: "SIGKILL" });
    let output = "";
    let cut = false;
    const collect = (chunk: Buffer) => {
      if (cut) return;
      output += chunk.toString("utf8");
      if (output.length > MAX_OUTPUT) {
        output = output.slice(0, output.lastIndexOf("\n", MAX_OUTPUT) + 1 || MAX_OUTPUT);
        cut = true;
        child.kill("SIGKILL");
      }
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("error", (error: NodeJS.ErrnoException) => {
      if (error.name !== "AbortError") resolve({ code: null, output: "", error: error.code ?? error.message, cut });
    });
    child.on("close", (code) => resolve({ code, output, cut }));
  });
}
