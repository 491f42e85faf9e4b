import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { ResolvedRole } from "../../runtime/config.ts";
import { configSchema } from "../../runtime/config.ts";
import type { SessionEvent, TaskSpec } from "../../runtime/events.ts";
import type { SessionDeps } from "../../runtime/loop.ts";
import { createModelClient } from "../../runtime/model.ts";
import { createBwrapSandbox } from "../../runtime/sandbox/index.ts";
import { openSessionLog, readSessionLog, type SessionLog } from "../../runtime/session-log.ts";
import { createTools } from "../../runtime/runtime.ts";
import type { Tool } from "../../runtime/tools/index.ts";
import { DEFAULT_IDENTITY } from "../../memory/identity.ts";
import { FakeClock } from "./fake-clock.ts";
import { tempDir } from "./home.ts";
import { startMessagesApi, type MessagesApi } from "./messages-api.ts";

export const SECRET_KEY = "sk-ant-test-0123456789abcdef";
export const BOT_TOKEN = "123456789:AAE-abcdefghijklmnopqrstuvwxyz012345";

export interface Harness {
  api: MessagesApi;
  clock: FakeClock;
  root: string;
  workdir: string;
  logPath: string;
  deps: SessionDeps;
  task: TaskSpec;
  prefix: { identity: string; memory: string; reads: number };
  events(): Promise<SessionEvent[]>;
  /** A fresh log handle and deps for the same session (as after a restart). */
  reopen(): Promise<SessionDeps>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  tools?: Tool[];
  budget?: Partial<TaskSpec["budget"]>;
  retries?: number;
  serverCompaction?: boolean;
  /** The endpoint expands tool references (as Anthropic's API does). */
  toolReferences?: boolean;
  contextWindow?: number;
  /** The configured model request timeout (model_retries.request_timeout); 30 s unless given. */
  requestTimeoutMs?: number;
}

function role(name: "main" | "small", model: string, url: string, serverCompaction: boolean, toolReferences = false): ResolvedRole {
  return {
    role: name,
    model,
    base_url: url,
    baseURL: url,
    api_key_env: "ANTHROPIC_API_KEY",
    apiKeyEnv: "ANTHROPIC_API_KEY",
    apiKey: SECRET_KEY,
    context_window: 200_000,
    max_tokens: 1024,
    server_compaction: serverCompaction ? "on" : "off",
    tool_references: toolReferences ? "on" : "off",
  };
}

/** The real loop, real SDK against the local stand-in, real tools and bwrap, a fake clock. */
export async function createHarness(options: HarnessOptions = {}): Promise<Harness> {
  const api = await startMessagesApi();
  const dir = tempDir();
  const workdir = join(dir.path, "work");
  mkdirSync(workdir);
  const clock = new FakeClock();
  const retry = { attempts: options.retries ?? 3, initial_delay: 1000, max_delay: 60_000, request_timeout: options.requestTimeoutMs ?? 30_000 };
  const clientOptions = { clock, retry };
  const model = createModelClient(role("main", "claude-sonnet-5-5", api.url, options.serverCompaction ?? false, options.toolReferences), SECRET_KEY, clientOptions);
  const small = createModelClient(role("small", "claude-haiku-5-5", api.url, false), SECRET_KEY, clientOptions);
  const sandbox = createBwrapSandbox({
    env: { PATH: process.env.PATH, HOME: dir.path, LANG: "C.UTF-8", ANTHROPIC_API_KEY: SECRET_KEY, TELEGRAM_BOT_TOKEN: BOT_TOKEN, MY_SERVICE_TOKEN: "hunter2" },
  });
  const tools = options.tools ?? createTools(sandbox, { timeoutMs: 30_000, maxOutputBytes: 10_000 }, { allowPrivateAddresses: true });
  const prefix = { identity: DEFAULT_IDENTITY, memory: "", reads: 0 };
  const logPath = join(dir.path, "sessions", "s1.jsonl");
  const logs: SessionLog[] = [];
  const makeDeps = async (): Promise<SessionDeps> => {
    const log = await openSessionLog(logPath, "s1", { now: clock.now });
    logs.push(log);
    return {
      log,
      model,
      small,
      tools,
      clock,
      loadPrefix: async () => {
        prefix.reads++;
        return { identity: prefix.identity, memory: prefix.memory };
      },
      prices: configSchema.parse({}).prices,
      compaction: { threshold: 0.7, contextWindow: options.contextWindow ?? 200_000, keepRecentTurns: 2 },
    };
  };
  const deps = await makeDeps();
  const task: TaskSpec = {
    title: "Test task",
    prompt: "Do the thing.",
    workdir,
    model: "main",
    budget: { max_turns: 10, max_usd: 5, timeout_ms: 3_600_000, ...options.budget },
  };
  return {
    api,
    clock,
    root: dir.path,
    workdir,
    logPath,
    deps,
    task,
    prefix,
    events: () => readSessionLog(logPath),
    reopen: makeDeps,
    async close() {
      await Promise.all(logs.map((log) => log.close().catch(() => {})));
      await api.close();
      dir.cleanup();
    },
  };
}

/** Types of the events, in order: a compact way to assert a session's shape. */
export function types(events: SessionEvent[]): string[] {
  return events.map((event) => event.type);
}
