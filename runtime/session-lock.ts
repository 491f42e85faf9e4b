import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, fstatSync, linkSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { uptime } from "node:os";
import { SessionBusy } from "./errors.ts";

/**
 * One writer per file: an exclusive lock file holding the owner's PID, its start time and a random
 * nonce. A lock whose process is gone (killed, crashed), that was written before the machine last
 * booted, or whose PID now belongs to another process (a different start time) is taken over.
 * Returns the release function, which removes the lock only while it is still this one.
 *
 * Race-free by construction, because two processes may start at the same instant:
 * - the lock appears whole: its content goes to a private temporary file first, which is then
 *   linked to the lock's name (link fails with EEXIST), so no one ever reads a half-written lock;
 * - a stale lock is removed only by the one process that holds its "break" lock, named after that
 *   very lock (its inode and content), and only after reading it again: a second process that
 *   judged the same lock stale cannot remove the new lock that replaced it meanwhile.
 */
export function lockSession(logPath: string, pid = process.pid, what = "this session", advice = "wait for it, or stop that process first"): () => void {
  const lockPath = `${logPath}.lock`;
  const content = `${pid} ${startTime(pid) ?? "-"} ${randomBytes(8).toString("hex")}`;
  const mine = acquire(lockPath, content, pid, (owner) => new SessionBusy(`${what} is already running in ${owner === "unknown" ? "another process" : `process ${owner}`}; ${advice}`));
  return () => {
    const now = readLock(lockPath);
    if (now && now.ino === mine.ino && now.text === mine.text) unlinkSync(lockPath); // ours still: no one breaks a live lock
  };
}

/** True while a live process holds the session's lock; a lock a killed or rebooted process left does not count. */
export function sessionLocked(logPath: string): boolean {
  const held = readLock(`${logPath}.lock`);
  return held !== undefined && verdict(held) !== "stale";
}

interface HeldLock {
  text: string;
  ino: bigint;
  mtimeMs: number;
}

const ATTEMPTS = 200;

/**
 * Creates `path` holding `content`, taking over a stale one; throws `busy(owner)` while a live
 * process holds it. A lock naming `pid` itself is taken over too: it is this process's own, or one
 * an earlier process with the same PID left where no start time could be read.
 */
function acquire(path: string, content: string, pid: number, busy: (owner: number | string) => Error): HeldLock {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const created = create(path, content);
    if (created) return created;
    const held = readLock(path);
    if (!held) continue; // released meanwhile
    const owner = verdict(held);
    if (owner !== "stale" && owner !== pid) throw busy(owner);
    if (!breakLock(path, held)) pause(1); // another process is taking it over right now: look again
  }
  throw new SessionBusy(`cannot lock ${path}; other processes keep taking it`);
}

/** The lock, whole, under its name; undefined when the name is taken. */
function create(path: string, content: string): HeldLock | undefined {
  const temporary = `${path}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`;
  const fd = openSync(temporary, "wx");
  try {
    try {
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
    linkSync(temporary, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return undefined;
    throw error;
  } finally {
    rmSync(temporary, { force: true }); // also after a failed write (a full disk): no file left per attempt
  }
  return readLock(path);
}

/**
 * Removes the stale lock `held`, holding a break lock named after it while reading it again and
 * removing it. False when another live process holds that break lock (it is removing it now).
 */
function breakLock(path: string, held: HeldLock): boolean {
  const name = createHash("sha256").update(`${held.ino} ${held.text}`).digest("hex").slice(0, 16);
  let release: HeldLock;
  const breakPath = `${path}.break-${name}`;
  try {
    release = acquire(breakPath, `${process.pid} ${startTime(process.pid) ?? "-"} ${randomBytes(8).toString("hex")}`, process.pid, (owner) => new SessionBusy(`process ${owner} is taking over ${path}`));
  } catch (error) {
    if (error instanceof SessionBusy) return false;
    throw error;
  }
  try {
    // Only the holder of this break lock may remove `held`, and its owner is gone: what reads the same now stays until removed here.
    const now = readLock(path);
    if (now && now.ino === held.ino && now.text === held.text) unlinkSync(path);
  } finally {
    const own = readLock(breakPath);
    if (own && own.ino === release.ino && own.text === release.text) unlinkSync(breakPath);
  }
  return true;
}

/** The lock file's text and identity, read through one descriptor so both are of the same file. */
function readLock(path: string): HeldLock | undefined {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    const stat = fstatSync(fd, { bigint: true });
    return { text: readFileSync(fd, "utf8"), ino: stat.ino, mtimeMs: Number(stat.mtimeMs) };
  } finally {
    closeSync(fd);
  }
}

/**
 * The live owner's PID, or "stale". A lock is written whole (see `create`), so one without a
 * readable PID is from an older version or a machine crash: stale once from before the last boot
 * or a minute old, until then held by a process not named ("unknown").
 */
function verdict(held: HeldLock, now = Date.now()): number | "unknown" | "stale" {
  const [ownerText, startedText] = held.text.trim().split(/\s+/);
  const started = startedText === "-" ? undefined : startedText;
  const owner = Number(ownerText);
  const beforeBoot = held.mtimeMs < now - uptime() * 1000 - 60_000; // a minute's slack for clock steps
  if (!Number.isInteger(owner) || owner <= 0) return beforeBoot || held.mtimeMs < now - 60_000 ? "stale" : "unknown";
  return isAlive(owner) && !beforeBoot && (!started || started === startTime(owner)) ? owner : "stale";
}

function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Our own start time is asked once: on macOS each answer is a `ps` run. */
let own: string | undefined;
const startTime = (pid: number) => (pid === process.pid ? (own ??= processStartTime(pid, process.platform)) : processStartTime(pid, process.platform));

/**
 * When a process started, as an opaque string that differs for another process with the same PID:
 * Linux reads /proc/PID/stat (clock ticks since boot); macOS and the BSDs have no /proc and ask
 * `ps -o lstart=` (to the second, a few ms). Undefined when the process is gone or the platform
 * has neither; the lock then falls back to "alive" and the boot time.
 */
export function processStartTime(pid: number, platform: NodeJS.Platform): string | undefined {
  try {
    if (platform === "linux") {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    }
    if (platform === "darwin" || platform.endsWith("bsd")) {
      const started = execFileSync("ps", ["-o", "lstart=", "-p", String(pid)], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], env: { LC_ALL: "C", PATH: "/bin:/usr/bin" } }).trim();
      return started ? started.replace(/\s+/g, "_") : undefined;
    }
  } catch {
    // gone, or no ps
  }
  return undefined;
}
