import { readFile, stat } from "node:fs/promises";
import { z } from "zod";
import { display, realPath, resolvePath } from "./paths.ts";
import { defineTool, ToolError } from "./tool.ts";

const MAX_LINES = 2000;
const MAX_CHARS = 100_000;
const MAX_FILE_BYTES = 10_000_000;

export function createReadFileTool() {
  return defineTool({
    name: "read_file",
    description: `Read a text file in the working directory. Lines come numbered. At most ${MAX_LINES} lines per call: use offset and limit for longer files.`,
    schema: z.object({
      path: z.string().describe("Relative to the working directory"),
      offset: z.number().int().min(1).optional().describe("First line to read (1-based)"),
      limit: z.number().int().min(1).max(MAX_LINES).optional().describe("Number of lines"),
    }),
    access: ({ path }, { workdir, view }) => [{ kind: "read", path: realPath(workdir, path, view) }],
    async execute({ path, offset = 1, limit = MAX_LINES }, { workdir, paths, view }) {
      const real = resolvePath(workdir, path, paths, "read", view);
      const at = view ? view.toView(real) : real;
      const info = await stat(at).catch(() => undefined);
      if (!info) throw new ToolError(`${path}: no such file`);
      if (info.isDirectory()) throw new ToolError(`${path} is a directory; use list_files`);
      if (!info.isFile()) throw new ToolError(`${path} is not a regular file (a pipe, socket or device); it cannot be read`);
      if (info.size > MAX_FILE_BYTES) throw new ToolError(`${path} is ${info.size} bytes, over the ${MAX_FILE_BYTES / 1_000_000} MB read limit; look at part of it with bash (head, tail, grep)`);
      const buffer = await readFile(at);
      if (buffer.subarray(0, 8192).includes(0)) throw new ToolError(`${path} is a binary file (${info.size} bytes); it cannot be shown as text`);
      const lines = buffer.toString("utf8").split("\n");
      if (lines.at(-1) === "") lines.pop();
      const slice = lines.slice(offset - 1, offset - 1 + limit);
      let text = slice.map((line, index) => `${String(offset + index).padStart(5)}  ${line}`).join("\n");
      if (text.length > MAX_CHARS) text = text.slice(0, MAX_CHARS) + "\n[cut: very long lines; read fewer lines at once]";
      const end = offset - 1 + slice.length;
      const rest = lines.length > end ? `\n[${display(workdir, real)}: lines ${offset}-${end} of ${lines.length}; continue with offset ${end + 1}]` : "";
      return (text || "[empty file]") + rest;
    },
  });
}
