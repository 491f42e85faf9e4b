import type { Context } from "hono";
import { streamSSE, type SSEStreamingApi } from "hono/streaming";
import type { Clock, SessionEvent } from "../runtime/index.ts";
import type { TaskRecord } from "../tasks/index.ts";
import { indexTool, liveFragment, type LiveFragment, type ToolIndex } from "./task-page.ts";

/**
 * Live updates, one Server-Sent Events stream per tab (`GET /live`), made to survive tunnels.
 *
 * - A task's stream (`?task=ID&after=N`) sends each event of its session log after the first N as
 *   `event: log` with `id: <its 1-based place in the log>`. The log is the source, not memory: a
 *   reconnect (EventSource sends `Last-Event-ID`), even to a daemon restarted in between, resumes
 *   exactly after the last event the tab has, without gaps or doubles. `event: head` redraws the
 *   header (state, cost, the pinned approvals, the lanes) after each batch that changed it. When
 *   the task has ended, `event: gone` says so and the stream closes.
 * - The Now page's stream sends `event: changed`; the page fetches itself again.
 * - `event: ping` every 15 s: tunnels and proxies cut streams that stay silent. A session that
 *   ended (logout, `--logout-all`, expiry) ends its streams at the next ping or event (`gone`).
 *
 * Nothing polls: the stream wakes when the daemon emits an event, and then reads only the bytes the
 * log grew by. With no tab open there is no stream, no timer and no read.
 */

export const PING_MS = 15_000;
/** How long a browser waits before reconnecting (EventSource's `retry`). */
export const RETRY_MS = 2_000;

export interface LiveSources {
  clock: Clock;
  /** Calls back with a session id whenever the daemon emits (daemon.watch); returns the unsubscribe. */
  watch(listener: (session: string) => void): () => void;
  /** The complete events after byte `offset` of a task's session log, and the offset after them. */
  readLogFrom(id: string, offset: number): Promise<{ events: SessionEvent[]; offset: number }>;
  /** The header as the Task page draws it, for the task's state now. */
  head(task: TaskRecord, events: SessionEvent[]): Promise<string>;
  /** A task here, or (several machines) another machine's. */
  find(id: string): TaskRecord | undefined | Promise<TaskRecord | undefined>;
  /** Whether the stream's session still holds: a logout, `--logout-all` or expiry ends its streams too. */
  signedIn(): boolean;
  /** A stream that could not read or draw something says it here (the trace), and goes on. */
  problem(message: string): void;
}

/** The place to resume after: Last-Event-ID on a reconnect, else what the page was drawn with. */
export function resumePoint(c: Context): number {
  const given = c.req.header("last-event-id") ?? c.req.query("after") ?? "0";
  const n = Number(given);
  return Number.isInteger(n) && n >= 0 ? n : 0;
}

/** Task ids as the daemon makes them and as a file name can hold them: nothing else is followed. */
const TASK_ID = /^[\w-][\w.-]*$/;
const FINAL = new Set<TaskRecord["state"]>(["done", "failed", "cancelled"]);

export function liveStream(c: Context, sources: LiveSources) {
  const asked = c.req.query("task");
  return streamSSE(c, async (stream) => {
    // Registered first: a tab closed while the log is still being read must still clean up.
    // `end` closes from our side, after what was written has gone out (an abort would drop it).
    let ended!: () => void;
    const closed = new Promise<void>((resolve) => {
      ended = resolve;
      stream.onAbort(resolve);
    });
    const end = () => void stream.close().then(ended);
    const task = asked === undefined ? undefined : await sources.find(asked);
    if (asked !== undefined && (!task || !TASK_ID.test(task.id))) {
      await stream.writeSSE({ event: "gone", data: "No such task." });
      return;
    }
    const taskId = task?.id;
    // Watching starts before the first read, so an event emitted meanwhile is not missed.
    let wake: (() => void) | undefined;
    let early = false;
    const unwatch = sources.watch((session) => {
      if (taskId !== undefined && session !== taskId && !session.startsWith(`${taskId}.`)) return;
      if (wake) wake();
      else early = true;
    });
    let cancelPing = () => {};
    try {
      wake = taskId === undefined ? nowFollower(stream, sources, end) : await taskFollower(stream, sources, taskId, resumePoint(c), end);
      if (stream.aborted || stream.closed) return;
      if (early) wake();
      const ping = () => {
        cancelPing = sources.clock.setTimer(() => {
          if (!sources.signedIn()) return void stream.writeSSE({ event: "gone", data: "Signed out." }).then(end);
          void stream.writeSSE({ event: "ping", data: "" });
          ping();
        }, PING_MS);
      };
      ping();
      await closed;
    } finally {
      unwatch();
      cancelPing();
    }
  });
}

/** The Now page: one `changed` per burst of events (they arrive many per turn). */
function nowFollower(stream: SSEStreamingApi, sources: LiveSources, end: () => void): () => void {
  void stream.writeSSE({ event: "ready", data: "", retry: RETRY_MS });
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    setImmediate(() => {
      queued = false;
      if (!sources.signedIn()) return void stream.writeSSE({ event: "gone", data: "Signed out." }).then(end);
      void stream.writeSSE({ event: "changed", data: "" });
    });
  };
}

/**
 * A task's stream. Events the tab already has (before `after`) only feed the tool index, so a
 * later event of the same call redraws it whole; they are not drawn again. Once the task has
 * ended and its last events are sent, the stream says so (`gone`) and closes: nothing more comes.
 */
async function taskFollower(stream: SSEStreamingApi, sources: LiveSources, taskId: string, after: number, end: () => void): Promise<() => void> {
  const events: SessionEvent[] = [];
  const tools: ToolIndex = new Map();
  let offset = 0;
  let head = "";
  let draining: Promise<void> | undefined;
  let again = false;

  const drain = async () => {
    if (!sources.signedIn()) {
      await stream.writeSSE({ event: "gone", data: "Signed out." });
      return end();
    }
    const read = await sources.readLogFrom(taskId, offset).catch((error: unknown) => {
      // A log not written yet is normal (a queued task); a damaged one is said, and the stream waits.
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") sources.problem(`live stream of task ${taskId}: ${(error as Error).message}`);
      return { events: [] as SessionEvent[], offset };
    });
    offset = read.offset;
    for (const event of read.events) {
      events.push(event);
      const index = events.length - 1;
      if (index < after) {
        indexTool(tools, event);
        continue;
      }
      let fragment: LiveFragment | undefined;
      try {
        fragment = liveFragment(taskId, events, tools, index);
      } catch (error) {
        // One event that cannot be drawn must not stop the stream: its id still advances.
        sources.problem(`live stream of task ${taskId}: event ${index + 1} could not be drawn: ${(error as Error).message}`);
      }
      await stream.writeSSE({ event: "log", id: String(index + 1), data: JSON.stringify(fragment ?? {}) });
    }
    const task = await sources.find(taskId);
    const next = task ? await sources.head(task, events) : "";
    if (next !== head) {
      // Sent on connecting too: the task may have moved on since the page was drawn.
      await stream.writeSSE({ event: "head", data: JSON.stringify({ html: next }) });
      head = next;
    }
    if (!task || FINAL.has(task.state)) {
      await stream.writeSSE({ event: "gone", data: "The task has ended." });
      end();
    }
  };
  const wake = () => {
    if (draining) {
      again = true;
      return;
    }
    draining = drain()
      .catch((error: unknown) => sources.problem(`live stream of task ${taskId}: ${(error as Error).message}`))
      .finally(() => {
        draining = undefined;
        if (again && !stream.aborted && !stream.closed) {
          again = false;
          wake();
        }
      });
  };
  await stream.writeSSE({ event: "ready", data: "", retry: RETRY_MS });
  wake();
  await draining;
  return wake;
}
