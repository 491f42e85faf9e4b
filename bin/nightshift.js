#!/usr/bin/env node
// What `npx nightshift` (and a linked or installed `nightshift`) runs: the emitted JavaScript in
// dist/, built by `npm install` (the `prepare` script) and by `npm start`. It starts faster and
// idles lighter than the TypeScript sources, which the tests and `npm run nightshift` run.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const entry = join(root, "dist", "cli", "nightshift.js");

/** True when a source file changed after the build (a `git pull` without `npm install`): about 1 ms. */
function sourcesNewerThan(time) {
  for (const folder of ["cli", "runtime", "tasks", "memory", "bot", "dashboard"]) {
    const dir = join(root, folder);
    if (!existsSync(dir)) continue;
    for (const item of readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (item.isFile() && item.name.endsWith(".ts") && statSync(join(item.parentPath, item.name)).mtimeMs > time) return true;
    }
  }
  return false;
}

if (!existsSync(entry)) {
  process.stderr.write(`nightshift: ${entry} is missing; run \`npm run build\` (or \`npm install\`) in ${root}\n`);
  process.exitCode = 2;
} else {
  if (sourcesNewerThan(statSync(entry).mtimeMs)) {
    process.stderr.write(`nightshift: the sources in ${root} changed after dist/ was built; this runs the older build. Run \`npm run build\` there.\n`);
  }
  await import(pathToFileURL(entry).href);
}
