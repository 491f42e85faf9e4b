/** What every sandbox implementation offers the `bash` tool. */

import type { Readable, Writable } from "node:stream";

export interface RunOptions {
  /** Absolute, real path; the only place the command may write. */
  cwd: string;
  /** Extra writable paths besides `cwd` (absolute, real). */
  writable?: string[];
  /** Files hidden for this run only, e.g. `.env` files found in the workdir (absolute, real). */
  hidden?: string[];
  /** Existing paths inside writable ones that stay read-only for this run (e.g. `.git/hooks`, a denied folder). */
  readOnly?: string[];
  /**
   * Existing folders inside writable ones that keep their place: the command may change what is in
   * them but cannot rename, remove or replace them (`.git`, whose read-only files would otherwise
   * move with it). A backend that cannot pin leaves it to the caller's check after the run.
   */
  pinned?: string[];
  /** Kill the command after this long. */
  timeoutMs: number;
  /** Keep at most this many bytes of combined output; the rest is dropped and reported. */
  maxOutputBytes: number;
  /** Aborting kills the whole process group. */
  signal?: AbortSignal;
  /**
   * The session the command runs for. A sandbox with a network proxy gives network only to runs
   * that carry one, and passes it to the proxy's decision; without it the command has no network.
   */
  sessionKey?: string;
  /**
   * The task works on a staged copy of `cwd` (runtime/stage/overlay.ts): the command runs in the
   * holder's namespace, where `merged` is the overlay, bound at `cwd`. Absent: the folder itself.
   */
  stage?: StagedView;
}

export interface StagedView {
  /** The holder process whose mount namespace has the overlay. */
  pid: number;
  /** The overlay's path in that namespace. */
  merged: string;
  /** The folder the overlay stands for (its lower layer), a real path. */
  original: string;
}

export interface RunResult {
  /** Exit code, or null when killed by a signal. */
  exitCode: number | null;
  /** stdout and stderr interleaved as they arrived, capped at `maxOutputBytes`. */
  output: string;
  /** Bytes dropped beyond the cap (0 when nothing was dropped). */
  droppedBytes: number;
  /**
   * True when the wait for the output gave up: after the command exited, its pipes stayed open (a
   * process that left its group still held them, or output still arrived at the wait's limit), so
   * whatever came later was not read and is not counted in `droppedBytes`.
   */
  incomplete?: boolean;
  timedOut: boolean;
  /** True when `signal` aborted the command. */
  aborted: boolean;
  durationMs: number;
  /** What the sandbox reported refusing, one line each (sandbox-runtime on macOS), for the model. */
  violations?: string[];
}

export interface SandboxProbe {
  ok: boolean;
  /** Name of the implementation, for doctor and traces. */
  kind: string;
  /** When not ok: what is missing and how to fix it, in one or two sentences. */
  problem?: string;
}

/** A long-running process in the sandbox with its pipes (an MCP stdio server). */
export interface SpawnOptions {
  /** Absolute, real path: its working directory, writable. */
  cwd: string;
  /** Extra writable paths (absolute). */
  writable?: string[];
  /**
   * The process's whole environment: nothing of Nightshift's own is added, not even what `run`
   * passes to commands (only PATH when missing, and the proxy's variables when it has network).
   */
  env: Record<string, string>;
  /** Network through the proxy, decided under this key; without it the process has none. */
  sessionKey?: string;
}

export interface SandboxedProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  /** The process's own stderr (a server's log), apart from stdout's protocol. */
  readonly stderr: Readable;
  /** Resolves once when the process has exited (code, or null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Kills the process and everything it started; idempotent. */
  kill(): void;
}

export interface Sandbox {
  readonly kind: string;
  /** Checks that commands can run here. Cheap enough to call at start and in `doctor`. */
  probe(): Promise<SandboxProbe>;
  /** Runs `command` with `bash -c`. Must not throw for a failing command; throws SandboxUnavailable when it cannot run at all. */
  run(command: string, options: RunOptions): Promise<RunResult>;
  /**
   * Starts `file args` with stdin, stdout and stderr as pipes, confined like `run` (hidden paths,
   * writes only to cwd and `writable`, network only through the proxy). Throws SandboxUnavailable
   * when the sandbox does not work here. Absent on backends that cannot do it yet (srt, off).
   */
  spawn?(file: string, args: readonly string[], options: SpawnOptions): Promise<SandboxedProcess>;
  /** Releases what the sandbox holds between runs (srt: its bridges and proxies). Runs must have ended. */
  close?(): Promise<void>;
}
