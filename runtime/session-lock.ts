import { closeSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { SessionBusy } from "./errors.ts";

/**
 * One writer per file: an exclusive lock file holding the owner's PID and, on Linux, its start
 * time. A lock whose process is gone (killed, crashed) or is another process that reused the PID
 * after a reboot is taken over. Returns the release function.
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
      const [ownerText, started] = readFileSync(lockPath, "utf8").trim().split(/\s+/);
      const owner = Number(ownerText);
      if (Number.isInteger(owner) && owner > 0 && owner !== pid && isAlive(owner) && (!started || started === startTime(owner))) {
        throw new SessionBusy(`${what} is already running in process ${owner}; ${advice}`);
      }
      rmSync(lockPath, { force: true }); // stale: its owner is gone
    }
  }
  throw new SessionBusy(`cannot lock ${lockPath}; another process keeps taking it`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** When the process started, in clock ticks since boot (Linux); undefined elsewhere. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}
