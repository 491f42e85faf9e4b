import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { display, realPath, resolvePath } from "./paths.ts";
import { defineTool, ToolError } from "./tool.ts";

const MAX_ENTRIES = 500;
const NOT_DESCENDED = new Set([".git", "node_modules", ".venv", "__pycache__", "dist", "build", "target"]);

export function createListFilesTool() {
  return defineTool({
    name: "list_files",
    description: `List files and folders (folders end with /). Does not descend into .git, node_modules and build output. At most ${MAX_ENTRIES} entries.`,
    schema: z.object({
      path: z.string().optional().describe("Folder relative to the working directory; default ."),
      depth: z.number().int().min(1).max(10).optional().describe("Levels to descend; default 2"),
    }),
    access: ({ path = "." }, { workdir, view }) => [{ kind: "read", path: realPath(workdir, path, view) }],
    async execute({ path = ".", depth = 2 }, { workdir, paths, signal, view }) {
      const root = resolvePath(workdir, path, paths, "read", view);
      const at = (folder: string) => (view ? view.toView(folder) : folder);
      const lines: string[] = [];
      let more = false;
      const walk = async (folder: string, level: number): Promise<void> => {
        if (signal.aborted) return;
        const entries = await readdir(at(folder), { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
          if (folder === root) throw new ToolError(`${path}: ${error.code === "ENOTDIR" ? "not a folder" : "no such folder"}`);
          return [];
        });
        entries.sort((a, b) => a.name.localeCompare(b.name));
        for (const entry of entries) {
          if (lines.length >= MAX_ENTRIES) return void (more = true);
          const full = join(folder, entry.name);
          const isDir = entry.isDirectory();
          lines.push(display(workdir, full) + (isDir ? "/" : entry.isSymbolicLink() ? " -> (link)" : ""));
          if (isDir && level < depth && !NOT_DESCENDED.has(entry.name) && !paths.hidden.includes(full)) await walk(full, level + 1);
        }
      };
      await walk(root, 1);
      if (lines.length === 0) return `${path}: empty folder`;
      return lines.join("\n") + (more ? `\n[stopped at ${MAX_ENTRIES} entries; list a subfolder]` : "");
    },
  });
}
