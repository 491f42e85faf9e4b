import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import type { RecordedRequest, Reply } from "./messages-api.ts";

export const CLI = join(import.meta.dirname, "..", "..", "cli", "nightshift.ts");

/** Runs `nightshift ARGS` as a real child process and collects what it printed. */
export function nightshift(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * The agent's side of a conversation for crash tests, decided from each request alone so it
 * survives restarts: run `command` with bash, then answer with the first line of its result.
 */
export function agent(command: string, onResult?: (request: RecordedRequest) => Reply | undefined) {
  return (request: RecordedRequest): Reply => {
    const last = request.body.messages.at(-1);
    const result = Array.isArray(last.content) ? last.content.find((block: { type: string }) => block.type === "tool_result") : undefined;
    if (!result) return { content: [{ type: "tool_use", name: "bash", input: { command } }] };
    return onResult?.(request) ?? { content: [{ type: "text", text: `finished after: ${result.content.split("\n")[0]}` }] };
  };
}

/**
 * Polls a real child process or the file system until `condition` holds, for at most `ms` of real
 * time (these tests cross process boundaries; the fake clock cannot drive another process). The
 * default is far above what anything takes on an idle machine (a daemon starts in 1-2 s): it only
 * keeps a loaded machine (CI beside other work) from failing a test that would pass.
 */
export async function until(condition: () => boolean, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export interface DaemonProcess {
  child: ChildProcess;
  /** Everything it printed so far, stdout and stderr together. */
  output(): string;
  exited: Promise<number | null>;
}

/** Starts `nightshift start` as a real child process and resolves once it says it is running; `started` sees the child first (to kill it at clean-up). */
export async function startDaemonProcess(env: NodeJS.ProcessEnv, started?: (child: ChildProcess) => void): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [CLI, "start"], { env, stdio: ["ignore", "pipe", "pipe"] });
  started?.(child);
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  try {
    await until(() => output.includes("Nightshift is running") || child.exitCode !== null, "the daemon to start");
  } catch (error) {
    // Never left running: a daemon that outlives its test holds the test file open for good.
    child.kill("SIGKILL");
    throw error;
  }
  if (!output.includes("Nightshift is running")) throw new Error(`the daemon did not start:\n${output}`);
  return { child, output: () => output, exited };
}
