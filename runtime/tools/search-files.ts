import { spawn } from "node:child_process";
import { z } from "zod";
import { resolveInside } from "./paths.ts";
import { defineTool, ToolError } from "./tool.ts";

const MAX_OUTPUT = 20_000;

/** Search with ripgrep: a fixed argument list of ours, so it runs without the sandbox. */
export function createSearchFilesTool(options: { rgPath?: string } = {}) {
  const rg = options.rgPath ?? "rg";
  return defineTool({
    name: "search_files",
    description: "Search file contents with a regular expression (ripgrep syntax). Returns path:line:text. Respects .gitignore.",
    schema: z.object({
      pattern: z.string().min(1),
      path: z.string().optional().describe("Folder or file; default the working directory"),
      glob: z.string().optional().describe("Only files matching, e.g. *.ts"),
      ignore_case: z.boolean().optional(),
    }),
    async execute({ pattern, path = ".", glob, ignore_case }, { workdir, signal }) {
      const target = resolveInside(workdir, path);
      const args = ["--line-number", "--no-heading", "--color=never", "--max-columns=300", "--max-count=50"];
      if (ignore_case) args.push("--ignore-case");
      if (glob) args.push("--glob", glob);
      args.push("-e", pattern, "--", target === workdir ? "." : target);
      const { code, output, error } = await capture(rg, args, workdir, signal);
      if (error) throw new ToolError(error === "ENOENT" ? "ripgrep (rg) is not installed; install it (apt-get install ripgrep) or use bash with grep" : `search failed: ${error}`);
      if (code === 1) return "no matches";
      if (code !== 0) throw new ToolError(`search failed: ${output.trim().split("\n")[0]}`);
      const text = output.replaceAll(workdir + "/", "");
      return text.length > MAX_OUTPUT ? text.slice(0, MAX_OUTPUT) + "\n[cut at 20 KB; narrow the pattern, path or glob]" : text;
    },
  });
}

function capture(command: string, args: string[], cwd: string, signal: AbortSignal): Promise<{ code: number | null; output: string; error?: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, signal, stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    let size = 0;
    const collect = (chunk: Buffer) => {
      if (size < MAX_OUTPUT * 2) chunks.push(chunk);
      size += chunk.length;
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("error", (error: NodeJS.ErrnoException) => resolve({ code: null, output: "", error: error.code ?? error.message }));
    child.on("close", (code) => resolve({ code, output: Buffer.concat(chunks).toString("utf8") }));
  });
}
