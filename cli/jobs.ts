import { htmlToPlain } from "../bot/reports.ts";
import type { TelegramBot } from "../bot/bot.ts";
import type { Clock, Config } from "../runtime/index.ts";
import type { Cluster } from "../runtime/store/pg-cluster.ts";
import { sharedMark } from "../runtime/store/pg-marks.ts";
import type { TraceLogger } from "../runtime/trace.ts";
import type { MemoryService } from "./memory-service.ts";
import { cronRarity, cronSlots } from "../runtime/cron.ts";

/**
 * The daemon's own recurring work (the memory consolidator, the digest), on the same slot maths
 * as schedules/: at each slot, or at the first check after it (a laptop that slept through 03:00
 * runs the job once on wake, never once per missed night).
 */

export interface Job {
  name: string;
  /** 5-field cron, local time (crontab(5) rules and cronie's DST rules, see runtime/cron.ts). */
  cron: string;
  /** The config setting it comes from, for messages: `memory.digest`. */
  setting?: string;
  run(slot: number): Promise<void>;
}

export interface JobsOptions {
  jobs: Job[];
  timezone: string;
  clock: Clock;
  lastRun(name: string): number | undefined;
  /** Persisted before the job runs: a crash while it runs does not run it again at start. */
  setLastRun(name: string, at: number): Promise<void>;
  report(name: string, error: unknown): void;
  /** Told at start about a job whose next run is more than a year away (config refuses one that never runs). */
  warn?(name: string, message: string): void;
}

/** Checks at least this often, so a wake from sleep is noticed within a minute. */
const CHECK_MS = 60_000;

export function startJobs(options: JobsOptions): { close(): Promise<void> } {
  const { clock } = options;
  const slots = new Map(options.jobs.map((job) => [job.name, cronSlots(job.cron, options.timezone)]));
  for (const job of options.jobs) {
    const rarity = cronRarity(job.cron, options.timezone, clock.now());
    if (rarity) options.warn?.(job.name, `${job.setting ?? job.name}: ${rarity}`);
  }
  /** Each running job's promise: closing waits for them, so a job's last write lands before the state closes. */
  const running = new Map<string, Promise<void>>();
  let cancel = () => {};
  let closed = false;

  const check = () => {
    for (const job of options.jobs) {
      const due = slots.get(job.name)!.previous(clock.now());
      const last = options.lastRun(job.name);
      // A first start sets the cursor without running: the job's first run is its next slot.
      if (last === undefined && due !== undefined) {
        void options.setLastRun(job.name, due).catch((error: unknown) => options.report(job.name, error));
        continue;
      }
      if (due === undefined || last === undefined || due <= last || running.has(job.name)) continue;
      const run = options
        .setLastRun(job.name, due)
        .then(() => job.run(due))
        .catch((error: unknown) => options.report(job.name, error))
        .finally(() => running.delete(job.name));
      running.set(job.name, run);
    }
    const next = Math.min(...options.jobs.map((job) => slots.get(job.name)!.next(clock.now()) ?? Infinity));
    if (!closed) cancel = clock.setTimer(check, Math.max(1000, Math.min(CHECK_MS, next - clock.now())));
  };
  check();
  return {
    /** Stops checking; resolves once the jobs already running have finished (their errors are reported, not thrown). */
    async close() {
      closed = true;
      cancel();
      for (const slot of slots.values()) slot.dispose();
      await Promise.all(running.values());
    },
  };
}

/**
 * The daemon's memory jobs: the nightly consolidation, and the daily digest, sent by the machine
 * that runs the bot. With several machines, when the last digest was sent is kept in the store
 * too, so the machine that runs the bot now covers the time since, whichever machine sent it (its
 * own mark, with the store away).
 */
export function memoryJobs(options: {
  config: Pick<Config, "memory">;
  clock: Clock;
  trace: Pick<TraceLogger, "info">;
  memoryService: MemoryService;
  bot(): Pick<TelegramBot, "notice"> | undefined;
  store: { lastRun(name: string): number | undefined; setLastRun(name: string, at: number): Promise<void> };
  cluster?: Pick<Cluster, "sql">;
}): Job[] {
  const { config, clock, trace, memoryService, store, cluster } = options;
  return [
    {
      name: "@consolidate",
      setting: "memory.consolidate",
      cron: config.memory.consolidate,
      run: async () => {
        const text = await memoryService.consolidate(undefined, { nightly: true });
        trace.info({ event: "memory_consolidated" }, htmlToPlain(text).split("\n")[0] ?? "consolidated");
      },
    },
    {
      name: "@digest",
      setting: "memory.digest",
      cron: config.memory.digest,
      run: async () => {
        const bot = options.bot();
        if (!bot) return;
        const sent = cluster ? sharedMark(cluster.sql, "@digest-sent") : undefined;
        const since = (await sent?.get().catch(() => undefined)) ?? store.lastRun("@digest-sent");
        bot.notice(await memoryService.digest(since));
        await store.setLastRun("@digest-sent", clock.now());
        await sent?.set(clock.now()).catch(() => {}); // the store away: this machine's own mark stands in
      },
    },
  ];
}
