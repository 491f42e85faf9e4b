/**
 * Loaded into the daemon by bench/daemon-memory.ts (`node --import`), never by the product: twice a
 * second it writes where the daemon's memory is (process.memoryUsage() and V8's heap spaces) to
 * NIGHTSHIFT_BENCH_HEAP_FILE, so each checkpoint can say which part of RSS grew. One small JSON
 * object overwritten in place; the timer is unref'd so it never keeps the daemon alive.
 */
import { writeFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { getHeapSpaceStatistics } from "node:v8";

export interface HeapReading {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  /** Committed bytes of V8's young generation (new space and its large objects). */
  young: number;
  /** The event loop's longest stall and its 99th percentile since the daemon started, in ms (a full GC blocks it). */
  stallMaxMs: number;
  stallP99Ms: number;
}

const file = process.env.NIGHTSHIFT_BENCH_HEAP_FILE;
// Only the daemon itself: anything it might start with the same flags writes nothing.
if (file && process.argv[2] === "start") {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  setInterval(() => {
    const usage = process.memoryUsage();
    const young = getHeapSpaceStatistics()
      .filter((space) => space.space_name === "new_space" || space.space_name === "new_large_object_space")
      .reduce((sum, space) => sum + space.space_size, 0);
    const reading: HeapReading = { rss: usage.rss, heapTotal: usage.heapTotal, heapUsed: usage.heapUsed, external: usage.external, young, stallMaxMs: delay.max / 1e6, stallP99Ms: delay.percentile(99) / 1e6 };
    writeFileSync(file, JSON.stringify(reading));
  }, 500).unref();
}
