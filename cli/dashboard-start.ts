import { join } from "node:path";
import type { ApprovalStore, Approver, Clock, LoadedConfig, Runtime, SessionEvent } from "../runtime/index.ts";
import { readSessionLogFrom } from "../runtime/session-log.ts";
import { mountStage, readStage, summarizeStage } from "../runtime/stage/overlay.ts";
import type { Cluster } from "../runtime/store/pg-cluster.ts";
import type { TraceLogger } from "../runtime/trace.ts";
import type { Memory } from "../memory/index.ts";
import { machineOf, readClusterView } from "../tasks/cluster-view.ts";
import type { Daemon } from "../tasks/daemon.ts";
import type { SharedSessions } from "./shared-sessions.ts";
import { journalsElsewhere } from "./cluster-start.ts";
import { costElsewhere } from "./shared-spend.ts";

/**
 * The daemon's dashboard: what each page reads of the daemon, its runtime and memory (and, with
 * several machines, of the shared store), served on `dashboard.port`. Loaded after the ready line:
 * Hono and its Node adapter take 50-100 ms to load, which start → ready does not wait for.
 */
export async function serveDaemonDashboard(options: {
  loaded: LoadedConfig;
  clock: Clock;
  trace: TraceLogger;
  runtime: Runtime;
  daemon: Daemon;
  approvals: ApprovalStore;
  memory: Pick<Memory, "store" | "journal">;
  /** The memory service's undo (what `/memory undo` runs). */
  undo(): string;
  readEvents(id: string): Promise<SessionEvent[]>;
  cluster?: Cluster;
  sessions?: SharedSessions;
}): Promise<{ server: { port: number; close(): Promise<void> }; approver: { approver: Approver; signedIn(): boolean } }> {
  const { loaded, clock, trace, runtime, daemon, approvals, memory, undo, readEvents, cluster, sessions } = options;
  const { home, config } = loaded;
  const { chargeReader, createDashboard, dashboardApprover, serveDashboard, specialistLogs } = await import("../dashboard/index.ts");
  const charges = chargeReader(runtime.sessionsDir);
  const app = createDashboard({
    dir: join(home, "state", "dashboard"),
    clock,
    trace,
    port: config.dashboard.port,
    ...(config.dashboard.public_url ? { publicUrl: config.dashboard.public_url } : {}),
    // What the bot reads: the daemon's tasks, the runtime's approvals, the session logs, /budget's spend.
    tasks: daemon.tasks,
    approvals,
    readEvents,
    // A task's specialists each have a log in sessions/<task>/ (runtime.ts `runChild`).
    // With several machines, another machine's task's specialists are read from the store's copies of their logs.
    readSpecialists: sessions ? (id) => sessions.readSpecialists(id, (task) => specialistLogs(runtime.sessionsDir, task)) : (id) => specialistLogs(runtime.sessionsDir, id),
    // What the daily budget counts, so the page and the limit agree (even after the clock stepped back).
    spentToday: async () => runtime.daily.spent(),
    dailyUsd: config.budget.daily_usd,
    // Several machines: every machine's heartbeat and active tasks, from the shared store.
    ...(cluster ? { cluster: () => readClusterView(cluster) } : {}),
    // What `nightshift memory show` and /memory read, and /memory undo's undo.
    // Several machines: a source in another machine's journal is read from the shared store.
    memory: { store: memory.store, journal: memory.journal, capBytes: config.memory.cap, undo, ...(cluster ? { elsewhere: journalsElsewhere(cluster) } : {}) },
    // The Cost and Now pages: each session log written in the window, read only where it grew since the last load.
    charges,
    // Several machines: the other machines' spend by day and every machine's costliest tasks, from the store.
    ...(cluster ? { costElsewhere: costElsewhere(cluster) } : {}),
    // The Health page: `nightshift doctor`'s checks over the daemon's config and sandbox, each time it is loaded.
    checks: async () => (await import("./doctor.ts")).runDoctor({ loaded, sandbox: runtime.sandbox, nodeVersion: process.version }),
    // Live pages wake on the daemon's events and read only what a log grew by.
    // With several machines, a task that runs on another machine is read from the store's copy of its log, and wakes on its appends.
    watch: sessions ? sessions.watch : (listener) => daemon.watch((session) => listener(session)),
    readLogFrom: sessions ? sessions.readLogFrom : (id, offset) => readSessionLogFrom(join(runtime.sessionsDir, `${id}.jsonl`), offset),
    ...(sessions ? { findElsewhere: sessions.findElsewhere } : {}),
    ...(cluster ? { listShared: async (filter, limit) => (await cluster.list(filter, limit)).map((task) => ({ task: task.record, machine: machineOf(task) })) } : {}),
    cancel: (id, reason) => daemon.cancel(id, reason),
    staged: {
      has: (id) => readStage(home, id) !== undefined,
      async view(id) {
        const mount = await mountStage(home, id);
        try {
          return summarizeStage(home, mount);
        } finally {
          await mount.close();
        }
      },
      async apply(id) {
        const result = await (await import("./changes.ts")).applyCommand(home, id);
        return { ok: result.code === 0, message: result.text };
      },
      async discard(id) {
        const result = (await import("./changes.ts")).discardCommand(home, id);
        return { ok: result.code === 0, message: result.text };
      },
    },
  });
  const server = await serveDashboard(app.fetch, config.dashboard.port);
  return { server, approver: dashboardApprover(join(home, "state", "dashboard"), clock) };
}
