import { openSync, readFileSync, rmSync, writeSync, closeSync } from "node:fs";
import { SessionBusy } from "./errors.ts";

/**
 * One writer per session log: an exclusive lock file holding the owner's PID. A lock left by a
 * process that no longer exists (killed, crashed) is taken over. Returns the release function.
 */
export function lockSession(logPath: string, pid = process.pid, what = "this session", advice = "wait for it, or stop that process first"): () => void {
  const lockPath = `${logPath}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, "wx");
      writeSync(fd, String(pid));
      closeSync(fd);
      return () => rmSync(lockPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const owner = Number(readFileSync(lockPath, "utf8").trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== pid && isAlive(owner)) {
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
