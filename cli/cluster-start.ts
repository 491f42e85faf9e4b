import { join } from "node:path";
import { escapeHtml } from "../bot/format.ts";
import { openJournal, type JournalEntry } from "../memory/journal.ts";
import { openMemoryRuns } from "../memory/runs.ts";
import { createJournalMirror, decodeCursor, sharedConsolidation, type ConsolidationSource, type JournalMirror } from "../memory/shared-journal.ts";
import type { JournalsElsewhere } from "../dashboard/memory-page.ts";
import { splitCitation } from "../memory/machine-journal.ts";
import { pgJournal, splitEntryId, type StoredEntry } from "../runtime/store/pg-journal.ts";
import { machineName, storeSetting, storeUrl, type Clock, type LoadedConfig } from "../runtime/index.ts";
import { HEARTBEAT_MS, openCluster, type Cluster } from "../runtime/store/pg-cluster.ts";
import type { StoreWatch } from "../runtime/store/outage.ts";
import type { TraceLogger } from "../runtime/trace.ts";
import { createFileSync } from "../tasks/shared-files.ts";
import { defaultFiles } from "./init.ts";
import type { MemoryService } from "./memory-service.ts";
import { UsageError } from "./usage.ts";

/**
 * What `nightshift start` adds when this machine is one of several on a shared store: joining it,
 * keeping the shared files in line and saying what could not be merged, and running the memory
 * consolidation on one machine at a time.
 */

/** This machine on the shared store, when `store:` or NIGHTSHIFT_DATABASE_URL names one; its URL is never said (it may hold a password). */
export async function joinCluster(loaded: LoadedConfig): Promise<Cluster | undefined> {
  const url = storeUrl(loaded);
  if (!url) return undefined;
  const setting = storeSetting(loaded);
  const name = machineName(loaded.config);
  let cluster: Cluster;
  let joined: Awaited<ReturnType<Cluster["join"]>>;
  try {
    // Tests only: a dead machine's unstarted tasks go to the others sooner than MACHINE_SILENT_MS.
    const silentMs = Number(loaded.env.NIGHTSHIFT_TEST_MACHINE_SILENT_MS) || undefined;
    cluster = await openCluster(url, name, silentMs ? { silentMs } : {});
    joined = await cluster.join(loaded.config.daemon.concurrency);
  } catch (error) {
    throw new UsageError(`could not open the shared store (${setting}): ${(error as Error).message}. Check that PostgreSQL runs and the URL is right, or remove the setting to run this machine on its own files`);
  }
  if (!joined.ok) {
    await cluster.close();
    throw new UsageError(
      `the machine name "${name}" is in use on the shared store by a running Nightshift on ${joined.host} (pid ${joined.pid}, heard from ${Math.round(joined.silentMs / 1000)} s ago): ` +
        `give this machine a name of its own with \`machine:\` in config.yaml${loaded.config.machine ? "" : " (the default is the host name)"}`,
    );
  }
  return cluster;
}

/** Identity, memory, specialists and skills as every machine holds them (tasks/shared-files.ts); what could not be merged is said. */
export function sharedFilesSync(options: { cluster: Cluster; home: string; clock: Clock; trace: TraceLogger; stderr: NodeJS.WritableStream; notice(html: string): void }): () => Promise<void> {
  const { trace, stderr } = options;
  const sync = createFileSync({ home: options.home, files: options.cluster.files, machine: options.cluster.machine, now: options.clock.now, defaults: new Map(defaultFiles()) });
  return async () => {
    const report = await sync.sync();
    for (const conflict of report.conflicts) {
      const message = `${conflict.path} was changed on this machine and on ${conflict.from} at once: ${conflict.from}'s is kept, this machine's is at ${conflict.keptAt}`;
      stderr.write(`! ${message}\n`);
      trace.warn({ event: "shared_file_conflict", path: conflict.path, from: conflict.from, kept_at: conflict.keptAt }, message);
      options.notice(`⚠️ ${escapeHtml(message)}`);
    }
    for (const path of report.tooLarge) {
      const message = `${path} is over 1 MB and stays on this machine only (the shared store holds identity, memory, agents/ and skills/ files up to 1 MB)`;
      stderr.write(`! ${message}\n`);
      trace.warn({ event: "shared_file_too_large", path }, message);
    }
    if (report.sent.length || report.received.length) trace.info({ event: "shared_files_synced", sent: report.sent, received: report.received }, "shared files synced");
  };
}

/**
 * The memory journal with several machines (memory/shared-journal.ts): this machine's copied into
 * the store at each heartbeat, and the consolidation reading every machine's from there. A home that
 * ran alone brings its cursor: what it had consolidated is not read again.
 */
export function shareJournal(options: { cluster: Cluster; home: string; clock: Clock; refused?(message: string): void }): { mirror: JournalMirror; source: ConsolidationSource } {
  const { cluster, home } = options;
  const store = pgJournal(cluster.sql);
  const dir = join(home, "journal");
  // The cursor is seeded before the mirror's first copy, retried with it while the store is away.
  const seed = ownCursor(openMemoryRuns(join(home, "state")).read().cursor, cluster.machine);
  const mirror = createJournalMirror({ store, journal: openJournal(dir, options.clock), dir, machine: cluster.machine, ...(seed ? { seed } : {}), ...(options.refused ? { refused: options.refused } : {}) });
  return { mirror, source: sharedConsolidation(store, cluster.machine) };
}

/** Recall's reach into the other machines' journals: their entries holding any of the words, newest first (a few hundred at most). */
export function otherJournals(cluster: Cluster): (words: string[]) => Promise<JournalEntry[]> {
  const store = pgJournal(cluster.sql);
  return async (words) => (await store.search(words, cluster.machine, 200)).map(({ machine, entry }) => ({ ...entry, id: `${machine}:${entry.id}` }));
}

/** The other machines' journals for the dashboard's Memory page and journal days, from the store. */
export function journalsElsewhere(cluster: Cluster): JournalsElsewhere {
  const store = pgJournal(cluster.sql);
  const qualified = ({ machine, entry }: StoredEntry): JournalEntry => ({ ...entry, id: `${machine}:${entry.id}` });
  return {
    machine: cluster.machine,
    async find(ids) {
      const named = ids.flatMap((cited) => {
        const { machine, id } = splitCitation(cited);
        return machine ? [{ machine, id }] : [];
      });
      return (await store.find(named)).map(qualified);
    },
    async day(machine, day) {
      const entries = await store.day(machine, day);
      return entries.length ? entries.map(qualified) : undefined;
    },
  };
}

/** This machine's part of a cursor state/memory.json holds: a bare id (it ran alone), or its own in several machines' cursor. */
export function ownCursor(cursor: string | undefined, machine: string): string | undefined {
  if (!cursor) return undefined;
  if (splitEntryId(cursor)) return cursor;
  return decodeCursor(cursor).get(machine) ?? (cursor.startsWith(`${machine}:`) && splitEntryId(cursor.slice(machine.length + 1)) ? cursor.slice(machine.length + 1) : undefined);
}

/** The lease held while a machine consolidates memory, and how long it lives without a renewal. */
const MEMORY_LEASE = "memory";
const MEMORY_LEASE_MS = 120_000;

/**
 * One consolidation reads every machine's journal and writes the one MEMORY.md every machine holds.
 * Two at once would each write a MEMORY.md without the other's edits (the second kept aside as a
 * conflict) and learn the same entries twice: so one machine consolidates at a time, holding a
 * lease, and takes in the newest MEMORY.md first (and gives its own journal to the store) and gives
 * MEMORY.md to the others right after. A machine that finds another consolidating waits for it, then
 * finds nothing new (no model call): every machine's nightly job may run, one does the work.
 */
export function oneAtATime(service: MemoryService, options: { cluster: Cluster; clock: Clock; syncFiles: () => Promise<void>; journal: JournalMirror }): MemoryService {
  const { cluster, clock, syncFiles } = options;
  return {
    ...service,
    async consolidate(signal, runOptions) {
      while (!(await cluster.lease(MEMORY_LEASE, MEMORY_LEASE_MS))) await clock.sleep(HEARTBEAT_MS, signal);
      // Renewed while it runs: a model call may take longer than the lease lives.
      const done = new AbortController();
      const renewal = (async () => {
        for (;;) {
          await clock.sleep(MEMORY_LEASE_MS / 3, done.signal);
          await cluster.lease(MEMORY_LEASE, MEMORY_LEASE_MS).catch(() => false);
        }
      })().catch(() => {}); // ends when `done` aborts its wait
      try {
        await syncFiles();
        await options.journal.sync();
        const text = await service.consolidate(signal, runOptions);
        await syncFiles();
        return text;
      } finally {
        done.abort();
        await renewal;
        await cluster.releaseLease(MEMORY_LEASE).catch(() => {});
      }
    },
  };
}

/**
 * The shared work of each heartbeat after the queue's (tasks/cluster.ts `startClusterLoop`):
 * approvals, the journal's copy, staged presses, tool reviews, Telegram notices and this
 * machine's spend, each on its own (one that fails, said in the trace, or the store away, said at
 * once by its watch, holds up none of the others); the session logs' copy asked for and not
 * waited on (a long catch-up after an outage must not hold the heartbeat up); then the shared
 * files, then the settings (a file that cannot be read or written here does not hold the settings up).
 */
export function clusterHeartbeat(options: {
  watch: Pick<StoreWatch, "failed">;
  trace: Pick<TraceLogger, "warn">;
  sharing: { sync(): Promise<unknown> };
  sessions: { sync(): Promise<unknown> };
  journal: JournalMirror;
  spend: { publish(): Promise<void> };
  stagedHere?: { tick(): void };
  reviews?: { tick(): Promise<unknown> };
  notices?: { tick(): Promise<unknown> };
  syncFiles?: () => Promise<void>;
  syncSettings?: () => Promise<void>;
}): { also(): Promise<void>; syncFiles?: () => Promise<void> } {
  const { watch, trace, syncFiles, syncSettings } = options;
  const step = (what: string, work: () => Promise<unknown> | undefined) =>
    Promise.resolve()
      .then(work)
      .catch((error: unknown) => {
        if (!watch.failed(error)) trace.warn({ event: "cluster_step_failed", step: what, error: (error as Error).message }, `${what} failed; tried again at the next heartbeat: ${(error as Error).message}`);
      });
  return {
    async also() {
      await step("sharing approvals", () => options.sharing.sync());
      void options.sessions.sync().catch(() => {});
      await step("copying the memory journal to the shared store", () => options.journal.sync());
      options.stagedHere?.tick();
      await step("sending MCP tool reviews", () => options.reviews?.tick());
      await step("Telegram notices", () => options.notices?.tick());
      await step("writing this machine's spend to the shared store", () => options.spend.publish());
    },
    ...(syncFiles
      ? {
          syncFiles: async () => {
            try {
              await syncFiles();
            } finally {
              await syncSettings?.();
            }
          },
        }
      : {}),
  };
}
