#!/usr/bin/env node
// What `npx nightshift` (and a linked or installed `nightshift`) runs: the emitted JavaScript in
// dist/, built by `npm install` (the `prepare` script) and by `npm start`. It starts faster and
// idles lighter than the TypeScript sources, which the tests and `npm run nightshift` run.
import { existsSync } from "node:fs";

const entry = new URL("../dist/cli/nightshift.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(`nightshift: ${entry.pathname} is missing; run \`npm run build\` (or \`npm install\`) in ${new URL("..", import.meta.url).pathname}\n`);
  process.exitCode = 2;
} else {
  await import(entry.href);
}
