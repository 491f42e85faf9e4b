import { Session } from "node:inspector";
import type { Clock } from "./clock.ts";

/**
 * Gives back the memory V8 sized for a burst of work. Under sustained load V8 doubles its young
 * generation and lets garbage pile up in the old one between full collections: a daemon that ran
 * 1,500 tasks back to back held 1.75× the RSS it had after 100, while what was live stayed near
 * 30 MB (bench/README.md, "Daemon memory"). A full collection at most once per `intervalMs` while
 * work goes on keeps it where it started (1.00×); each blocks the event loop some 40-60 ms for a
 * heap of that size, under 1% of a busy daemon's time. Nothing runs while the daemon is idle:
 * V8's own memory reducer shrinks an idle heap.
 */
export interface HeapTrim {
  /** Work happened (a session event, a task's end): collects if the last collection is `intervalMs` old. */
  worked(): void;
}

export const HEAP_TRIM_INTERVAL_MS = 10_000;

export function createHeapTrim(options: { clock: Clock; collect?: () => void; intervalMs?: number }): HeapTrim {
  const { clock } = options;
  const interval = options.intervalMs ?? HEAP_TRIM_INTERVAL_MS;
  let collect = options.collect ?? inspectorCollect();
  let last = clock.now();
  return {
    worked() {
      const now = clock.now();
      if (now - last < interval) return;
      last = now;
      try {
        collect();
      } catch {
        // A Node built without the inspector: V8's own sizing stands.
        collect = () => {};
      }
    },
  };
}

/**
 * A full GC through an in-process inspector session (`HeapProfiler.collectGarbage`), the documented
 * way to ask for one without starting Node with `--expose-gc`. No domain is enabled, so the session
 * costs nothing between calls; it is opened on first use.
 */
function inspectorCollect(): () => void {
  let session: Session | undefined;
  return () => {
    if (!session) {
      session = new Session();
      session.connect();
    }
    session.post("HeapProfiler.collectGarbage");
  };
}
