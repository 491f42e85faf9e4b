import { lstat, mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { z } from "zod";
import { display, realPath, resolvePath } from "./paths.ts";
import { defineTool, ToolError } from "./tool.ts";

export function createWriteFileTool() {
  return defineTool({
    name: "write_file",
    description: "Create or overwrite a file in the working directory (parent folders are created). Prefer edit_file to change part of a file.",
    schema: z.object({
      path: z.string().describe("Relative to the working directory"),
      content: z.string(),
    }),
    access: ({ path }, { workdir, view }) => [{ kind: "write", path: realPath(workdir, path, view) }],
    async execute({ path, content }, { workdir, paths, view }) {
      const real = resolvePath(workdir, path, paths, "write", view);
      const at = view ? view.toView(real) : real;
      const existing = await lstat(at).catch(() => undefined);
      if (existing && !existing.isFile()) throw new ToolError(`${path} exists and is not a regular file; choose another path`);
      await mkdir(dirname(at), { recursive: true });
      await writeFile(at, content);
      return `wrote ${Buffer.byteLength(content)} bytes to ${display(workdir, real)}`;
    },
  });
}
