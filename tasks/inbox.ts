import { constants, watch } from "node:fs";
import type { FSWatcher, Stats } from "node:fs";
import { lstat, mkdir, open, readdir, readlink, rename } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { basename, join } from "node:path";
import type { Clock } from "../runtime/clock.ts";
import { TaskFileError } from "../runtime/errors.ts";
import { DEFAULT_MAX_TASK_BYTES } from "./task-file.ts";
import type { TaskFile } from "./task-file.ts";
import { errorFileName, errorReport, exists, isCode, isIgnored, kindOf, numbered, parseInboxTask, signature, tooLarge, writeAtomically } from "./inbox-files.ts";

/**
 * The inbox: files dropped in inbox/ become validated tasks or clear rejections.
 *
 * Which files: regular files at the top level whose name ends in .md (any case) are tasks. Dotfiles,
 * editor and download temp files (`isIgnored`) and folders (.done/, .rejected/) are left alone. Any
 * other file (notes.txt, photo.png), a symlink or a special file is rejected without being read:
 * silently ignoring it would leave the user waiting for an answer that never comes. A symlink is
 * never followed; only the link moves, its target is untouched. A task with `schedule:` is rejected
 * too: it belongs in schedules/, and running it once would not be what the user meant.
 *
 * When: a file is read once its size, mtime and inode have stayed the same for `settleMs` by the
 * clock (two observations that far apart), so a half-written file is never read; it is re-checked
 * after the read too. Watch events trigger observations, a timer fires when a file should have
 * settled, and a slow poll catches missed events. Valid: `accept`, then the move to .done/. Invalid:
 * the move to .rejected/, then `outbox/<stem>.error.md`.
 *
 * Names: the moved file keeps its name unless that name is taken; then `-2`, `-3`, … goes before the
 * last extension (`report.md` → `report-2.md`; `notes.txt` → `notes-2.txt`). A valid task's name is
 * taken when `.done/<name>` or `outbox/<name>` exists, so the result written to `outbox/<name>`
 * matches `.done/<name>` and never overwrites an earlier result. A rejection's name is taken when
 * `.rejected/<name>` or its error file exists. The error file for `x.md` is `x.error.md`; for any
 * other name it is `<name>.error.md` (`notes.txt.error.md`), so `notes.txt` and `notes.md` never share one.
 *
 * Exactly once: the file moves to .done/ first, then `accept` queues it. A crash in between leaves a
 * .done/ file with no task and no result, which the daemon queues when it starts (cli/start.ts).
 */

export interface AcceptedTask {
  file: TaskFile;
  /** The final, unique name: the file's name in inbox/.done/ and its result's name in outbox/. */
  name: string;
  /** Where the task file is kept once accepted: inbox/.done/<name>. */
  path: string;
  /** The name the user dropped, when `name` had to be made unique. */
  dropped: string;
}

export interface Rejection {
  /** The name the user dropped. */
  name: string;
  /** One line: `inbox/<name>[:line]: [field: ]problem; fix`. */
  message: string;
  errorFile: string;
  movedTo: string;
}

export interface InboxOptions {
  /** NIGHTSHIFT_HOME/inbox */
  dir: string;
  /** NIGHTSHIFT_HOME/outbox, for <stem>.error.md */
  outbox: string;
  clock: Clock;
  /** Default 256 KiB (config inbox.max_bytes). */
  maxBytes?: number;
  /** How long a file's size and mtime must stay unchanged to count as complete. Default 200 ms. */
  settleMs?: number;
  /** The safety poll for missed watch events. Default 2 s. */
  pollMs?: number;
  /** A valid task: the daemon queues it and returns the task id. Must be durable when it resolves. */
  accept(task: AcceptedTask): Promise<string>;
  /** Tells the user (trace, later Telegram) that a file was rejected. Must not throw. */
  onRejected?(rejection: Rejection): void;
  /** A fault that is not the file's: `accept` threw, a move failed, the watcher broke. The file is retried on the next scan. Must not throw. */
  onError?(problem: { name?: string; error: unknown }): void;
}

export interface Inbox {
  start(): Promise<void>;
  /** Picks up files present now (also used at start): settled ones are handled before it resolves, others wait to settle. */
  scan(): Promise<void>;
  /** Stops watching and timers; handling already under way finishes first. */
  close(): Promise<void>;
}

/** A file seen with the same signature since `since`; `cancel` stops its settle timer. */
interface Tracked {
  sig: string;
  since: number;
  cancel?: () => void;
}

const NAME_ATTEMPTS = 10_000;

export function createInbox(options: InboxOptions): Inbox {
  const { dir, outbox, clock } = options;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_TASK_BYTES;
  const settleMs = options.settleMs ?? 200;
  const pollMs = options.pollMs ?? 2000;
  const doneDir = join(dir, ".done");
  const rejectedDir = join(dir, ".rejected");
  const shown = (...parts: string[]) => [basename(dir), ...parts].join("/");

  const tracked = new Map<string, Tracked>();
  /** Files being validated, accepted or moved: one handling per name at a time. */
  const busy = new Map<string, Promise<void>>();
  /** Names that got an event while busy: looked at again once the handling ends (a new file may have the same name). */
  const recheck = new Set<string>();
  /** Final names claimed by a handling in progress (lowercased: safe on case-insensitive disks). */
  const reserved = new Set<string>();
  let watcher: FSWatcher | undefined;
  let cancelPoll: (() => void) | undefined;
  let closed = false;

  const report = (error: unknown, name?: string) => {
    try {
      options.onError?.(name === undefined ? { error } : { name, error });
    } catch {
      // must not throw, and a broken reporter must not stop the inbox
    }
  };
  const poke = (name: string) => void check(name).catch((error: unknown) => report(error, name));

  function forget(name: string): void {
    tracked.get(name)?.cancel?.();
    tracked.delete(name);
  }

  /** Keeps the file's signature as already settled, so the next scan retries it at once (not a timer: no hot loop). */
  function retryLater(name: string, stats: Stats): void {
    forget(name);
    tracked.set(name, { sig: signature(stats), since: Number.NEGATIVE_INFINITY });
    recheck.delete(name);
  }

  function settleTimer(name: string, ms: number): () => void {
    return clock.setTimer(() => {
      const seen = tracked.get(name);
      if (seen) seen.cancel = undefined;
      poke(name);
    }, ms);
  }

  /** Observes one entry and starts its handling once it has settled (held in `busy`, not awaited here). */
  async function check(name: string): Promise<void> {
    if (closed || isIgnored(name)) return;
    if (busy.has(name)) return void recheck.add(name);
    let stats: Stats;
    try {
      stats = await lstat(join(dir, name));
    } catch (error) {
      if (isCode(error, "ENOENT")) return forget(name); // deleted before it settled: nothing to say
      throw error;
    }
    if (closed || stats.isDirectory()) return;
    if (busy.has(name)) return void recheck.add(name);
    const sig = signature(stats);
    const now = clock.now();
    const seen = tracked.get(name);
    if (!seen || seen.sig !== sig) {
      seen?.cancel?.();
      tracked.set(name, { sig, since: now, cancel: settleTimer(name, settleMs) });
      return;
    }
    const waited = now - seen.since;
    if (waited < settleMs) {
      seen.cancel ??= settleTimer(name, Math.max(1, settleMs - waited));
      return;
    }
    forget(name);
    const handling = handle(name, stats)
      .catch((error: unknown) => {
        report(error, name);
        retryLater(name, stats);
      })
      .finally(() => {
        busy.delete(name);
        if (recheck.delete(name) && !closed) poke(name);
      });
    busy.set(name, handling);
  }

  async function handle(name: string, settled: Stats): Promise<void> {
    let verdict: TaskFile | "changed" | "gone";
    try {
      verdict = await examine(name, settled);
    } catch (error) {
      if (error instanceof TaskFileError) return reject(name, error, settled);
      throw error;
    }
    if (verdict === "gone") return;
    if (verdict === "changed") return void recheck.add(name); // still being written: settle again
    return acceptTask(name, verdict, settled);
  }

  /** Validates without following links; throws TaskFileError for anything that is not a good task. */
  async function examine(name: string, settled: Stats): Promise<TaskFile | "changed" | "gone"> {
    const path = join(dir, name);
    const where = shown(name);
    if (settled.isSymbolicLink()) {
      const target = await readlink(path).catch(() => "somewhere");
      throw new TaskFileError(where, `${where}: is a symlink (to ${target}); symlinks are not accepted and never followed; copy the file itself into ${shown()}/`);
    }
    if (!settled.isFile()) {
      throw new TaskFileError(where, `${where}: is not a regular file (${kindOf(settled)}); drop a .md file instead`);
    }
    if (!/\.md$/i.test(name)) {
      const stem = name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : name;
      throw new TaskFileError(where, `${where}: is not a task file (task files end in .md), so it was not read; if it is a task, save it as ${stem}.md`);
    }
    let file: FileHandle;
    try {
      // O_NOFOLLOW: a symlink swapped in since lstat fails instead of being read. O_NONBLOCK: a FIFO cannot hang us.
      file = await open(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0));
    } catch (error) {
      if (isCode(error, "ENOENT")) return "gone";
      if (isCode(error, "ELOOP")) return "changed";
      const code = (error as NodeJS.ErrnoException).code ?? "unknown error";
      throw new TaskFileError(where, `${where}: cannot be read (${code}); check that the file is readable`);
    }
    try {
      const before = await file.stat();
      if (signature(before) !== signature(settled)) return "changed";
      if (before.size > maxBytes) throw new TaskFileError(where, `${where}: ${tooLarge(before.size, maxBytes)}`);
      const content = await file.readFile();
      if (signature(await file.stat()) !== signature(settled)) return "changed";
      return parseInboxTask(where, content, maxBytes);
    } finally {
      await file.close();
    }
  }

  /**
   * The file moves to .done/ first, then the task is queued: a crash in between leaves a .done/ file
   * with no task, which the daemon's start-up reconcile queues; a file is never queued twice.
   */
  async function acceptTask(name: string, task: TaskFile, settled: Stats): Promise<void> {
    await mkdir(doneDir, { recursive: true });
    const final = await claimName(name, (candidate) => [join(doneDir, candidate), join(outbox, candidate)]);
    try {
      try {
        await rename(join(dir, name), join(doneDir, final));
      } catch (error) {
        if (isCode(error, "ENOENT")) return; // taken back before it was queued
        report(error, name);
        return retryLater(name, settled);
      }
      try {
        await options.accept({ file: task, name: final, path: join(doneDir, final), dropped: name });
      } catch (error) {
        // Not queued: put the file back so it is offered again (if that fails, the start-up reconcile queues it).
        report(error, name);
        await rename(join(doneDir, final), join(dir, name)).catch(() => {});
        return retryLater(name, settled);
      }
    } finally {
      reserved.delete(final.toLowerCase());
    }
  }

  async function reject(name: string, error: TaskFileError, settled: Stats): Promise<void> {
    await mkdir(rejectedDir, { recursive: true });
    await mkdir(outbox, { recursive: true });
    const final = await claimName(name, (candidate) => [
      join(rejectedDir, candidate),
      join(outbox, errorFileName(candidate)),
      join(doneDir, errorFileName(candidate)),
    ]);
    const movedTo = join(rejectedDir, final);
    const errorFile = join(outbox, errorFileName(final));
    try {
      // Moved first: the error file must never point at a place the file is not.
      try {
        await rename(join(dir, name), movedTo);
      } catch (moveError) {
        if (isCode(moveError, "ENOENT")) return; // deleted meanwhile: nothing left to reject
        report(moveError, name);
        return retryLater(name, settled);
      }
      const text = errorReport({ dropped: name, where: shown(name), error, movedTo: shown(".rejected", final), at: clock.now(), inbox: shown() });
      await writeAtomically(errorFile, text).catch((writeError: unknown) => report(writeError, name));
      try {
        options.onRejected?.({ name, message: error.message, errorFile, movedTo });
      } catch (notifyError) {
        report(notifyError, name);
      }
    } finally {
      reserved.delete(final.toLowerCase());
    }
  }

  /** The first of name, name-2, name-3, … that no handling holds and none of whose paths exist; reserved until released. */
  async function claimName(name: string, pathsFor: (candidate: string) => string[]): Promise<string> {
    const held = (candidate: string) => {
      const key = candidate.toLowerCase();
      return reserved.has(key);
    };
    for (let n = 1; n <= NAME_ATTEMPTS; n++) {
      const candidate = numbered(name, n);
      if (held(candidate)) continue;
      const taken = await Promise.all(pathsFor(candidate).map(exists));
      if (taken.includes(true) || held(candidate)) continue;
      reserved.add(candidate.toLowerCase());
      return candidate;
    }
    throw new Error(`no free name for ${shown(name)} after ${NAME_ATTEMPTS} tries; clear out ${shown(".done")}/ and ${shown(".rejected")}/`);
  }

  function watchDir(): void {
    if (closed || watcher) return;
    try {
      const current = watch(dir, (_event, filename) => {
        if (filename) poke(filename);
        else void look().catch((error: unknown) => report(error));
      });
      // A broken watcher (the folder was removed, too many watches) is reported; the poll tries again.
      current.on("error", (error) => {
        report(error);
        current.close();
        if (watcher === current) watcher = undefined;
      });
      watcher = current;
    } catch (error) {
      report(error);
    }
  }

  function schedulePoll(): void {
    cancelPoll = clock.setTimer(() => {
      cancelPoll = undefined;
      // Not `scan`: a slow accept must not hold up the next look. An inbox folder removed by hand is made again.
      void mkdir(dir, { recursive: true })
        .then(() => {
          if (closed) return;
          watchDir();
          return look();
        })
        .catch((error: unknown) => report(error))
        .finally(() => {
          if (!closed && !cancelPoll) schedulePoll();
        });
    }, pollMs);
  }

  /** Observes every entry present now; handling it starts runs on in `busy`. */
  async function look(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      if (isCode(error, "ENOENT")) return;
      throw error;
    }
    const present = new Set(names);
    // Timers clean up after deleted files themselves; entries waiting for a retry do not.
    for (const [name, seen] of tracked) if (!seen.cancel && !present.has(name)) tracked.delete(name);
    await Promise.all(names.map((name) => check(name).catch((error: unknown) => report(error, name))));
  }

  async function scan(): Promise<void> {
    if (closed) return;
    await look();
    await Promise.allSettled([...busy.values()]);
  }

  return {
    async start() {
      if (closed) throw new Error("this inbox is closed; create a new one");
      await mkdir(dir, { recursive: true });
      watchDir();
      await scan(); // files dropped while the daemon was down
      if (!closed && !cancelPoll) schedulePoll();
    },
    scan,
    async close() {
      closed = true;
      watcher?.close();
      watcher = undefined;
      cancelPoll?.();
      cancelPoll = undefined;
      for (const name of [...tracked.keys()]) forget(name);
      await Promise.allSettled([...busy.values()]);
    },
  };
}
