import type { Context } from "hono";
import { streamSSE, type SSEStreamingApi } from "hono/streaming";
import type { Clock, SessionEvent } from "../runtime/index.ts";
import type { TaskRecord } from "../tasks/index.ts";
import { liveFragment, type ToolIndex } from "./task-page.ts";

/**
 * Live updates, one Server-Sent Events stream per tab (`GET /live`), made to survive tunnels.
 *
 * - A task's stream (`?task=ID&after=N`) sends each event of its session log after the first N as
 *   `event: log` with `id: <its 1-based place in the log>`. The log is the source, not memory: a
 *   reconnect (EventSource sends `Last-Event-ID`), even to a daemon restarted in between, resumes
 *   exactly after the last event the tab has, without gaps or doubles. `event: head` redraws the
 *   header (state, cost, the pinned approvals) when it changed.
 * - The Now page's stream sends `event: changed`; the page fetches itself again.
 * - `event: ping` every 15 s: tunnels and proxies cut streams that stay silent.
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
  find(id: string): TaskRecord | undefined;
}

/** The place to resume after: Last-Event-ID on a reconnect, else what the page was drawn with. */
export function resumePoint(c: Context): number {
  const given = c.req.header("last-event-id") ?? c.req.query("after") ?? "0";
  const n = Number(given);
  return Number.isInteger(n) && n >= 0 ? n : 0;
}

export function liveStream(c: Context, sources: LiveSources) {
  const taskId = c.req.query("task");
  return streamSSE(c, async (stream) => {
    // Watching starts before the first read, so an event emitted meanwhile is not missed.
    let wake: (() => void) | undefined;
    let early = false;
    const unwatch = sources.watch((session) => {
      if (taskId !== undefined && session !== taskId && !session.startsWith(`${taskId}.`)) return;
      if (wake) wake();
      else early = true;
    });
    wake = taskId === undefined ? nowFollower(stream) : await taskFollower(stream, sources, taskId, resumePoint(c));
    if (!wake) return unwatch();
    if (early) wake();
    let cancelPing = () => {};
    const ping = () => {
      cancelPing = sources.clock.setTimer(() => {
        void stream.writeSSE({ event: "ping", data: "" });
        ping();
      }, PING_MS);
    };
    ping();
    await new Promise<void>((resolve) => stream.onAbort(resolve));
    unwatch();
    cancelPing();
  });
}

/** The Now page: one `changed` per burst of events (they arrive many per turn). */
function nowFollower(stream: SSEStreamingApi): () => void {
  void stream.writeSSE({ event: "ready", data: "", retry: RETRY_MS });
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    setImmediate(() => {
      queued = false;
      void stream.writeSSE({ event: "changed", data: "" });
    });
  };
}

async function taskFollower(stream: SSEStreamingApi, sources: LiveSources, taskId: string, after: number): Promise<(() => void) | undefined> {
  if (!sources.find(taskId)) {
    await stream.writeSSE({ event: "gone", data: "No such task." });
    return undefined;
  }
  const events: SessionEvent[] = [];
  const tools: ToolIndex = new Map();
  let offset = 0;
  let head = "";
  let draining: Promise<void> | undefined;
  let again = false;

  const drain = async () => {
    const read = await sources.readLogFrom(taskId, offset).catch(() => ({ events: [] as SessionEvent[], offset }));
    offset = read.offset;
    for (const event of read.events) {
      events.push(event);
      const index = events.length - 1;
      // Events the tab already has still go through the index, so later tool events redraw fully.
      const fragment = liveFragment(taskId, events, tools, index);
      if (index < after) continue;
      await stream.writeSSE({ event: "log", id: String(index + 1), data: JSON.stringify(fragment ?? {}) });
    }
    const task = sources.find(taskId);
    const next = task ? await sources.head(task, events) : "";
    if (next !== head) {
      // Sent once on connecting too: the task may have moved on since the page was drawn.
      await stream.writeSSE({ event: "head", data: JSON.stringify({ html: next }) });
      head = next;
    }
  };
  const wake = () => {
    if (draining) {
      again = true;
      return;
    }
    draining = drain().finally(() => {
      draining = undefined;
      if (again) {
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
