import { isCi } from "./prerequisites.ts";
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./home.ts";

/**
 * A small tmpfs for disk-full and read-only tests: real ENOSPC and EROFS from the kernel, with no
 * fake file system. Mounting needs root (CI runs as root); elsewhere the tests skip with the reason.
 */
export interface SmallDisk {
  /** The tmpfs. */
  path: string;
  /** The same tmpfs through a second mount that `readOnly()` leaves writable: how a test drops files meanwhile. */
  door: string;
  /** Takes every free byte (a filler file written until ENOSPC). */
  fill(): void;
  /** Gives the filler's bytes back. */
  unfill(): void;
  /** Makes `path` read-only for new files (a read-only bind mount over it); files already open stay writable. */
  readOnly(): void;
  /** Takes the read-only mount away again. */
  writable(): void;
  cleanup(): void;
}

export function smallDiskSupport(): { skip?: string } {
  // Under CI a machine that cannot mount one is broken, not a reason to skip: the tests then fail.
  return process.getuid?.() === 0 || isCi() ? {} : { skip: "mounting a small tmpfs needs root (CI runs as root)" };
}

export function mountSmallDisk(size = "8m"): SmallDisk {
  const dir = tempDir("nightshift-disk-");
  const path = join(dir.path, "disk");
  const door = join(dir.path, "door");
  mkdirSync(path);
  mkdirSync(door);
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", path]);
  execFileSync("mount", ["--bind", path, door]);
  const filler = join(door, ".filler");
  let readOnly = false;
  return {
    path,
    door,
    fill() {
      const fd = openSync(filler, "a");
      const chunk = Buffer.alloc(64 * 1024, 1);
      try {
        for (;;) writeSync(fd, chunk); // short writes return a count; the write after the last byte throws
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
      } finally {
        closeSync(fd);
      }
    },
    unfill: () => rmSync(filler, { force: true }),
    readOnly() {
      execFileSync("mount", ["--bind", "-o", "ro", path, path]);
      readOnly = true;
    },
    writable() {
      if (readOnly) execFileSync("umount", ["-l", path]);
      readOnly = false;
    },
    cleanup() {
      for (const mount of readOnly ? [path, path, door] : [path, door]) execFileSync("umount", ["-l", mount]);
      dir.cleanup();
    },
  };
}
