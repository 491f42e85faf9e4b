import { mkdirSync, rmSync } from "node:fs";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { http } from "../runtime/node-http.ts";
import { dirname } from "node:path";
import { z } from "zod";
import type { ApprovalStore, TaskSpec } from "../runtime/index.ts";
import type { Daemon } from "./daemon.ts";
import { PRIORITIES, taskSpecSchema } from "./state.ts";
import { controlSocketPath } from "./control-client.ts";
import type { ClusterView } from "./cluster-view.ts";
import type { SharedTask } from "../runtime/store/pg-cluster.ts";
import type { SessionEvent } from "../runtime/events.ts";

export { connectDaemon, controlSocketPath, type DaemonClient } from "./control-client.ts";

/**
 * The daemon's local door: HTTP on a Unix socket only this user can open. `nightshift run`,
 * `status` and `cancel` talk to it instead of touching the state file, which has one writer.
 */

const submitSchema = z.object({
  id: z.string().regex(/^[\w.-]+$/),
  spec: taskSpecSchema,
  priority: z.enum(PRIORITIES).optional(),
  /** Stream the task's events and its result as NDJSON until it finishes. */
  follow: z.boolean().optional(),
});

/** More things the daemon does on request (`POST /actions/<name>`): the memory consolidator, undo, the digest. Each returns text for the user. */
export type DaemonActions = Record<string, () => Promise<string>>;

/** Several machines on a shared store: what `nightshift status` shows of them, read from the store when asked. */
export interface SharedReads {
  view(recent: number): Promise<ClusterView>;
  get(id: string): Promise<SharedTask | undefined>;
  /** A task's session log as the store holds it (copied from the machine that runs it). */
  events(id: string): Promise<SessionEvent[]>;
}

export async function startControlServer(home: string, daemon: Daemon, approvals: ApprovalStore, actions: DaemonActions = {}, shared?: SharedReads): Promise<{ path: string; close(): Promise<void> }> {
  const path = controlSocketPath(home);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  rmSync(path, { force: true }); // left by a daemon that died; the daemon lock says no other is alive
  const server: Server = http.createServer((req, res) => {
    handle(req, res, daemon, approvals, actions, shared).catch((error: unknown) => reply(res, 500, { error: (error as Error).message }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ path, readableAll: false, writableAll: false }, () => resolve());
  });
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
        try {
          rmSync(path, { force: true });
        } catch {
          // a read-only home: the next start removes the socket file
        }
      }),
  };
}

const answerSchema = z.object({ decision: z.enum(["once", "task", "deny"]), reason: z.string().max(2000).optional(), by: z.string().max(100).default("cli") });

async function handle(req: IncomingMessage, res: ServerResponse, daemon: Daemon, approvals: ApprovalStore, actions: DaemonActions, shared: SharedReads | undefined): Promise<void> {
  const url = new URL(req.url ?? "/", "http://daemon");
  const parts = url.pathname.split("/").filter(Boolean);
  if (req.method === "POST" && parts[0] === "actions" && parts.length === 2) {
    const action = actions[parts[1]!];
    return action ? reply(res, 200, { text: await action() }) : reply(res, 404, { error: `no action ${parts[1]}` });
  }
  if (req.method === "GET" && url.pathname === "/health") return reply(res, 200, { pid: process.pid });
  if (req.method === "GET" && url.pathname === "/tasks") {
    const limit = Math.min(1000, Math.max(1, Number(url.searchParams.get("limit")) || 30));
    return reply(res, 200, { tasks: daemon.tasks.overview(limit), total: daemon.tasks.count() });
  }
  if (req.method === "GET" && parts[0] === "cluster") {
    if (!shared) return reply(res, 404, { error: "this daemon runs on its own (no shared store)" });
    if (parts.length === 1) return reply(res, 200, { view: await shared.view(Math.min(1000, Math.max(0, Number(url.searchParams.get("recent")) || 0))) });
    if (parts[1] === "tasks" && parts[2]) {
      const task = await shared.get(decodeURIComponent(parts[2]));
      return task ? reply(res, 200, { task, events: await shared.events(task.record.id) }) : reply(res, 404, { error: `no task ${parts[2]}` });
    }
  }
  if (req.method === "GET" && url.pathname === "/approvals") return reply(res, 200, { approvals: approvals.pending() });
  if (req.method === "POST" && parts[0] === "approvals" && parts[1]) {
    const parsed = answerSchema.safeParse(await readJson(req));
    if (!parsed.success) return reply(res, 400, { error: "bad answer: decision must be once, task or deny" });
    const { decision, reason, by } = parsed.data;
    return reply(res, 200, approvals.answer(parts[1], { decision, by, ...(reason ? { reason } : {}) }));
  }
  if (req.method === "GET" && parts[0] === "tasks" && parts[1]) {
    const task = daemon.tasks.find(decodeURIComponent(parts[1])); // an inbox file name may hold spaces
    return task ? reply(res, 200, { task }) : reply(res, 404, { error: `no task ${parts[1]}` });
  }
  if (req.method === "POST" && parts[0] === "tasks" && parts[1] && parts[2] === "cancel") {
    const outcome = await daemon.cancel(parts[1]);
    return reply(res, outcome === "unknown" ? 404 : 200, { outcome });
  }
  if (req.method === "POST" && parts[0] === "tasks" && parts[1] && parts[2] === "resume") {
    const id = decodeURIComponent(parts[1]);
    if (!/^[\w.-]+$/.test(id)) return reply(res, 400, { error: `bad task id ${parts[1]}` });
    // Subscribed before it is queued, so no event of the resumed run is missed.
    return streamTask(res, daemon, id, async () => {
      const resumed = await daemon.resume(id);
      if (resumed.outcome === "unknown") return { error: `no task or session ${id}; \`nightshift status\` lists the tasks` };
      if (resumed.outcome === "finished") return { result: resumed.result, task: daemon.get(id) };
      return { queued: daemon.get(id), already: resumed.outcome === "busy" };
    });
  }
  if (req.method === "POST" && url.pathname === "/tasks") {
    const parsed = submitSchema.safeParse(await readJson(req));
    if (!parsed.success) return reply(res, 400, { error: `bad request: ${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message}` });
    const { id, spec, priority, follow } = parsed.data;
    if (daemon.get(id)) return reply(res, 409, { error: `task ${id} exists` });
    if (!follow) return reply(res, 200, { task: await daemon.submit(id, spec as TaskSpec, { origin: "cli", ...(priority ? { priority } : {}) }) });
    return streamTask(res, daemon, id, async () => ({ queued: await daemon.submit(id, spec as TaskSpec, { origin: "cli", ...(priority ? { priority } : {}) }) }));
  }
  reply(res, 404, { error: `unknown request ${req.method} ${url.pathname}` });
}

/**
 * Streams a task's events and its result as NDJSON: subscribes, then `begin`s (submits or queues
 * it) and writes what that returned. A first line holding `result` or `error` ends the stream.
 */
async function streamTask(res: ServerResponse, daemon: Daemon, id: string, begin: () => Promise<Record<string, unknown>>): Promise<void> {
  res.writeHead(200, { "content-type": "application/x-ndjson" });
  let unsubscribe = () => {};
  const finished = new Promise<void>((resolve) => {
    unsubscribe = daemon.subscribe(id, (message) => {
      res.write(JSON.stringify(message.type === "event" ? { event: message.event } : { result: message.result, task: message.record }) + "\n");
      if (message.type === "finished") resolve();
    });
    res.on("close", resolve);
  });
  try {
    const first = await begin().catch((error: unknown) => ({ error: (error as Error).message }));
    res.write(JSON.stringify(first) + "\n");
    if (!("result" in first) && !("error" in first)) await finished;
  } finally {
    unsubscribe();
  }
  res.end();
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 1_000_000) throw new Error("request too large");
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    return undefined;
  }
}
