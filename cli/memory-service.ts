import { join } from "node:path";
import { digestText, memoryText, undoText } from "../bot/reports.ts";
import { spendSummary, type SpendSummary } from "../bot/spend.ts";
import { consolidate, type Edit } from "../memory/consolidate.ts";
import { openMemoryRuns, type ConsolidationRun, type Memory } from "../memory/index.ts";
import type { ConsolidationSource } from "../memory/shared-journal.ts";
import { dayOf } from "../runtime/daily-spend.ts";
import type { ApprovalStore, Clock, LoadedConfig, ModelClient } from "../runtime/index.ts";
import type { Cluster } from "../runtime/store/pg-cluster.ts";
import type { TaskReader } from "../tasks/index.ts";

/**
 * The daemon's memory work, shared by its nightly jobs, the control socket (`nightshift memory`,
 * `nightshift digest`) and Telegram (/memory, /digest): consolidate, undo, and the digest. Each
 * returns text for a person (Telegram HTML).
 */
const STUCK_AFTER = 3;
/** Nightly runs of several machines this close after a rejected or failed one leave its batch for the next night (a machine waking late catches up its missed run too). */
const SAME_NIGHT_MS = 6 * 3_600_000;

export interface MemoryService {
  /**
   * `nightly`: the scheduled run. With several machines every machine's fires: one that finds the
   * last run (any machine's, within SAME_NIGHT_MS) rejected or failed makes no model call.
   */
  consolidate(signal?: AbortSignal, options?: { nightly?: boolean }): Promise<string>;
  undo(): string;
  memoryText(): Promise<string>;
  /** Since `since` (default: the last 24 hours). */
  digest(since?: number): Promise<string>;
}

export function createMemoryService(options: {
  loaded: LoadedConfig;
  clock: Clock;
  memory: Memory;
  small(): ModelClient;
  tasks: Pick<TaskReader, "active" | "finishedSince">;
  approvals: ApprovalStore;
  /** Several machines: the digest counts every machine's tasks, from the shared store (this machine's alone while it is away). */
  shared?: Pick<Cluster, "finishedSince" | "active">;
  /** Several machines: every machine's journal and the cursors, from the shared store (memory/shared-journal.ts). */
  source?: ConsolidationSource;
  /** The digest's spend; default, this machine's session logs (several machines: every machine's, cli/shared-spend.ts). */
  spend?: () => Promise<SpendSummary>;
}): MemoryService {
  const { loaded, clock, memory } = options;
  const { config, home } = loaded;
  const runs = openMemoryRuns(join(home, "state"));
  /** One machine: its own journal, the cursor in state/memory.json (written with each run). */
  const source: ConsolidationSource = options.source ?? { open: async () => ({ journal: memory.journal, ...(runs.read().cursor ? { cursor: runs.read().cursor! } : {}) }), save: async () => {} };
  // Made only when there is something to send: a missing key must not matter on a quiet night.
  const lazyModel: ModelClient = {
    get model() {
      return config.models.small.model;
    },
    role: "small",
    complete: (request, callOptions) => options.small().complete(request, callOptions),
  };

  /**
   * A batch the small model's edits were rejected for on three nights running is passed over, and
   * the digest says so: one bad stretch of journal must not stop memory from learning for good.
   * Nights, not runs: with several machines, one night's runs of the same batch count once. A
   * passed-over record (no entries read) ends the count.
   */
  const skipStuckBatch = async (): Promise<string | undefined> => {
    const tried = (await recent()).filter((run) => run.status !== "nothing-new");
    const through = tried.at(-1)?.through;
    if (!through) return undefined;
    const tail: ConsolidationRun[] = [];
    for (const run of [...tried].reverse()) {
      if (run.status !== "rejected" || run.through !== through || run.entries === 0) break;
      tail.push(run);
    }
    if (new Set(tail.map((run) => dayOf(run.at))).size < STUCK_AFTER) return undefined;
    await record({ at: clock.now(), status: "rejected", entries: 0, changes: [], problem: `journal entries up to ${through} were passed over after ${STUCK_AFTER} nights of rejected attempts; memory learned nothing from them` }, through);
    return through;
  };
  /** Several machines, the nightly run: the last run of any machine, when it was rejected or failed tonight; its batch waits for the next night. */
  const triedTonight = async (): Promise<(ConsolidationRun & { machine?: string }) | undefined> => {
    if (!source.history) return undefined;
    const last: (ConsolidationRun & { machine?: string }) | undefined = (await recent()).filter((run) => run.status !== "nothing-new").at(-1);
    if (!last || (last.status !== "rejected" && last.status !== "failed") || last.entries === 0 || clock.now() - last.at >= SAME_NIGHT_MS) return undefined;
    return last;
  };
  /** The last runs: this machine's (state/memory.json), or with several machines every machine's (the store; this machine's while it is away). */
  const recent = async (): Promise<ConsolidationRun[]> => (source.history ? await source.history.recent().catch(() => runs.read().runs) : runs.read().runs);
  /** A run, in state/memory.json (with the cursor on one machine) and where the source keeps runs. */
  const record = async (run: ConsolidationRun, cursor?: string): Promise<void> => {
    runs.record(run, cursor);
    // The store away: the run is in this machine's record; the cursor goes to the store at the next run.
    await source.history?.record(run).catch(() => {});
  };

  return {
    async consolidate(signal, { nightly = false } = {}) {
      const tried = nightly ? await triedTonight() : undefined;
      if (tried) {
        const by = tried.machine ? `${tried.machine} ` : "";
        const said = `${by}tried these journal entries at ${new Date(tried.at).toTimeString().slice(0, 5)} and ${tried.status === "rejected" ? "its edits were rejected" : "it failed"}, so no model call now: the next night's run tries them again.\n\n`;
        return `${said}${memoryText({ ...snapshot(), runs: await recent() }, clock.now())}`;
      }
      // A busy day is several batches; each applied batch moves the cursor, anything else stops.
      let first: string | undefined;
      const { journal, cursor: start } = await source.open(runs.read().cursor);
      let kept = start;
      for (let batch = 0; batch < 20; batch++) {
        const skipped = await skipStuckBatch();
        if (skipped) {
          await source.save(skipped).catch(() => {}); // kept in state/memory.json meanwhile
          kept = skipped;
        }
        const cursor = kept;
        const result = await consolidate({ journal, memory: memory.store, model: lazyModel, prices: config.prices, capBytes: config.memory.cap, ...(cursor ? { cursor } : {}), clock, ...(signal ? { signal } : {}), ...(source.cursorAfter ? { cursorAfter: source.cursorAfter } : {}) });
        const changes = (result.edits ?? []).map((edit: Edit) => (edit.op === "add" ? `added: ${edit.text}` : edit.op === "update" ? `updated ${edit.id}: ${edit.text}` : `retired ${edit.id}`));
        const run = { at: clock.now(), status: result.status, entries: result.entries, changes, ...(result.problem ? { problem: result.problem } : {}), ...(result.cost_usd !== undefined ? { cost_usd: result.cost_usd } : {}), ...(result.through ? { through: result.through } : {}) };
        // Only a run that used what it read moves the cursor: a rejected or failed one reads the same entries next time.
        // With several machines a run that found nothing new is this machine's only: the others' record shows what was learned.
        // The cursor is kept in state/memory.json before the store: MEMORY.md has the edits, and a save that fails is made at the next run.
        if (result.status !== "nothing-new") await record(run, result.status === "applied" ? result.cursor : undefined);
        else if (batch === 0) runs.record(run);
        first ??= result.status === "nothing-new" ? "Nothing new in the journal since the last run, so no model call.\n\n" : "";
        if (result.status === "applied" && result.cursor) {
          kept = result.cursor;
          const saved = await source.save(result.cursor).then(
            () => true,
            () => false,
          );
          if (!saved) break; // the store away: the next run saves it first, then reads on
        }
        if (result.status !== "applied" || !result.remaining) break;
      }
      return `${first ?? ""}${memoryText({ ...snapshot(), runs: await recent() }, clock.now())}`;
    },
    undo: () => undoText(memory.store.undo()),
    memoryText: async () => memoryText({ ...snapshot(), runs: await recent() }, clock.now()),
    async digest(since = clock.now() - 86_400_000) {
      const shared = options.shared ? await Promise.all([options.shared.finishedSince(since), options.shared.active()]).catch(() => undefined) : undefined;
      return digestText({
        now: clock.now(),
        finished: shared?.[0].map((task) => task.record) ?? options.tasks.finishedSince(since),
        active: shared?.[1].map((task) => task.record) ?? options.tasks.active(),
        ...(shared ? { machines: Object.fromEntries(shared[0].flatMap((task) => (task.machine ? [[task.record.id, task.machine]] : []))) } : {}),
        pendingApprovals: options.approvals.pending().map((record) => ({ id: record.id, summary: record.summary, session: record.session })),
        spend: await (options.spend?.() ?? spendSummary(join(home, "sessions"), clock.now())),
        limits: { dailyUsd: config.budget.daily_usd, perTaskUsd: config.budget.max_usd },
        runs: (await recent()).filter((run) => run.at >= since),
        ...overCapField(),
      });
    },
  };

  function overCapField(): { overCap?: string } {
    const overCap = memory.overCap();
    return overCap ? { overCap } : {};
  }

  function snapshot() {
    const file = memory.store.read();
    return { ...overCapField(), text: file.bytes ? formatFile(file) : "", bytes: file.bytes, capBytes: config.memory.cap, entries: file.entries.length };
  }
}

/** The entries as a person reads them: text only, without the markers. */
function formatFile(file: { entries: Array<{ text: string }>; other: string }): string {
  const other = file.other.replace(/^# Memory\s*$/m, "").trim();
  return [...file.entries.map((entry) => `• ${entry.text}`), ...(other ? ["", other] : [])].join("\n");
}
