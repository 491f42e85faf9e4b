import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { journalDamageMessage, openMemory } from "../memory/index.ts";
import {
  createRuntime,
  createTraceLogger,
  damageMessage,
  newSessionId,
  readSessionLog,
  sharedMachine,
  Shutdown,
  traceEvent,
  type Clock,
  type LoadedConfig,
  type Approver,
  type Sandbox,
  type SessionEvent,
  type SessionResult,
} from "../runtime/index.ts";
import { connectDaemon, type DaemonClient } from "../tasks/control.ts";
import { readTaskFile, taskFromPrompt, toTaskSpec, type TaskFile } from "../tasks/index.ts";
import { stagedText } from "../tasks/outbox.ts";
import { progressLine } from "./progress.ts";
import { createTerminalApprover } from "./terminal-approver.ts";
import { UsageError } from "./usage.ts";

export interface RunArgs {
  /** A task file path or a prompt. */
  target?: string;
  resume?: string;
  workdir?: string;
  quiet?: boolean;
}

export interface RunIO {
  loaded: LoadedConfig;
  clock: Clock;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Aborted with Shutdown to stop for a later resume, with anything else to cancel. */
  signal: AbortSignal;
  /** A terminal to ask approvals in; without one, asks are denied at once. */
  stdin?: NodeJS.ReadableStream;
  sandbox?: Sandbox;
}

/** `nightshift run`: one task in the foreground. Returns the exit code: 0 done, 1 failed or cancelled. */
export async function runCommand(args: RunArgs, io: RunIO): Promise<number> {
  const { loaded, clock } = io;
  const progress = (session: string, event: SessionEvent) => {
    const line = args.quiet ? undefined : progressLine(session, event);
    if (line) io.stderr.write(line + "\n");
  };
  const daemon = await connectDaemon(loaded.home);
  if (daemon) return handOff(daemon, args, io, progress); // the daemon writes the trace

  const trace = createTraceLogger(join(loaded.home, "logs", "trace.jsonl"), loaded.config.log_level);
  let approvers: Approver[] = [];
  const memory = openMemory(loaded.home, clock, loaded.config.memory.cap, { machine: sharedMachine(loaded), onDamaged: (line) => void io.stderr.write(`! ${journalDamageMessage(line)}\n`) });
  const runtime = await createRuntime({
    loaded,
    clock,
    onDamaged: (file) => void io.stderr.write(`! ${damageMessage(file)}\n`),
    ...memory.forRuntime(),
    approvers: () => approvers,
    ...(io.sandbox ? { sandbox: io.sandbox } : {}),
  });
  if (io.stdin) approvers = [createTerminalApprover(runtime.approvals, io.stdin, io.stderr)];
  const emit = (session: string, event: SessionEvent) => {
    traceEvent(trace, session, event);
    memory.record(session, event);
    progress(session, event);
  };

  let id: string;
  let result: SessionResult;
  try {
    if (args.resume) {
      id = args.resume;
      if (!/^[\w.-]+$/.test(id) || !existsSync(join(runtime.sessionsDir, `${id}.jsonl`))) {
        throw new UsageError(`no session ${id} in ${runtime.sessionsDir}; \`ls ${runtime.sessionsDir}\` lists the sessions`);
      }
      const logged = await readSessionLog(join(runtime.sessionsDir, `${id}.jsonl`));
      if (!logged.length) throw new UsageError(`session ${id} never started (killed before its first event), so there is nothing to resume; run the task again`);
      memory.reconcile(id, logged); // what a killed run logged but did not journal
      result = await runtime.resume(id, { signal: io.signal, emit });
    } else {
      if (!args.target) throw new UsageError('nightshift run needs a task file or a prompt: nightshift run "what to do"');
      const file = await taskFileOrPrompt(args.target);
      id = runtime.newSessionId();
      for (const warning of unsupportedKeys(file)) io.stderr.write(`! ${warning}\n`);
      const task = toTaskSpec(file, { loaded, id, fileName: args.target, source: "cli", ...(args.workdir ? { workdir: args.workdir } : {}) });
      result = await runtime.start(id, task, { signal: io.signal, emit });
    }
  } finally {
    await runtime.close();
  }
  trace.flush();
  return report(result, id, io);
}

/**
 * Only one process writes state: with a daemon running, the task runs there and we follow it. A
 * `--resume` goes there too: the daemon queues the session to go on from its log.
 */
async function handOff(daemon: DaemonClient, args: RunArgs, io: RunIO, emit: (session: string, event: SessionEvent) => void): Promise<number> {
  let id: string;
  let follow: (signal: AbortSignal) => ReturnType<DaemonClient["run"]>;
  if (args.resume) {
    id = args.resume;
    const sessionsDir = join(io.loaded.home, "sessions");
    if (!/^[\w.-]+$/.test(id) || (!existsSync(join(sessionsDir, `${id}.jsonl`)) && !(await daemon.get(id)))) {
      throw new UsageError(`no session ${id} in ${sessionsDir}; \`nightshift status\` lists the tasks`);
    }
    const queued = (already: boolean) => io.stderr.write(already ? "(already queued or running in the daemon; following it)\n" : "(handed to the running daemon, which resumes it from its log)\n");
    follow = (signal) => daemon.resume(id, (event) => emit(id, event), signal, queued);
  } else {
    if (!args.target) throw new UsageError('nightshift run needs a task file or a prompt: nightshift run "what to do"');
    const file = await taskFileOrPrompt(args.target);
    for (const warning of unsupportedKeys(file)) io.stderr.write(`! ${warning}\n`);
    const newId = (id = newSessionId(io.clock.now()));
    const spec = toTaskSpec(file, { loaded: io.loaded, id: newId, fileName: args.target, source: "cli", ...(args.workdir ? { workdir: args.workdir } : {}) });
    io.stderr.write(`(handed to the running daemon)\n`);
    follow = (signal) => daemon.run(newId, spec, (event) => emit(newId, event), signal);
  }
  // Ctrl-C cancels the task; SIGTERM only stops following it (it keeps running in the daemon).
  const following = new AbortController();
  const onAbort = () => {
    if (io.signal.reason instanceof Shutdown) following.abort();
    else void daemon.cancel(id).catch(() => {});
  };
  io.signal.addEventListener("abort", onAbort, { once: true });
  try {
    const { result } = await follow(following.signal);
    return report(result, id, io);
  } catch (error) {
    if (following.signal.aborted) {
      io.stderr.write(`stopped following; the task keeps running in the daemon: nightshift status ${id}\n`);
      return 1;
    }
    io.stderr.write(`nightshift: ${(error as Error).message}\n`);
    return 1;
  } finally {
    io.signal.removeEventListener("abort", onAbort);
  }
}

function report(result: SessionResult, id: string, io: RunIO): number {
  if (result.status === "interrupted") {
    io.stderr.write(`stopped; continue with: nightshift run --resume ${id}\n`);
    return 1;
  }
  if (result.answer) io.stdout.write(result.answer.endsWith("\n") ? result.answer : result.answer + "\n");
  if (result.staged) io.stdout.write(`\n${stagedText(id, result.staged)}\n`);
  if (result.status !== "done") {
    io.stderr.write(`task ${result.status}: ${result.reason ?? "no reason recorded"}\n`);
    if (result.status === "failed") io.stderr.write(`session ${id}; to try again from where it stopped: nightshift run --resume ${id}\n`);
    return 1;
  }
  return 0;
}

async function taskFileOrPrompt(target: string): Promise<TaskFile> {
  const looksLikeFile = /\.(md|markdown|txt)$/i.test(target) && !/\s/.test(target.trim());
  if (existsSync(target) && statSync(target).isFile()) return readTaskFile(target);
  if (looksLikeFile) throw new UsageError(`${target}: no such task file; pass a path to a task file or a prompt in quotes`);
  return taskFromPrompt(target);
}

/** Keys a task file may carry that `run` cannot honour yet. */
function unsupportedKeys(file: TaskFile): string[] {
  const warnings: string[] = [];
  if (file.schedule) warnings.push("`schedule` only applies to files in schedules/; running once now");
  if (file.notify) warnings.push("`notify` applies to tasks the daemon runs (nightshift start, with Telegram set up); this foreground run prints its answer here");
  return warnings;
}
