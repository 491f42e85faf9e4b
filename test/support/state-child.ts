// A child process for the state's crash tests: finishes tasks through the real state store, one
// line on stdout once each change is durable ("running ID", then "done ID"), and is killed by the
// parent or kills itself with SIGKILL right after the Nth "running" write (a finish half done).
// usage: node state-child.ts HOME TASKS [KILL_AFTER_RUNNING]
import { openState } from "../../tasks/state.ts";

const [home, count, killAfter] = process.argv.slice(2) as [string, string, string | undefined];
const { store } = await openState(home, Date.now);
const ids = Array.from({ length: Number(count) }, (_, index) => `crash-${String(index).padStart(4, "0")}`);
for (const id of ids) {
  if (store.get(id)) continue;
  const spec = { title: id, prompt: "Say done.", workdir: home, model: "main", budget: { max_turns: 1, max_usd: 1, timeout_ms: 60_000 } };
  await store.add({ id, title: id, origin: "cli", priority: "normal", state: "queued", spec, created: Date.now(), attempts: 0, crashes: 0, turns: 0, cost_usd: 0 });
}
process.stdout.write("queued\n");
let running = 0;
for (const id of ids) {
  if (store.get(id)?.state !== "queued") continue;
  await store.change(id, { state: "running", started: Date.now(), attempts: 1 });
  process.stdout.write(`running ${id}\n`);
  if (++running === Number(killAfter)) process.kill(process.pid, "SIGKILL");
  await store.change(id, { state: "done", finished: Date.now(), turns: 1, cost_usd: 0.01 });
  process.stdout.write(`done ${id}\n`);
}
store.close();
