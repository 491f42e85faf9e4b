import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { initHome } from "../../cli/init.ts";
import { readPrefix } from "../../memory/index.ts";
import type { ApprovalRecord, ApprovalStore, Approver } from "../../runtime/approvals.ts";
import { loadConfig } from "../../runtime/config.ts";
import type { SessionEvent, TaskSpec } from "../../runtime/events.ts";
import { createRuntime, type Runtime } from "../../runtime/runtime.ts";
import { readSessionLog } from "../../runtime/session-log.ts";
import { FakeClock } from "./fake-clock.ts";
import { tempDir } from "./home.ts";
import { startMessagesApi, type MessagesApi } from "./messages-api.ts";
import { BOT_TOKEN, SECRET_KEY } from "./session.ts";

export const PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY----- test-only";

/**
 * The whole runtime as the CLI builds it (config, sandbox, policy, approvals), against the
 * Messages API stand-in, with a temporary HOME holding planted secrets and a fake clock.
 */
export interface RuntimeHarness {
  api: MessagesApi;
  clock: FakeClock;
  root: string;
  /** The temporary $HOME, with ~/.ssh/id_rsa and ~/.aws/credentials planted. */
  userHome: string;
  /** NIGHTSHIFT_HOME */
  home: string;
  workdir: string;
  runtime: Runtime;
  /** Approvers the runtime sees; empty means nobody can answer. */
  approvers: Approver[];
  task(overrides?: Partial<TaskSpec>): TaskSpec;
  events(id: string): Promise<SessionEvent[]>;
  /** Builds a new runtime on the same folders (as after a restart). */
  restart(): Promise<Runtime>;
  close(): Promise<void>;
}

/**
 * `sandbox` picks the backend (`sandbox.mode`), for suites that run against both Linux ones; it is
 * written into the config's `sandbox:` section (added when the config has none).
 */
export async function createRuntimeHarness(options: { config?: string; approvers?: Approver[]; sandbox?: "bwrap" | "srt" } = {}): Promise<RuntimeHarness> {
  const api = await startMessagesApi();
  // Not under /tmp: inside the sandbox /tmp is a private tmpfs, which would swallow writes silently.
  const dir = tempDir("nightshift-test-", "/var/tmp");
  const userHome = join(dir.path, "home");
  const home = join(userHome, ".nightshift");
  const workdir = join(dir.path, "work");
  mkdirSync(join(userHome, ".ssh"), { recursive: true });
  mkdirSync(join(userHome, ".aws"), { recursive: true });
  mkdirSync(workdir);
  writeFileSync(join(userHome, ".ssh", "id_rsa"), PRIVATE_KEY + "\n");
  writeFileSync(join(userHome, ".aws", "credentials"), "[default]\naws_secret_access_key = AKIATESTONLY\n");
  initHome(home);
  const config = options.sandbox ? withSandboxMode(options.config ?? "", options.sandbox) : options.config;
  if (config) writeFileSync(join(home, "config.yaml"), config);
  const clock = new FakeClock();
  const approvers = options.approvers ?? [];
  const build = () => {
    const loaded = loadConfig({
      NIGHTSHIFT_HOME: home,
      HOME: userHome,
      PATH: process.env.PATH,
      LANG: "C.UTF-8",
      ANTHROPIC_BASE_URL: api.url,
      ANTHROPIC_API_KEY: SECRET_KEY,
      TELEGRAM_BOT_TOKEN: BOT_TOKEN,
    });
    return createRuntime({ loaded, clock, loadPrefix: () => readPrefix(home), approvers: () => approvers });
  };
  const harness: RuntimeHarness = {
    api,
    clock,
    root: dir.path,
    userHome,
    home,
    workdir,
    runtime: await build(),
    approvers,
    task: (overrides = {}) => ({ title: "Test task", prompt: "Do the thing.", workdir, model: "main", budget: { max_turns: 10, max_usd: 5, timeout_ms: 3_600_000 }, ...overrides }),
    events: (id) => readSessionLog(join(home, "sessions", `${id}.jsonl`)),
    async restart() {
      await harness.runtime.close();
      return (harness.runtime = await build());
    },
    async close() {
      await harness.runtime.close();
      await api.close();
      dir.cleanup();
    },
  };
  return harness;
}

function withSandboxMode(config: string, mode: string): string {
  return /^sandbox:\n/m.test(config) ? config.replace(/^sandbox:\n/m, `sandbox:\n  mode: ${mode}\n`) : `sandbox:\n  mode: ${mode}\n${config}`;
}

/** An approver that answers each request from a script, as a human would. */
export function scriptedApprover(answers: Array<{ decision: "once" | "task" | "deny"; reason?: string } | "ignore">, store: () => ApprovalStore): Approver & { seen: ApprovalRecord[] } {
  const seen: ApprovalRecord[] = [];
  return {
    name: "test",
    seen,
    notify(record) {
      seen.push(record);
      const answer = answers.shift();
      if (!answer || answer === "ignore") return;
      setImmediate(() => store().answer(record.id, { decision: answer.decision, by: "test", ...(answer.reason ? { reason: answer.reason } : {}) }));
    },
  };
}

/** The tool results the model received in request `index`, in order. */
export function resultsIn(api: MessagesApi, index: number): Array<{ content: string; is_error?: boolean }> {
  return api.requests[index]!.body.messages.at(-1).content.filter((block: { type: string }) => block.type === "tool_result");
}
