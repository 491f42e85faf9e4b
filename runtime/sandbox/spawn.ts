/**
 * Spawns one command and captures its output under a time limit, an output cap and an abort
 * signal. Shared by every Sandbox implementation: they differ only in the argv they build.
 */

import { spawn } from "node:child_process";
import { performance } from "node:perf_hooks";
import { StringDecoder } from "node:string_decoder";
import type { Readable } from "node:stream";
import type { RunResult, SandboxedProcess } from "./sandbox.ts";

export interface CaptureOptions {
  /** The complete environment of the spawned process (already scrubbed). */
  env: Record<string, string>;
  /** Working directory of the spawned process itself. */
  cwd: string;
  timeoutMs: number;
  maxOutputBytes: number;
  signal?: AbortSignal | undefined;
  /**
   * Give the process a lifeline on fd 3: a pipe that only this process holds open, and never
   * writes, so it ends the moment this process dies, SIGKILL included. The command's shell must
   * start with LIFELINE_GUARD, which closes it for the command. Not stdin: bash reads ~/.bashrc
   * when its stdin is a socket (it takes itself for an ssh session), and Node's pipes are sockets.
   */
  lifeline?: boolean;
}

/**
 * The first words of a command's shell when it runs with a lifeline: a command must not outlive a
 * Nightshift that was killed, and no death signal can promise that on its own. bwrap's
 * --die-with-parent is set up only after bwrap has cloned its sandbox and the sandbox's init only
 * later still, so a kill in the first milliseconds of a sandbox left it running (orphaned, with its
 * relay); without a sandbox nothing ties a command to the daemon at all, and macOS has no death
 * signal. The pipe's end is a fact that stays true, whenever the shell gets to look:
 * - a lifeline already at its end (Nightshift died before the shell started): the command never runs;
 * - otherwise a watcher, disowned (a bare `wait` would hang on it; not started from a subshell, whose
 *   end this shell would wait for, a scheduling delay on a loaded machine), reads the pipe and
 *   kills the command's process group when it ends. In bubblewrap that is the sandbox's session, so
 *   the relay goes with it and the sandbox's init then ends the pid namespace; without a sandbox it
 *   is the group spawnCaptured made.
 * Without a lifeline (fd 3 closed, or not a pipe) it does nothing. bash 3.2 (macOS's /bin/bash)
 * has no zero timeout: only the watcher runs there. The check alone is not enough even where every
 * process on the way armed a death signal (bwrap with `--as-pid-1`, tried): a killed Nightshift's
 * pipes close only when its last thread has exited, which on a loaded machine came milliseconds
 * after its death signals had gone out, so a shell could pass the check after its sandbox had
 * already lost its parent.
 */
export const LIFELINE_GUARD = [
  "if [[ -S /dev/fd/3 || -p /dev/fd/3 ]]; then ((BASH_VERSINFO[0] >= 4)) && read -t 0 -u 3 && exit 137",
  "{ read -r -u 3 _; kill -KILL 0; } </dev/null >/dev/null 2>&1 & disown",
  "exec 3<&-; fi",
  "",
].join("; ");

/**
 * `bash` arguments that run `command` with stderr sent into stdout, so both arrive through one pipe
 * in the order they were written (two pipes read by Node would interleave arbitrarily), behind the
 * lifeline guard (spawn it with `lifeline: true`).
 */
export function bashArgs(command: string): string[] {
  // Same line, so bash's "line N" in error messages still matches the command's own lines.
  return ["-c", `${LIFELINE_GUARD}exec 2>&1; ${command}`];
}

/** How long to wait for the pipes to close after the process exited before giving up on them. */
const PIPE_DRAIN_MS = 250;
const PIPE_DRAIN_MAX_MS = 5_000;

/**
 * Runs `file args` in its own process group and resolves when it has exited and its output has
 * been collected. The whole group is SIGKILLed on timeout, on abort and after a normal exit, so no
 * background child outlives the command (a child that called setsid itself escapes the group; the
 * bwrap sandbox catches those through its pid namespace).
 *
 * Rejects only when the process could not be started (e.g. ENOENT for `file`).
 */
export function spawnCaptured(file: string, args: readonly string[], options: CaptureOptions): Promise<RunResult> {
  const started = performance.now();
  if (options.signal?.aborted) {
    return Promise.resolve({ exitCode: null, output: "", droppedBytes: 0, timedOut: false, aborted: true, durationMs: 0 });
  }
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["ignore", "pipe", "pipe", ...(options.lifeline ? ["pipe" as const] : [])],
      // Own process group: `kill(-pid)` then reaches every process the command started.
      detached: true,
    });
    // Never written: closed once the command is done, or by the kernel when this process dies.
    const lifeline = child.stdio[3] as Readable | null | undefined;
    lifeline?.on("error", () => {});
    const output = new OutputCollector(options.maxOutputBytes);
    let timedOut = false;
    let aborted = false;
    let exitCode: number | null = null;
    let exited = false;
    let settled = false;
    let openStreams = 2;
    let drainTimer: NodeJS.Timeout | undefined;
    let exitedAt = 0;
    let drainArmed = 0;
    let incomplete = false;

    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // ESRCH: the group is already gone.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, options.timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      killGroup();
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });

    const finish = (): void => {
      if (settled) return;
      settled = true;
      lifeline?.destroy();
      clearTimeout(timer);
      clearTimeout(drainTimer);
      options.signal?.removeEventListener("abort", onAbort);
      const { text, droppedBytes } = output.finish();
      resolve({
        exitCode,
        output: text,
        droppedBytes,
        timedOut,
        aborted,
        durationMs: performance.now() - started,
        ...(incomplete ? { incomplete } : {}),
      });
    };
    const onStreamDone = (): void => {
      openStreams -= 1;
      if (openStreams === 0 && exited) finish();
    };
    for (const stream of [child.stdout, child.stderr] as Readable[]) {
      const decoder = new StringDecoder("utf8");
      stream.on("data", (chunk: Buffer) => {
        const kept = output.add(decoder, chunk);
        // Still draining what the command wrote: wait on, unless it is all dropped beyond the cap anyway.
        if (kept && exited && drainTimer !== undefined) armDrain();
      });
      stream.once("close", () => {
        output.end(decoder);
        onStreamDone();
      });
    }

    child.once("error", (error) => {
      if (settled) return;
      settled = true;
      lifeline?.destroy();
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      reject(error);
    });
    child.once("exit", (code) => {
      exited = true;
      exitCode = code;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      // Leftover background children would hold the pipes open and keep running: end them too.
      killGroup();
      if (openStreams === 0) return finish();
      exitedAt = performance.now();
      armDrain();
    });
    /**
     * A child that escaped the group may still hold the pipes; do not wait for it forever. The
     * wait restarts while output still arrives (a loaded machine drains a full pipe slowly), up to
     * PIPE_DRAIN_MAX_MS after the exit; output beyond the cap would be dropped, so it does not
     * restart the wait. Giving up marks the result incomplete.
     */
    function armDrain(): void {
      clearTimeout(drainTimer);
      const left = PIPE_DRAIN_MAX_MS - (performance.now() - exitedAt);
      const armed = ++drainArmed;
      drainTimer = setTimeout(() => {
        // Timers run before the poll for I/O: after a stall both are due, so look once more for
        // output already waiting (setImmediate runs after the poll) before giving up on the pipes.
        setImmediate(() => {
          if (armed !== drainArmed && left > 0) return; // output came meanwhile and re-armed the wait
          incomplete = true;
          child.stdout?.destroy();
          child.stderr?.destroy();
          finish();
        });
      }, Math.max(0, Math.min(PIPE_DRAIN_MS, left)));
    }
  });
}

/**
 * Starts `file args` in its own process group with three pipes, for a process that runs until it
 * is told to stop (an MCP server). Resolves once it has started; rejects only when it could not be
 * started (e.g. ENOENT). `kill` and the process's own exit both end the whole group.
 */
export function spawnPiped(file: string, args: readonly string[], options: { env: Record<string, string>; cwd: string }): Promise<SandboxedProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: options.cwd, env: options.env, stdio: ["pipe", "pipe", "pipe"], detached: true });
    const killGroup = (): void => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // ESRCH: the group is already gone.
      }
    };
    const exited = new Promise<number | null>((settle) => child.once("exit", (code) => settle(code)));
    child.once("error", reject);
    child.once("spawn", () => {
      child.on("error", () => {}); // after the start, a failure shows as the exit
      child.stdin.on("error", () => {}); // EPIPE when the process died: its exit says so
      resolve({ stdin: child.stdin, stdout: child.stdout, stderr: child.stderr, exited, kill: killGroup });
    });
  });
}

/**
 * Keeps the first `maxBytes` bytes of stdout and stderr in arrival order and counts the rest.
 * Each stream has its own decoder, so a character split across chunks stays whole; the cut is
 * moved back to a character boundary.
 */
class OutputCollector {
  private readonly maxBytes: number;
  private readonly parts: string[] = [];
  private keptBytes = 0;
  private droppedBytes = 0;

  constructor(maxBytes: number) {
    this.maxBytes = Math.max(0, maxBytes);
  }

  /** False when the whole chunk was dropped: the cap was already reached. */
  add(decoder: StringDecoder, chunk: Buffer): boolean {
    const room = this.maxBytes - this.keptBytes;
    if (room <= 0) {
      this.droppedBytes += chunk.length;
      return false;
    }
    if (chunk.length <= room) {
      this.keptBytes += chunk.length;
      this.parts.push(decoder.write(chunk));
      return true;
    }
    const cut = utf8Boundary(chunk, room);
    this.keptBytes = this.maxBytes; // nothing more is kept, even if the cut moved back
    this.droppedBytes += chunk.length - cut;
    this.parts.push(decoder.write(chunk.subarray(0, cut)));
    return true;
  }

  /** Flushes a stream's decoder; an incomplete character left at a cut is dropped, not garbled. */
  end(decoder: StringDecoder): void {
    const rest = decoder.end();
    if (rest !== "" && this.droppedBytes === 0) this.parts.push(rest);
  }

  finish(): { text: string; droppedBytes: number } {
    return { text: this.parts.join(""), droppedBytes: this.droppedBytes };
  }
}

/** The largest index <= `end` that does not fall inside a UTF-8 sequence starting in `buf`. */
function utf8Boundary(buf: Buffer, end: number): number {
  for (let i = end - 1; i >= 0 && i >= end - 4; i--) {
    const byte = buf[i] as number;
    if ((byte & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead byte
    const length = byte < 0x80 ? 1 : byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
    return i + length > end ? i : end;
  }
  return end;
}

/** Variable names that are dropped whatever their value. */
const SECRET_NAME_PATTERNS: readonly RegExp[] = [
  /KEY/i,
  /TOKEN/i,
  /SECRET/i,
  /PASSWORD/i,
  /PASSWD/i,
  /CREDENTIAL/i,
  /AUTH/i,
  /COOKIE/i,
  /SESSION/i,
  /DATABASE_URL/i, // NIGHTSHIFT_DATABASE_URL: the shared store of several machines
  /^(ANTHROPIC|TELEGRAM|AWS|GH|GITHUB|NPM)_/i,
];

/** Values that are dropped whatever the variable is called. */
const SECRET_VALUE_PATTERNS: readonly RegExp[] = [
  /^sk-/, // Anthropic, OpenAI and similar API keys
  /^\d+:[A-Za-z0-9_-]{30,}$/, // Telegram bot token
  /^(gh[pousr]_|github_pat_)[A-Za-z0-9_]{20,}/, // GitHub tokens
  /^[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:[^/\s@]+@/i, // a URL with a password in it (postgres://user:pass@host)
];

/** Used when the given environment has no PATH, so `bash -c` still finds the usual tools. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * A copy of `env` without anything that looks like a secret, by name or by value.
 * `extraNamePatterns` (case-insensitive regular expressions) are added to the defaults; they can
 * never remove one. Throws SyntaxError for an invalid pattern.
 */
export function scrubEnv(
  env: Readonly<Record<string, string | undefined>>,
  extraNamePatterns: readonly string[] = [],
): Record<string, string> {
  const namePatterns = [...SECRET_NAME_PATTERNS, ...extraNamePatterns.map((p) => new RegExp(p, "i"))];
  const clean: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (namePatterns.some((p) => p.test(name))) continue;
    if (SECRET_VALUE_PATTERNS.some((p) => p.test(value))) continue;
    clean[name] = value;
  }
  clean.PATH ??= DEFAULT_PATH;
  return clean;
}
