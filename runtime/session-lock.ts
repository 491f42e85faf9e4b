import { execFileSync } from "node:child_process";
import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { uptime } from "node:os";
import { SessionBusy } from "./errors.ts";

/**
 * One writer per file: an exclusive lock file holding the owner's PID and its start time. A lock
 * whose process is gone (killed, crashed), that was written before the machine last booted, or
 * whose PID now belongs to another process (a different start time) is taken over. Returns the
 * release function.
 */
export function lockSession(logPath: string, pid = process.pid, what = "this session", advice = "wait for it, or stop that process first"): () => void {
  const lockPath = `${logPath}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, "wx");
      writeSync(fd, [pid, startTime(pid) ?? ""].join(" ").trim());
      closeSync(fd);
      return () => rmSync(lockPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const owner = liveOwner(lockPath);
      if (owner !== undefined && owner !== pid) throw new SessionBusy(`${what} is already running in process ${owner}; ${advice}`);
      rmSync(lockPath, { force: true }); // stale: its owner is gone
    }
  }
  throw new SessionBusy(`cannot lock ${lockPath}; another process keeps taking it`);
}

/** True while a live process holds the session's lock; a lock a killed or rebooted process left does not count. */
export function sessionLocked(logPath: string): boolean {
  return liveOwner(`${logPath}.lock`) !== undefined;
}

/** The PID holding the lock file, when that process is alive and is the one that wrote it. */
function liveOwner(lockPath: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(lockPath, "utf8");
  } catch {
    return undefined;
  }
  const [ownerText, started] = text.trim().split(/\s+/);
  const owner = Number(ownerText);
  const live = Number.isInteger(owner) && owner > 0 && isAlive(owner) && !fromBeforeBoot(lockPath) && (!started || started === startTime(owner));
  return live ? owner : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Every process alive now started after the last boot: a lock written before it is stale whatever its PID. */
function fromBeforeBoot(lockPath: string, now = Date.now()): boolean {
  try {
    return statSync(lockPath).mtimeMs < now - uptime() * 1000 - 60_000; // a minute's slack for clock steps
  } catch {
    return false;
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
