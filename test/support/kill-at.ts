// Preloaded into a real Nightshift process by crash tests (`node --import kill-at.ts nightshift.ts
// start`): the process SIGKILLs itself at the moment NIGHTSHIFT_TEST_KILL_AT names, so a test
// hits a window of a few microseconds every time instead of by timing.
//   log-created      a session log exists, its header not yet written
//   session-ended    a session_end is durable in its log, before anything else hears of it
//   spawned          a process whose arguments contain NIGHTSHIFT_TEST_KILL_MATCH was spawned, and
//                    has not started yet: it is started through a shim that waits 200 ms before
//                    it execs the real program, so whatever the program does to die with its
//                    parent comes too late (a loaded machine's worst case, made certain)
//   spawned:MS       MS ms (spinning) after such a spawn, without the shim
import childProcess from "node:child_process";
import { open } from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";

const [moment, arg] = (process.env.NIGHTSHIFT_TEST_KILL_AT ?? "").split(":");
const match = process.env.NIGHTSHIFT_TEST_KILL_MATCH;
// Gone before Nightshift reads its environment, so no command it starts carries them (or matches).
delete process.env.NIGHTSHIFT_TEST_KILL_AT;
delete process.env.NIGHTSHIFT_TEST_KILL_MATCH;
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
  // Session-log appends write a Buffer (runtime/session-log.ts `appendWhole`), the header included.
  const text = typeof data === "string" ? data : data instanceof Uint8Array ? Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8") : "";
  if (moment === "log-created" && text.startsWith('{"format":"nightshift-session"')) die();
  written.set(this, text);
  return write.call(this, data, ...rest);
};
const datasync = handle.datasync;
handle.datasync = async function (this: object) {
  await datasync.call(this);
  if (moment === "session-ended" && written.get(this)?.includes('"type":"session_end"')) die();
};

const spawn = childProcess.spawn;
childProcess.spawn = function (this: unknown, file: string, args: readonly string[] = [], options: childProcess.SpawnOptions = {}) {
  const matches = moment === "spawned" && match !== undefined && args.some((each) => each.includes(match));
  if (!matches) return spawn.call(this, file, args, options);
  const slowed = arg === undefined;
  if (slowed) spawn.call(this, "sh", ["-c", 'sleep 0.2; exec "$0" "$@"', file, ...args], options);
  else spawn.call(this, file, args, options);
  for (const until = performance.now() + Number(arg ?? 0); performance.now() < until; ); // spin: no timer may run first
  return die();
} as typeof spawn;
syncBuiltinESMExports();
