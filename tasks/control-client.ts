import { existsSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AnswerResult, ApprovalRecord } from "../runtime/approvals.ts";
import type { SessionEvent } from "../runtime/events.ts";
import type { SessionResult, TaskSpec } from "../runtime/index.ts";
import type { SharedTask } from "../runtime/store/pg-cluster.ts";
import type { ClusterView } from "./cluster-view.ts";
import type { TaskRecord } from "./state.ts";

/**
 * The CLI's side of the daemon's control socket (tasks/control.ts serves it). It loads nothing but
 * Node's own modules, so `nightshift status`, `cancel`, `approve` and `deny` start fast; the daemon
 * is the same program, so its answers are trusted as they come.
 */

/** state/daemon.sock, or a short path under the temp folder when NIGHTSHIFT_HOME is too deep for a socket name. */
export function controlSocketPath(home: string): string {
  const preferred = join(home, "state", "daemon.sock");
  if (Buffer.byteLength(preferred) < 100) return preferred;
  const digest = createHash("sha256").update(home).digest("hex").slice(0, 12);
  return join(tmpdir(), `nightshift-${process.getuid?.() ?? "user"}`, `daemon-${digest}.sock`);
}

/** The CLI's side. `undefined` from `connect` means no daemon is running. */
export interface DaemonClient {
  /** The active tasks and the newest `limit` (default 30), newest first, and how many there are in all. */
  list(limit?: number): Promise<{ tasks: TaskRecord[]; total: number }>;
  /** Several machines on a shared store: every machine and its tasks (and the newest `recent`); undefined for a daemon on its own. Throws when the store does not answer. */
  cluster(recent: number): Promise<ClusterView | undefined>;
  /** Several machines: a task of any machine, from the shared store. */
  /** Several machines: another machine's task, with its session log as the store holds it. */
  sharedTask(id: string): Promise<(SharedTask & { events: SessionEvent[] }) | undefined>;
  pendingApprovals(): Promise<ApprovalRecord[]>;
  answer(id: string, decision: "once" | "task" | "deny", reason?: string): Promise<AnswerResult>;
  /** By id, or an inbox task by its file name. */
  get(id: string): Promise<TaskRecord | undefined>;
  cancel(id: string): Promise<string>;
  /** Runs one of the daemon's actions (`consolidate`, `undo`, `digest`) and returns its text. */
  action(name: string): Promise<string>;
  /** Submits and follows: calls `onEvent` for each event, resolves with the result. */
  run(id: string, spec: TaskSpec, onEvent: (event: SessionEvent) => void, signal?: AbortSignal): Promise<{ result: SessionResult; task: TaskRecord }>;
  /**
   * Has the daemon resume a task or session from its log (a failed one is tried again) and follows
   * it; one that ended done or cancelled gives its result at once. `onQueued(already)`: queued now,
   * or it was queued or running already. Rejects with the daemon's reason when it cannot.
   */
  resume(id: string, onEvent: (event: SessionEvent) => void, signal?: AbortSignal, onQueued?: (already: boolean) => void): Promise<{ result: SessionResult; task: TaskRecord }>;
}

export async function connectDaemon(home: string): Promise<DaemonClient | undefined> {
  const socketPath = controlSocketPath(home);
  if (!existsSync(socketPath)) return undefined;
  const { http } = await import("../runtime/node-http.ts"); // only when a daemon may be there: most of a CLI command's start-up otherwise
  const call = (method: string, path: string, body?: unknown) =>
    new Promise<{ status: number; json: any }>((resolve, reject) => {
      const req = http.request({ socketPath, method, path, headers: { "content-type": "application/json" } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") }));
      });
      req.on("error", reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  /** Follows a task the daemon streams as NDJSON (tasks/control.ts `streamTask`) to its result. */
  const stream = (path: string, body: unknown, onEvent: (event: SessionEvent) => void, signal?: AbortSignal, onQueued?: (already: boolean) => void) =>
    new Promise<{ result: SessionResult; task: TaskRecord }>((resolve, reject) => {
      const req = http.request({ socketPath, method: "POST", path, headers: { "content-type": "application/json" }, ...(signal ? { signal } : {}) }, (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => reject(new Error(JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}").error ?? `daemon answered ${res.statusCode}`)));
          return;
        }
        let buffer = "";
        let finished: { result: SessionResult; task: TaskRecord } | undefined;
        let refused: string | undefined;
        res.on("data", (chunk: Buffer) => {
          buffer += chunk.toString("utf8");
          let newline;
          while ((newline = buffer.indexOf("\n")) >= 0) {
            const line = JSON.parse(buffer.slice(0, newline));
            buffer = buffer.slice(newline + 1);
            if (line.event) onEvent(line.event);
            if (line.queued) onQueued?.(line.already === true);
            if (line.result) finished = { result: line.result, task: line.task };
            if (line.error) refused = line.error;
          }
        });
        const settle = () => {
          if (refused !== undefined) reject(new Error(refused));
          else if (finished) resolve(finished);
          else reject(new Error("the daemon stopped before the task finished; it resumes when the daemon starts again"));
        };
        res.on("end", settle);
        res.on("close", settle); // a socket closed without an end (the daemon died) still settles
        res.on("error", settle);
      });
      req.on("error", reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  try {
    await call("GET", "/health");
  } catch {
    return undefined; // a socket file left behind by a daemon that is gone
  }
  return {
    list: async (limit = 30) => {
      const { json } = await call("GET", `/tasks?limit=${limit}`);
      return { tasks: json.tasks ?? [], total: json.total ?? 0 };
    },
    cluster: async (recent) => {
      const { status, json } = await call("GET", `/cluster?recent=${recent}`);
      if (status === 404) return undefined;
      if (status !== 200) throw new Error(json.error ?? `the daemon answered ${status}`);
      return json.view as ClusterView;
    },
    sharedTask: async (id) => {
      const { status, json } = await call("GET", `/cluster/tasks/${encodeURIComponent(id)}`);
      return status === 200 ? { ...(json.task as SharedTask), events: (json.events ?? []) as SessionEvent[] } : undefined;
    },
    pendingApprovals: async () => (await call("GET", "/approvals")).json.approvals,
    answer: async (id, decision, reason) => (await call("POST", `/approvals/${encodeURIComponent(id)}`, { decision, ...(reason ? { reason } : {}) })).json,
    get: async (id) => (await call("GET", `/tasks/${encodeURIComponent(id)}`)).json.task,
    action: async (name) => {
      const { status, json } = await call("POST", `/actions/${encodeURIComponent(name)}`);
      if (status !== 200) throw new Error(json.error ?? `the daemon answered ${status}`);
      return json.text as string;
    },
    cancel: async (id) => {
      const { status, json } = await call("POST", `/tasks/${encodeURIComponent(id)}/cancel`);
      return status === 404 ? "unknown" : json.outcome;
    },
    run: (id, spec, onEvent, signal) => stream("/tasks", { id, spec, follow: true }, onEvent, signal),
    resume: (id, onEvent, signal, onQueued) => stream(`/tasks/${encodeURIComponent(id)}/resume`, undefined, onEvent, signal, onQueued),
  };
}
