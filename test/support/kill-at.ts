// Preloaded into a real Nightshift process by crash tests (`node --import kill-at.ts nightshift.ts
// start`): the process SIGKILLs itself at the moment NIGHTSHIFT_TEST_KILL_AT names, so a test
// hits a window of a few microseconds every time instead of by timing.
//   log-created      a session log exists, its header not yet written
//   session-ended    a session_end is durable in its log, before anything else hears of it
//   spawned:MS       MS ms (spinning) after a process whose arguments contain
//                    NIGHTSHIFT_TEST_KILL_MATCH was spawned (0: at once, mid-fork of the sandbox)
import childProcess from "node:child_process";
import { open } from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";

const [moment, arg] = (process.env.NIGHTSHIFT_TEST_KILL_AT ?? "").split(":");
const die = (): never => {
  process.kill(process.pid, "SIGKILL");
  throw new Error("unreachable");
};

// FileHandle is not exported; its prototype is reached through an open file.
const probe = await open(process.execPath, "r");
const handle = Object.getPrototypeOf(probe) as { write(data: unknown, ...rest: unknown[]): Promise<unknown>; datasync(): Promise<void> };
await probe.close();
const written = new WeakMap<object, string>();
const write = handle.write;
handle.write = function (this: object, data: unknown, ...rest: unknown[]) {
  const text = typeof data === "string" ? data : "";
  if (moment === "log-created" && text.startsWith('{"format":"nightshift-session"')) die();
  written.set(this, text);
  return write.call(this, data, ...rest);
};
const datasync = handle.datasync;
handle.datasync = async function (this: object) {
  await datasync.call(this);
  if (moment === "session-ended" && written.get(this)?.includes('"type":"session_end"')) die();
};

const match = process.env.NIGHTSHIFT_TEST_KILL_MATCH;
const spawn = childProcess.spawn;
childProcess.spawn = function (this: unknown, ...args: Parameters<typeof spawn>) {
  const child = spawn.apply(this, args);
  if (moment === "spawned" && match && JSON.stringify(args[1] ?? []).includes(match)) {
    for (const until = performance.now() + Number(arg ?? 0); performance.now() < until; ); // spin: no timer may run first
    die();
  }
  return child;
} as typeof spawn;
syncBuiltinESMExports();
