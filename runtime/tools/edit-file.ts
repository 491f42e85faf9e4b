import { readFile, stat, writeFile } from "node:fs/promises";
import { z } from "zod";
import { display, realPath, resolvePath } from "./paths.ts";
import { defineTool, ToolError } from "./tool.ts";

export function createEditFileTool() {
  return defineTool({
    name: "edit_file",
    description: "Replace exact text in a file. old_text must match once (include surrounding lines to make it unique) unless replace_all is true.",
    schema: z.object({
      path: z.string(),
      old_text: z.string().min(1),
      new_text: z.string(),
      replace_all: z.boolean().optional(),
    }),
    access: ({ path }, { workdir, view }) => [{ kind: "write", path: realPath(workdir, path, view) }],
    async execute({ path, old_text, new_text, replace_all }, { workdir, paths, view }) {
      const real = resolvePath(workdir, path, paths, "write", view);
      const at = view ? view.toView(real) : real;
      const info = await stat(at).catch(() => undefined);
      if (info && !info.isFile()) throw new ToolError(`${path} is not a regular file; it cannot be edited`);
      if (info && info.size > 10_000_000) throw new ToolError(`${path} is too large to edit (${info.size} bytes); use bash (sed) instead`);
      const before = await readFile(at, "utf8").catch(() => {
        throw new ToolError(`${path}: no such file; use write_file to create it`);
      });
      const count = before.split(old_text).length - 1;
      if (count === 0) throw new ToolError(`${path}: old_text not found; read the file again and copy the text exactly`);
      if (count > 1 && !replace_all) throw new ToolError(`${path}: old_text occurs ${count} times; add surrounding lines to make it unique, or set replace_all`);
      const after = replace_all ? before.split(old_text).join(new_text) : before.replace(old_text, () => new_text);
      await writeFile(at, after);
      return `replaced ${replace_all ? count : 1} occurrence${count > 1 && replace_all ? "s" : ""} in ${display(workdir, real)}`;
    },
  });
}
