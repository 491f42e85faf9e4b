import type { StagedSources } from "../../dashboard/changes-page.ts";
import assert from "node:assert/strict";
import { afterEach } from "node:test";
import { join } from "node:path";
import type { Check } from "../../cli/doctor.ts";
import { createDashboard } from "../../dashboard/app.ts";
import { createAuthStore } from "../../dashboard/auth-store.ts";
import { specialistLogs } from "../../dashboard/lanes.ts";
import { chargeReader } from "../../dashboard/spend.ts";
import { openMemory, type Memory } from "../../memory/index.ts";
import { undoText } from "../../bot/reports.ts";
import { createApprovalStore, readSessionLog, readSessionLogFrom, type ApprovalStore, type SessionEvent } from "../../runtime/index.ts";
import { createTraceLogger } from "../../runtime/trace.ts";
import type { TaskReader, TaskRecord } from "../../tasks/index.ts";
import { matches } from "../../tasks/task-reader.ts";
import { FakeClock } from "./fake-clock.ts";
import { tempDir } from "./home.ts";

/**
 * The dashboard app over a temporary home: real auth and approval stores on the fake clock, the
 * tasks a test gives (the TaskReader questions the Now page asks, answered from a list), and
 * helpers that send requests as the page's own forms and scripts would.
 */

export const PORT = 7420;
export const ORIGIN = `http://127.0.0.1:${PORT}`;

export interface Setup {
  home: string;
  clock: FakeClock;
  app: ReturnType<typeof createDashboard>;
  approvals: ApprovalStore;
  /** The real memory over the temp home (MEMORY.md, memory-history/, journal/), as the daemon opens it. */
  memory: Memory;
  traceFile: string;
  /** A login link as `nightshift dashboard` makes it (another store over the same folder, as another process would). */
  link(): string;
  /** Tells live streams that `session` emitted, as the daemon's `watch` does. */
  emit(session: string): void;
  /** How many live streams are watching now. */
  watching(): number;
  /** Task ids the page asked to cancel. */
  cancelled: string[];
  cleanup(): void;
}

export interface SetupOptions {
  publicUrl?: string;
  tasks?: TaskRecord[];
  /** Answers the Tasks page's `list` and the Task page's `find` instead of the list (a real database). */
  reader?: Pick<TaskReader, "list" | "find">;
  /** Session logs by task id. */
  events?: Record<string, SessionEvent[]>;
  spentToday?: number;
  dailyUsd?: number;
  /** `memory.cap` in bytes (default 4096). */
  memoryCap?: number;
  /** The Health page's checks (default: none). */
  checks?: () => Promise<Check[]>;
  /** `dashboard.port` (default 7420): the Host the app answers to, for a bench that serves it for real. */
  port?: number;
  /** Staged tasks' copies (the daemon reads them from state/stages/). */
  staged?: StagedSources;
}

export function setupDashboard(options: SetupOptions = {}): Setup {
  const dir = tempDir("nightshift-dashboard-");
  const home = dir.path;
  const clock = new FakeClock();
  const traceFile = join(home, "logs", "trace.jsonl");
  const trace = createTraceLogger(traceFile, "info");
  const stateDir = join(home, "state", "dashboard");
  const approvals = createApprovalStore(join(home, "state", "approvals"), { clock, expireMs: 30 * 60_000 });
  const tasks = options.tasks ?? [];
  const memoryCap = options.memoryCap ?? 4096;
  const memory = openMemory(home, clock, memoryCap);
  const watchers = new Set<(session: string) => void>();
  const cancelled: string[] = [];
  const app = createDashboard({
    dir: stateDir,
    clock,
    trace,
    port: options.port ?? PORT,
    ...(options.publicUrl ? { publicUrl: options.publicUrl } : {}),
    tasks: {
      get: (id) => tasks.find((task) => task.id === id),
      active: () => tasks.filter((task) => ["queued", "running", "waiting_approval"].includes(task.state)),
      finishedSince: (at, state) => tasks.filter((task) => task.finished !== undefined && task.finished >= at && (!state || task.state === state)).sort((a, b) => b.finished! - a.finished!),
      find: options.reader?.find ?? ((id) => tasks.find((task) => task.id === id)),
      list: options.reader?.list ?? ((filter, limit) => [...tasks].sort((a, b) => b.created - a.created).filter((task) => matches(task, filter)).slice(0, limit)),
    },
    approvals,
    // A test's events, else a real log under home/sessions (what live tests write, as a session does).
    readEvents: async (id) => options.events?.[id] ?? readSessionLog(join(home, "sessions", `${id}.jsonl`)),
    readLogFrom: (id, offset) => readSessionLogFrom(join(home, "sessions", `${id}.jsonl`), offset),
    watch: (listener) => (watchers.add(listener), () => watchers.delete(listener)),
    cancel: async (id) => {
      cancelled.push(id);
      const task = tasks.find((entry) => entry.id === id);
      return !task ? "unknown" : ["done", "failed", "cancelled"].includes(task.state) ? "finished" : "cancelling";
    },
    // Specialists' logs are files a test writes under home/sessions/<task>/, read as the daemon reads them.
    readSpecialists: (id) => specialistLogs(join(home, "sessions"), id),
    spentToday: async () => options.spentToday ?? 0,
    dailyUsd: options.dailyUsd ?? 10,
    // The memory service's undo is the store's undo told as text (cli/memory-service.ts).
    memory: { store: memory.store, journal: memory.journal, capBytes: memoryCap, undo: () => undoText(memory.store.undo()) },
    // The Cost page reads the session logs a test writes under home/sessions, as the daemon does.
    charges: chargeReader(join(home, "sessions")),
    checks: options.checks ?? (async () => []),
    ...(options.staged ? { staged: options.staged } : {}),
  });
  return {
    home,
    clock,
    app,
    approvals,
    memory,
    traceFile,
    link: () => createAuthStore(stateDir, clock).createLink().secret,
    emit: (session) => watchers.forEach((watcher) => watcher(session)),
    watching: () => watchers.size,
    cancelled,
    cleanup: () => (trace.close(), dir.cleanup()),
  };
}

export interface Send {
  method?: string;
  origin?: string;
  host?: string;
  cookie?: string;
  headers?: Record<string, string>;
  body?: string;
  type?: string;
}

export function send(s: Setup, path: string, options: Send = {}): Promise<Response> {
  const method = options.method ?? "GET";
  const headers: Record<string, string> = { host: options.host ?? `127.0.0.1:${PORT}`, ...options.headers };
  if (options.cookie) headers.cookie = `ns_session=${options.cookie}`;
  if (method !== "GET" && method !== "HEAD") {
    headers.origin = options.origin ?? ORIGIN;
    if (options.type) headers["content-type"] = options.type;
  }
  return Promise.resolve(s.app.request(`${options.host?.startsWith("ns.") ? "https" : "http"}://${options.host ?? `127.0.0.1:${PORT}`}${path}`, { method, headers, ...(options.body !== undefined ? { body: options.body } : {}) }));
}

export const spend = (s: Setup, secret: string, options: Send = {}) => send(s, "/login", { method: "POST", type: "application/json", body: JSON.stringify({ secret }), ...options });

/** Logs in with a fresh link; returns the session cookie's value and its Set-Cookie header. */
export async function login(s: Setup, options: Send = {}): Promise<{ session: string; setCookie: string }> {
  const response = await spend(s, s.link(), options);
  assert.equal(response.status, 200, await response.clone().text());
  const setCookie = response.headers.get("set-cookie") ?? "";
  const session = /ns_session=([^;]+)/.exec(setCookie)?.[1];
  assert.ok(session, setCookie);
  return { session, setCookie };
}

/** The CSRF token the signed-in page carries in its forms. */
export async function tokenOf(s: Setup, session: string): Promise<string> {
  const page = await (await send(s, "/", { cookie: session })).text();
  const token = /name="_csrf" value="([^"]+)"/.exec(page)?.[1];
  assert.ok(token, page);
  return token;
}

/**
 * For a test file: a function that sets up a dashboard and signs in, each test's setup cleaned up
 * after it. Call once at the top level of the file.
 */
export function signedInDashboards(): (options?: SetupOptions) => Promise<{ s: Setup; session: string }> {
  let current: Setup | undefined;
  afterEach(() => {
    current?.cleanup();
    current = undefined;
  });
  return async (options = {}) => {
    const s = (current = setupDashboard(options));
    return { s, session: (await login(s)).session };
  };
}

/** A task record as the daemon keeps it, done unless `fields` say otherwise; created an hour before the fake clock's start. */
export function taskRecord(id: string, fields: Partial<TaskRecord> = {}): TaskRecord {
  const start = new FakeClock().now();
  return {
    id,
    title: `Task ${id}`,
    origin: "telegram",
    priority: "normal",
    state: "done",
    spec: { title: `Task ${id}`, prompt: "Do it.", workdir: "/tmp/work", model: "main", budget: { max_turns: 10, max_usd: 5, timeout_ms: 3_600_000 } },
    created: start - 3_600_000,
    attempts: 1,
    crashes: 0,
    turns: 0,
    cost_usd: 0,
    ...fields,
  };
}

/**
 * Reads a Server-Sent Events response as the browser's EventSource parses it: `next(n)` resolves
 * with the next n events (name, id, data), `close()` cancels the stream as a closed tab does.
 */
export function sseReader(response: Response) {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const parse = (block: string) => {
    const event: { event: string; id?: string; data: string; retry?: string } = { event: "message", data: "" };
    const data: string[] = [];
    for (const line of block.split("\n")) {
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event.event = value;
      else if (field === "data") data.push(value);
      else if (field === "id") event.id = value;
      else if (field === "retry") event.retry = value;
    }
    event.data = data.join("\n");
    return event;
  };
  return {
    async next(count = 1) {
      const events: Array<ReturnType<typeof parse>> = [];
      while (events.length < count) {
        const end = buffer.indexOf("\n\n");
        if (end >= 0) {
          events.push(parse(buffer.slice(0, end)));
          buffer = buffer.slice(end + 2);
          continue;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended after ${events.length} of ${count} events`);
        buffer += decoder.decode(value, { stream: true });
      }
      return events;
    },
    /** What arrived but was not read yet (to check that nothing more was sent). */
    pending: () => buffer,
    close: () => reader.cancel(),
  };
}
