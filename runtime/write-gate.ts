import { waitOn, type Clock } from "./clock.ts";

/**
 * What the daemon does when its disk is full or its home read-only: the writes that matter (session
 * logs, the task state, results) wait and try again by themselves, holding what they would have
 * written, and the person is told once per outage, and again once writes work. Nothing is dropped,
 * nothing is asked of the model twice, and no failing write is retried in a tight loop.
 */

export type StorageFault = "full" | "read-only";

/** Full (ENOSPC, EDQUOT, SQLITE_FULL) or read-only (EROFS, SQLITE_READONLY); undefined for any other failure. */
export function storageFault(error: unknown): StorageFault | undefined {
  for (let cause = error, depth = 0; cause && depth < 5; cause = (cause as { cause?: unknown }).cause, depth++) {
    const { code, errcode } = cause as { code?: unknown; errcode?: unknown };
    if (code === "ENOSPC" || code === "EDQUOT") return "full";
    if (code === "EROFS") return "read-only";
    // node:sqlite gives SQLite's extended result code; its low byte is the primary one.
    if (typeof errcode === "number" && (errcode & 0xff) === 13) return "full";
    if (typeof errcode === "number" && (errcode & 0xff) === 8) return "read-only";
    // Node 24's rmSync reports EROFS with an empty code ("Unknown error: Read-only file system"): the text is all there is.
    const message = (cause as { message?: unknown }).message;
    if (typeof message === "string" && /No space left on device|Disk quota exceeded/.test(message)) return "full";
    if (typeof message === "string" && /Read-only file system/.test(message)) return "read-only";
  }
  return undefined;
}

/** An error's message as the person should read it (Node 24's rmSync says ", Unknown error: Read-only file system 'PATH'"). */
export function storageMessage(error: unknown): string {
  const message = (error as Error)?.message ?? String(error);
  return message.replace(/^, Unknown error: /, "");
}

export interface StorageOutage {
  fault: StorageFault;
  /** The first write that failed, as the person knows it: `the task state (state/nightshift.db)`. */
  what: string;
  /** The error it failed with. */
  message: string;
  since: number;
}

export type OutageChange = { state: "down"; outage: StorageOutage } | { state: "up"; outage: StorageOutage; at: number };

export interface WriteGateOptions {
  clock: Clock;
  /**
   * An outage began or ended. Said once per outage; one that begins within `quietMs` of the last
   * one said is not said again (a nearly full disk that flaps), nor is its end. Must not throw.
   */
  report?(change: OutageChange): void;
  /** The first wait after a failed write; it doubles up to `maxDelayMs`. Default 500 ms. */
  firstDelayMs?: number;
  /** Default 10 s: space that returns is used within that long. */
  maxDelayMs?: number;
  /** Default 10 minutes. */
  quietMs?: number;
}

export interface WriteGate {
  /**
   * Runs `write` until it succeeds. While it fails because the disk is full or read-only, the
   * outage is said (once) and `write` is tried again after a growing pause; any other error is
   * thrown at once. `write` is always tried at least once; while waiting, an abort of `signal`
   * rejects with its reason. `write` must be safe to repeat (a failed session-log append leaves
   * the log as it was).
   */
  retry<T>(what: string, write: () => T | Promise<T>, signal?: AbortSignal): Promise<T>;
  /** Runs `write` once: a disk-full or read-only failure begins an outage (said once) and is thrown; a success may end one. */
  attempt<T>(what: string, write: () => T | Promise<T>): Promise<T>;
  /** A write that failed elsewhere: true (and the outage said once) when the disk is full or read-only. */
  failed(what: string, error: unknown): boolean;
  /** Waits the pause after the `attempt`-th failure in a row (0-based); rejects when `signal` aborts. */
  pause(attempt: number, signal?: AbortSignal): Promise<void>;
  /** The outage under way, if any. */
  readonly outage: StorageOutage | undefined;
}

export function createWriteGate(options: WriteGateOptions): WriteGate {
  const { clock } = options;
  const first = options.firstDelayMs ?? 500;
  const max = options.maxDelayMs ?? 10_000;
  const quietMs = options.quietMs ?? 600_000;
  let outage: (StorageOutage & { said: boolean }) | undefined;
  let lastSaid = Number.NEGATIVE_INFINITY;
  /** Retries whose last try failed: the outage is over only when none is left. */
  let failing = 0;

  const tell = (change: OutageChange) => {
    try {
      options.report?.(change);
    } catch {
      // must not throw: a broken reporter must not stop a write from being tried again
    }
  };
  const failed = (what: string, error: unknown): boolean => {
    const fault = storageFault(error);
    if (!fault) return false;
    if (outage) return true;
    const now = clock.now();
    outage = { fault, what, message: storageMessage(error), since: now, said: now - lastSaid >= quietMs };
    if (outage.said) {
      lastSaid = now;
      const { said: _, ...shown } = outage;
      tell({ state: "down", outage: shown });
    }
    return true;
  };
  const succeeded = () => {
    if (!outage || failing > 0) return;
    const { said, ...ended } = outage;
    outage = undefined;
    if (said) tell({ state: "up", outage: ended, at: clock.now() });
  };
  const pause = (attempt: number, signal?: AbortSignal) => waitOn(clock, Math.min(max, first * 2 ** Math.min(attempt, 30)), signal);

  return {
    async retry(what, write, signal) {
      let counted = false;
      try {
        for (let attempt = 0; ; attempt++) {
          try {
            const result = await write();
            if (counted) failing--;
            counted = false;
            succeeded();
            return result;
          } catch (error) {
            if (!failed(what, error)) throw error;
            if (!counted) failing++;
            counted = true;
          }
          await pause(attempt, signal);
        }
      } finally {
        if (counted) failing--; // given up (a stop): the next write that works ends the outage
      }
    },
    async attempt(what, write) {
      try {
        const result = await write();
        succeeded();
        return result;
      } catch (error) {
        failed(what, error);
        throw error;
      }
    },
    failed,
    pause,
    get outage() {
      if (!outage) return undefined;
      const { said: _, ...shown } = outage;
      return shown;
    },
  };
}
