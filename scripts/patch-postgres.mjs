// Fixes a crash in postgres.js 3.4.9 (the shared store's client) until a release has it:
// a small write waits for setImmediate, and when the connection closes first, the deferred write
// meets `socket = null` and throws from the timer, where no caller can catch it: the daemon dies
// when the database goes away (porsager/postgres#1154, #1208; fixes proposed in #1168, #1209).
// Teardown also cancels the timer without forgetting it, so a reconnected connection never
// flushes a small write again. The patch settles such a write's queries as CONNECTION_CLOSED
// (which the store's callers retry) and forgets the timer and the bytes at teardown.
//
// Run by `npm install` / `npm ci` (postinstall). It changes the text only where it is exactly
// 3.4.9's, so a release with its own fix is left alone; run again, it finds the patch in place.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..", "node_modules", "postgres");
const MARK = "/* nightshift: guarded nextWrite */";
const edits = [
  ["  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)", `  function nextWrite(fn) { ${MARK}\n    if (!socket) {\n      chunk = nextWriteTimer = null\n      error(Errors.connection('CONNECTION_CLOSED', options))\n      return false\n    }\n    const x = socket.write(chunk, fn)`],
  ["    clearImmediate(nextWriteTimer)\n    if (socket) {", "    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n    if (socket) {"],
  ["    clearImmediate(nextWriteTimer)\n    socket.removeListener('data', data)", "    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n    socket.removeListener('data', data)"],
];

for (const file of ["src/connection.js", "cjs/src/connection.js"].map((path) => join(root, path))) {
  if (!existsSync(file)) continue;
  let text = readFileSync(file, "utf8");
  if (text.includes(MARK)) continue;
  if (!edits.every(([from]) => text.split(from).length === 2)) {
    console.log(`nightshift: ${file} is not postgres.js 3.4.9's; left as it is (see scripts/patch-postgres.mjs)`);
    continue;
  }
  for (const [from, to] of edits) text = text.replace(from, to);
  writeFileSync(file, text);
}
