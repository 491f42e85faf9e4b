import assert from "node:assert/strict";
import { test } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import { createHeapTrim } from "../runtime/heap-trim.ts";
import { FakeClock } from "./support/fake-clock.ts";

test("the heap trim collects at most once per interval, and only when work happened", () => {
  const clock = new FakeClock();
  let collections = 0;
  const trim = createHeapTrim({ clock, intervalMs: 10_000, collect: () => collections++ });
  trim.worked();
  assert.equal(collections, 0, "not before an interval has passed since the start");
  clock.advance(9_999);
  trim.worked();
  assert.equal(collections, 0);
  clock.advance(1);
  trim.worked();
  trim.worked();
  assert.equal(collections, 1, "once for a burst of work");
  clock.advance(60_000);
  assert.equal(collections, 1, "nothing while idle: no timer runs it");
  trim.worked();
  assert.equal(collections, 2);
});

test("the heap trim's collection frees what nothing holds (a real full GC through the inspector)", async () => {
  const clock = new FakeClock();
  const trim = createHeapTrim({ clock, intervalMs: 1 });
  let ref: WeakRef<object> | undefined;
  (() => {
    ref = new WeakRef({ payload: "x".repeat(1_000) + Math.random() });
  })();
  // A WeakRef keeps its target for the rest of the job that made it.
  await nextTurn();
  clock.advance(1);
  trim.worked();
  await nextTurn();
  assert.equal(ref!.deref(), undefined);
});

test("a collector that throws (a Node without the inspector) is dropped, and work goes on", () => {
  const clock = new FakeClock();
  let calls = 0;
  const trim = createHeapTrim({ clock, intervalMs: 1, collect: () => {
    calls++;
    throw new Error("ERR_INSPECTOR_NOT_AVAILABLE");
  } });
  clock.advance(1);
  trim.worked();
  clock.advance(1);
  trim.worked();
  assert.equal(calls, 1);
});
