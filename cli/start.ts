import { existsSync } from "node:fs";
import { join } from "node:path";
import type { TelegramBot } from "../bot/index.ts";
import { createPairingStore } from "../bot/pairing.ts";
import { shareApprovals } from "../runtime/store/pg-approvals.ts";
import { startTelegramLease } from "./telegram-lease.ts";
import { escapeHtml } from "../bot/format.ts";
import { outageMessage, stateNotices, storeOutageMessage } from "./storage-notices.ts";
import { journalDamageMessage, openMemory, openMemoryRuns } from "../memory/index.ts";
import { BUILTIN_TOOL_NAMES, createRuntime, createTraceLogger, createWriteGate, damageMessage, loadAgents, lockSession, readSessionLog, requireApiKey, sharedMachine, storageMessage, type Approver, type Clock, type LoadedConfig } from "../runtime/index.ts";
import { finishInterruptedApplies, readPlan } from "../runtime/stage/apply.ts";
import { discardStage, expiredStages } from "../runtime/stage/overlay.ts";
import { createDaemon, endOf, SlotTaken } from "../tasks/daemon.ts";
import { createHeapTrim } from "../runtime/heap-trim.ts";
import { createStoreWatch, watched } from "../runtime/store/outage.ts";
import { joinShared, startClusterLoop } from "../tasks/cluster.ts";
import { readClusterView } from "../tasks/cluster-view.ts";
import { startControlServer } from "../tasks/control.ts";
import { memoryJobs, startJobs } from "./jobs.ts";
import { createMemoryService } from "./memory-service.ts";
import { shareSpend } from "./shared-spend.ts";
import { createInbox } from "../tasks/inbox.ts";
import { createScheduler } from "../tasks/schedules.ts";
import { openState, StateRefused } from "../tasks/state.ts";
import { UsageError } from "./usage.ts";
import { readTaskFile, toTaskSpec } from "../tasks/index.ts";
import { initHome } from "./init.ts";
import { sharedPins } from "../runtime/store/pg-pins.ts";
import { sharedReviews } from "../runtime/store/pg-reviews.ts";
import { clusterReviews, type ClusterReviews } from "./tool-reviews.ts";
import { clusterHeartbeat, joinCluster, oneAtATime, otherJournals, ownCursor, shareJournal, sharedFilesSync } from "./cluster-start.ts";
import { clusterNotices, type ClusterNotices } from "./telegram-notices.ts";
import { stagedActionsHere } from "./staged-elsewhere.ts";
import { sharedSettingsSync } from "./settings-start.ts";
import { botMaker } from "./bot-start.ts";
import { serveDaemonDashboard } from "./dashboard-start.ts";
import { shareSessions } from "./shared-sessions.ts";

export interface StartIO {
  loaded: LoadedConfig;
  clock: Clock;
  stderr: NodeJS.WritableStream;
}

export interface RunningDaemon {
  /** Graceful stop: no new work, running sessions stop at a safe point and resume next start. */
  stop(): Promise<void>;
  /** Resolves once stopped. */
  stopped: Promise<void>;
}

/**
 * `nightshift start`: one process owns the state (a lock file says which). It resumes what was
 * running, watches inbox/ and schedules/, runs the queue, and answers the CLI on a local socket.
 */
export async function startDaemon(io: StartIO): Promise<RunningDaemon> {
  const { loaded, clock, stderr } = io;
  const { home, config } = loaded;
  const { created } = initHome(home); // never overwrites; fills in folders a newer version needs
  if (created.includes("config.yaml")) stderr.write(`created ${home} with defaults (nightshift init)\n`);
  const unlock = lockSession(join(home, "state", "daemon"), process.pid, `a Nightshift daemon for ${home}`, "stop it first (nightshift status shows what it runs)");
  const trace = createTraceLogger(join(home, "logs", "trace.jsonl"), config.log_level);
  const newId = () => runtime.newSessionId();
  const specOf = async (name: string, id: string) => toTaskSpec(await readTaskFile(join(home, "inbox", ".done", name)), { loaded, id, fileName: name, source: `inbox:${name}` });
  const opened = await openState(home, clock.now).catch((error: unknown) => {
    throw error instanceof StateRefused ? new UsageError(error.message) : error; // said plainly, without a stack
  });
  const { store, unstarted } = opened;
  // Several machines: joined before anything else is opened, so a refusal (the store away, the
  // machine name in use) leaves nothing running and the lock free.
  const reached = await joinCluster(loaded).catch((error: unknown) => {
    store.close();
    trace.flush();
    unlock();
    throw error;
  });
  let bot: TelegramBot | undefined;
  /** With several machines: notices reach Telegram from a machine without the bot too (cli/telegram-notices.ts). */
  let notices: ClusterNotices | undefined;
  /** With several machines: an MCP tool review found here reaches the bot wherever it runs (cli/tool-reviews.ts). */
  let reviews: ClusterReviews | undefined;
  /** A notice for every user, from whichever machine runs the bot. */
  const say = (html: string) => (notices ? notices.notice(html) : bot?.notice(html));
  /** What was found damaged or lost: said on stderr and in the trace, and on Telegram (once the bot is up). */
  let damage: string[] | undefined = [];
  const sayDamage = (event: Record<string, unknown>, message: string) => {
    stderr.write(`! ${message}\n`);
    trace.error(event, message);
    if (damage) damage.push(message);
    else say(`⚠️ ${escapeHtml(message)}`);
  };
  for (const notice of stateNotices(opened, home)) {
    if (notice.damage) sayDamage(notice.event, notice.message);
    else (stderr.write(`! ${notice.message}\n`), trace.warn(notice.event, notice.message));
  }
  const memory = openMemory(home, clock, config.memory.cap, {
    machine: sharedMachine(loaded),
    ...(reached ? { others: otherJournals(reached) } : {}),
    onDamaged: (line) => sayDamage({ event: "journal_line_damaged", file: line.file, id: line.id, problem: line.problem }, journalDamageMessage(line)),
  });
  // A full or read-only disk is said once, here, on Telegram and in the trace; what was being
  // written waits and is written when it can be (runtime/write-gate.ts).
  const storage = createWriteGate({
    clock,
    report(change) {
      const message = outageMessage(change, home);
      stderr.write(`${change.state === "down" ? "! " : ""}${message}\n`);
      if (change.state === "down") trace.error({ event: "storage_unavailable", fault: change.outage.fault, what: change.outage.what, error: change.outage.message }, message);
      else trace.warn({ event: "storage_available", fault: change.outage.fault, down_ms: change.at - change.outage.since }, message);
      say(`${change.state === "down" ? "⚠️" : "✅"} ${escapeHtml(message)}`);
    },
  });
  // Approvals go to Telegram once someone is paired there, and to the dashboard while someone is
  // signed in to it; with no one to ask, an ask is denied at once.
  let dashboard: { approver: Approver; signedIn(): boolean } | undefined;
  // Several machines: an MCP tool approved on any machine counts here (runtime/store/pg-pins.ts).
  const pins = reached ? sharedPins(reached.sql, reached.machine) : undefined;
  const runtime = await createRuntime({
    loaded,
    ...(pins ? { sharedPins: pins } : {}),
    clock,
    storage,
    ...memory.forRuntime(),
    // With several machines, every question also goes to the others (whose bot or dashboard may answer it).
    approvers: () => [...(bot?.hasUsers() ? [bot.approver] : []), ...(dashboard?.signedIn() ? [dashboard.approver] : []), ...(sharing ? [sharing.approver] : [])],
    onDamaged: (file) => sayDamage({ event: "file_damaged", file: file.file, moved_to: file.movedTo, problem: file.problem }, damageMessage(file)),
    onToolReview: (review) => {
      trace.warn({ event: "mcp_tools_withheld", server: review.server, review: review.id, tools: review.withheld.map((state) => state.name) }, `MCP server ${review.server}: tools withheld until approved`);
      if (reviews) reviews.found(review);
      else bot?.reviewTools(review);
    },
    onToolReviewSettled: (server) => reviews?.settled(server),
  });
  // The probe spawns bubblewrap and socat (tens of ms): it runs while the rest starts, and is
  // awaited only to say how it went in the ready line.
  const probing = runtime.sandbox.probe();
  // Unapplied staged changes are dropped after tasks.keep_staged, each with a notice; checked hourly.
  const dropStale = () => {
    for (const info of expiredStages(home, config.tasks.keep_staged, clock.now())) {
      if (readPlan(home, info.id)) continue; // an apply is under way or stopped with conflicts: the person decides
      discardStage(home, info.id);
      const message = `discarded the unapplied staged changes of task ${info.id} to ${info.original}: kept ${Math.round(config.tasks.keep_staged / 86_400_000)} days (tasks.keep_staged) without an apply`;
      trace.warn({ event: "stage_discarded", session: info.id }, message);
      say(`🗑 ${escapeHtml(message)}`);
    }
    cancelStale = clock.setTimer(dropStale, 3_600_000);
  };
  let cancelStale = () => {};
  // An apply of staged changes that a kill interrupted is finished now: its plan was written whole first.
  for (const finished of finishInterruptedApplies(home)) {
    const message = finished.problem
      ? `the interrupted apply of task ${finished.id}'s staged changes cannot go on: ${finished.problem}`
      : `finished the apply of task ${finished.id}'s staged changes that was interrupted (${finished.plan!.steps.length} changes in ${finished.plan!.original})`;
    stderr.write(`! ${message}\n`);
    trace.warn({ event: "stage_apply_finished", session: finished.id, ...(finished.problem ? { problem: finished.problem } : {}) }, message);
  }
  // Several machines on one PostgreSQL: the queue is shared, and this machine's task changes are written there too.
  // The shared store out of reach is said once, here, and its return once (runtime/store/outage.ts).
  const storeWatch = createStoreWatch({
    clock,
    report(change) {
      const message = storeOutageMessage(change);
      stderr.write(`${change.state === "down" ? "! " : ""}${message}\n`);
      if (change.state === "down") trace.error({ event: "store_unavailable", error: change.outage.message }, message);
      else trace.warn({ event: "store_available", down_ms: change.at - change.outage.since }, message);
      bot?.notice(`${change.state === "down" ? "⚠️" : "✅"} ${escapeHtml(message)}`);
    },
  });
  const cluster = reached ? watched(reached, storeWatch) : undefined;
  // With several machines, `bot` is set only while this machine holds the Telegram lease and runs the bot (cli/telegram-lease.ts).
  // While its requests to Telegram fail, it takes no Telegram result to deliver: it may give the lease up soon, to a machine that can send it.
  const telegramHere = () => bot !== undefined && bot.unreachableSince() === undefined;
  const sharing = cluster
    ? shareApprovals({
        sql: cluster.sql,
        machine: cluster.machine,
        store: runtime.approvals,
        clock,
        onAsked: (record) => bot?.approver.notify(record),
        onAnswered: (record, answer) => bot?.approver.settled?.(record, answer),
        warn: (message) => trace.warn({ event: "approvals_unshared" }, message),
      })
    : undefined;
  /** The approvals every surface reads and answers: with several machines, an answer also reaches the machine that asked. */
  const approvals = sharing?.store ?? runtime.approvals;
  const joined = cluster ? joinShared({ cluster, watch: storeWatch, state: store, home, trace, telegramHere }) : undefined;
  const daemon = createDaemon({ home, clock, runtime, state: joined?.state ?? store, trace, storage, concurrency: config.daemon.concurrency, maxCrashes: config.daemon.max_crashes, ...(joined ? { shared: joined.shared } : {}) });
  /** With several machines: identity, memory, specialists and skills kept in line with the others. */
  const syncFiles = cluster ? sharedFilesSync({ cluster, home, clock, trace, stderr, notice: say }) : undefined;
  /** With several machines: the permission policy and MCP servers, the same on every machine (cli/settings-start.ts). */
  const syncSettings = cluster ? sharedSettingsSync({ cluster, home, clock, trace, stderr, notice: say, runtime, started: config }) : undefined;
  /** With several machines: this machine's session logs copied to the store, and any machine's task read from there. */
  const sessions = cluster ? await shareSessions({ cluster, daemon, sessionsDir: runtime.sessionsDir, home, trace }) : undefined;
  const readEvents = sessions ? sessions.readEvents : (id: string) => readSessionLog(join(runtime.sessionsDir, `${id}.jsonl`));
  /** With several machines: every machine's spend in the digest and /budget, this machine's written to the store at each heartbeat. Made before any session runs. */
  const spend = cluster ? shareSpend({ cluster, daemon, sessionsDir: runtime.sessionsDir, clock, dailyUsd: config.budget.daily_usd, daily: runtime.daily }) : undefined;
  /** With several machines: this machine's journal copied to the store, and the consolidation reading every machine's. */
  const journals = cluster
    ? shareJournal({
        cluster,
        home,
        clock,
        refused: (message) => {
          stderr.write(`! ${message}\n`);
          trace.error({ event: "journal_not_ours", machine: cluster.machine }, message);
          say(`⚠️ ${escapeHtml(message)}`);
        },
      })
    : undefined;
  const memoryWork = createMemoryService({ loaded, clock, memory, small: () => runtime.modelFor("small"), tasks: daemon.tasks, approvals, ...(cluster ? { shared: cluster } : {}), ...(spend ? { spend: spend.summary } : {}), ...(journals ? { source: journals.source } : {}) });
  const memoryService = cluster && syncFiles && journals ? oneAtATime(memoryWork, { cluster, clock, syncFiles, journal: journals.mirror }) : memoryWork;
  // Journal entries are written in order; on a full or read-only disk they wait for space (until the daemon stops).
  const journalStop = new AbortController();
  let journaling = Promise.resolve();
  const heapTrim = createHeapTrim({ clock });
  const unjournal = daemon.watch((id, message) => {
    heapTrim.worked();
    if (message.type !== "event") return;
    const event = message.event;
    journaling = journaling
      .then(() => storage.retry("the memory journal", () => memory.record(id, event), journalStop.signal))
      .catch((error: unknown) => {
        if (!journalStop.signal.aborted) trace.error({ session: id, event: "journal_failed", error: (error as Error).message }, `could not write the journal: ${(error as Error).message}`);
      });
  });
  const token = loaded.env.TELEGRAM_BOT_TOKEN?.trim();
  // grammy and the bot load only when there is a bot to run: they are a fifth of the start-up.
  const makeBot = token ? await botMaker({ token, loaded, clock, trace, runtime, daemon, approvals, memoryService, readEvents, newId, ...(sessions ? { sessions } : {}), ...(spend ? { spend: spend.summary } : {}), ...(pins ? { sharedPins: pins, sharedReviews: sharedReviews(reached!.sql, reached!.machine) } : {}) }) : undefined;
  if (makeBot && !cluster) bot = makeBot();

  const inbox = createInbox({
    dir: join(home, "inbox"),
    outbox: join(home, "outbox"),
    clock,
    maxBytes: config.inbox.max_bytes,
    async accept({ file, name }) {
      const id = newId();
      const spec = toTaskSpec(file, { loaded, id, fileName: `inbox/${name}`, source: `inbox:${name}` });
      await daemon.submit(id, spec, { origin: "inbox", name, ...(file.priority ? { priority: file.priority } : {}) });
      return id;
    },
    // A file that could not be taken in (a full or read-only disk) stays in inbox/ and is tried again at the next look.
    onError({ name, error }) {
      storage.failed(name ? `inbox/${name}` : "inbox/", error);
      trace.error({ event: "inbox_failed", name, error: (error as Error)?.message }, `inbox${name ? `/${name}` : ""}: ${(error as Error)?.message}`);
    },
    onRejected({ name, message }) {
      trace.warn({ event: "task_rejected", name, message }, message);
      stderr.write(`! rejected inbox/${name}: ${message}\n`);
      say(`⚠️ <b>inbox/${escapeHtml(name)} was rejected</b> and moved to inbox/.rejected/:\n${escapeHtml(message)}`);
    },
  });
  const timezone = config.daemon.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
  const scheduler = createScheduler({
    dir: join(home, "schedules"),
    timezone,
    clock,
    store: {
      lastRun: (name) => store.lastRun(name),
      setLastRun: (name, at) => store.setLastRun(name, at),
    },
    async fire({ name, file, due, catchUp }) {
      const id = newId();
      const spec = toTaskSpec(file, { loaded, id, fileName: `schedules/${name}`, source: `schedule:${name}` });
      const result = freeName(join(home, "outbox"), `${name.replace(/\.md$/i, "")}-${slotLabel(due, timezone)}.md`);
      // The run and the schedule's cursor in one write: a crash cannot queue a slot twice, nor can two machines.
      try {
        await daemon.submit(id, spec, { origin: "schedule", name: result, ...(file.priority ? { priority: file.priority } : {}) }, { name, at: due });
      } catch (error) {
        if (!(error instanceof SlotTaken)) throw error;
        trace.info({ event: "schedule_taken", schedule: name, due }, `schedule ${name}: ${error.message}`);
        return false;
      }
      trace.info({ session: id, event: "schedule_fired", schedule: name, due, catch_up: catchUp }, `schedule ${name} fired${catchUp ? " (catching up)" : ""}`);
      return true;
    },
    report(event) {
      trace.warn({ event: `schedule_${event.kind}`, schedule: event.name, message: event.message }, event.message);
      stderr.write(`! ${event.message}\n`);
    },
  });

  // Notices of this machine reach Telegram whichever machine runs the bot (before the damage found at start is said),
  // a machine with no token of its own included.
  if (cluster) notices = clusterNotices({ cluster, daemon, bot: () => bot, notify: config.telegram.notify, ...(config.dashboard.public_url ? { dashboardUrl: config.dashboard.public_url } : {}), trace, now: clock.now });
  /** Apply and Discard pressed on another machine's bot for this machine's staged copies (cli/staged-elsewhere.ts). */
  const stagedHere = cluster && notices ? stagedActionsHere({ cluster, home, trace, tell: notices.tell }) : undefined;
  if (cluster && notices) reviews = clusterReviews({ cluster, bot: () => bot, notices, trace });
  for (const message of damage) say(`⚠️ ${escapeHtml(message)}`);
  damage = undefined;
  // What the last process logged but did not live to journal (a kill right after a session ended), before those sessions run again.
  for (const task of store.active().filter((candidate) => candidate.state === "running" || candidate.state === "waiting_approval")) {
    try {
      const added = memory.reconcile(task.id, await readSessionLog(join(runtime.sessionsDir, `${task.id}.jsonl`)).catch(() => []));
      if (added) trace.info({ session: task.id, event: "journal_reconciled", entries: added }, `journaled ${added} entries the last process logged but did not journal`);
    } catch (error) {
      trace.error({ session: task.id, event: "journal_failed", error: (error as Error).message }, `could not write the journal: ${(error as Error).message}`);
    }
  }
  // Before any session starts here: another machine's newer policy and servers, or this machine's change to them.
  await syncSettings?.().catch((error: unknown) => void trace.warn({ event: "shared_settings_failed", error: (error as Error).message }, `could not compare the shared settings with the store: ${(error as Error).message}`));
  const { resumed, failed } = await daemon.recover();
  const clusterLoop =
    cluster && joined
      ? await startClusterLoop({
          cluster,
          daemon,
          state: joined.state,
          concurrency: config.daemon.concurrency,
          clock,
          trace,
          telegramHere,
          ...clusterHeartbeat({ watch: storeWatch, trace, sharing: sharing!, sessions: sessions!, journal: journals!.mirror, spend: spend!, ...(stagedHere ? { stagedHere } : {}), ...(reviews ? { reviews } : {}), ...(notices ? { notices } : {}), ...(syncFiles ? { syncFiles } : {}), ...(syncSettings ? { syncSettings } : {}) }),
          atStart: () => joined.settleEnded((id) => endOf(join(runtime.sessionsDir, `${id}.jsonl`))),
        })
      : undefined;
  // A file moved to inbox/.done/ whose task was never recorded (a crash in between): queue it now.
  // Several machines: its task is in the shared store, not in this machine's state, until it is delivered here.
  const queuedElsewhere = new Set(cluster && unstarted?.length ? await storeWatch.retry(() => cluster.queuedNames(unstarted)) : []);
  for (const name of (unstarted ?? []).filter((each) => !queuedElsewhere.has(each))) {
    const id = newId();
    const spec = await specOf(name, id).catch((error: unknown) => void stderr.write(`! inbox/.done/${name}: ${(error as Error).message}\n`));
    if (spec) await daemon.submit(id, spec, { origin: "inbox", name });
  }
  const control = await startControlServer(home, daemon, approvals, {
    consolidate: () => memoryService.consolidate(),
    undo: async () => memoryService.undo(),
    memory: async () => memoryService.memoryText(),
    digest: async () => {
      const text = await memoryService.digest();
      say(text);
      return text;
    },
  }, cluster ? { view: (recent) => readClusterView(cluster, recent), get: (id) => cluster.get(id), events: (id) => readEvents(id) } : undefined);
  const jobs = startJobs({
    timezone,
    clock,
    lastRun: (name) => store.lastRun(name),
    setLastRun: (name, at) => store.setLastRun(name, at),
    report: (name, error) => trace.error({ event: "job_failed", job: name, error: (error as Error).message }, `${name} failed: ${(error as Error).message}`),
    warn: (name, message) => void (trace.warn({ event: "job_rare", job: name, message }, message), stderr.write(`! ${message}\n`)),
    jobs: memoryJobs({ config, clock, trace, memoryService, bot: () => bot, store, ...(cluster ? { cluster } : {}) }),
  });
  await inbox.start();
  await scheduler.start();
  // With several machines the bot runs on the one machine holding the Telegram lease, and moves when it stops answering.
  const telegramLease =
    cluster && makeBot
      ? startTelegramLease({
          cluster,
          clock,
          trace,
          stderr,
          pairing: createPairingStore(join(home, "state", "telegram"), clock),
          // Tests only: a shorter lease, so a takeover takes seconds instead of up to 20.
          ...(Number(loaded.env.NIGHTSHIFT_TELEGRAM_LEASE_MS) > 0 ? { ttlMs: Number(loaded.env.NIGHTSHIFT_TELEGRAM_LEASE_MS) } : {}),
          create: makeBot,
          changed(next) {
            bot = next;
            // Questions copied here while another machine ran the bot (it skips the ones already shown).
            if (next) for (const record of approvals.pending()) next.approver.notify(record);
          },
        })
      : undefined;
  bot?.start();
  dropStale();
  const probe = await probing;
  stderr.write(
    `Nightshift is running (pid ${process.pid}${cluster ? `, machine ${cluster.machine} on the shared store` : ""}): watching ${join(home, "inbox")}` +
      `${resumed ? `, resuming ${resumed} task${resumed > 1 ? "s" : ""}` : ""}${failed ? `, ${failed} failed after repeated crashes` : ""}.\n`,
  );
  try {
    requireApiKey(loaded.roles.main);
  } catch (error) {
    stderr.write(`! ${(error as Error).message} Until then every task fails with this reason.\n`);
  }
  for (const problem of loadAgents(join(home, "agents"), BUILTIN_TOOL_NAMES).problems) {
    stderr.write(`! ${problem.message} (this specialist is left out until the file is fixed)\n`);
    trace.warn({ event: "agent_file_problem", file: problem.file, message: problem.message }, problem.message);
  }
  if (bot && !bot.hasUsers()) stderr.write("Telegram: no one is paired yet; run `nightshift pair` and send the bot the code.\n");
  if (!token) stderr.write("Telegram is off (set TELEGRAM_BOT_TOKEN in the environment or in .env to steer Nightshift from your phone).\n");
  if (config.sandbox.mode === "off") stderr.write("! SANDBOX IS OFF (config sandbox.mode): commands run unconfined on this machine\n");
  else if (!probe.ok) stderr.write(`! sandbox unavailable, bash will be refused: ${probe.problem}\n`);
  trace.info({ event: "daemon_started", pid: process.pid, resumed, failed, sandbox: probe.kind, sandbox_ok: probe.ok }, "daemon started");
  // The journal the next consolidation reads: a line in it that does not read is said now, not only tonight.
  const memoryRuns = openMemoryRuns(join(home, "state")).read();
  // Several machines: state/memory.json holds every machine's cursor; this machine's journal is read from its own part.
  const cursor = cluster ? ownCursor(memoryRuns.cursor, cluster.machine) : memoryRuns.cursor;
  if (memoryRuns.damaged) {
    const file = join(home, "state", "memory.json");
    sayDamage({ event: "file_damaged", file, problem: memoryRuns.damaged }, `${file} DOES NOT READ (${memoryRuns.damaged}): the next memory consolidation reads the whole journal again and moves the file aside as memory.json.damaged-<time>`);
  }
  try {
    memory.journal.damaged(cursor);
  } catch {
    memory.journal.damaged(); // a cursor that is not an entry id (the consolidation says so): all of it
  }
  // After the ready line: Hono and its Node adapter take 50-100 ms to load, which start → ready
  // does not wait for. A port in use is said in one line and the daemon runs on without a dashboard.
  const dashboardStarting = (async () => {
    const { server, approver } = await serveDaemonDashboard({ loaded, clock, trace, runtime, daemon, approvals, memory, undo: () => memoryService.undo(), readEvents, ...(cluster ? { cluster } : {}), ...(sessions ? { sessions } : {}) });
    dashboard = approver;
    stderr.write(`Dashboard: http://127.0.0.1:${server.port} (\`nightshift dashboard\` prints a login link).\n`);
    return server;
  })().catch((error: unknown) => {
    stderr.write(`! ${(error as Error).message}\n`);
    trace.warn({ event: "dashboard_unavailable", port: config.dashboard.port, message: (error as Error).message }, (error as Error).message);
    return undefined;
  });

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await inbox.close();
      cancelStale();
      scheduler.close();
      const jobsDone = jobs.close(); // a nightly job finishing now still writes its cursor before the state closes
      await daemon.stop();
      await telegramLease?.stop();
      await sessions?.stop();
      // What the last sessions here spent, before this machine says it stopped.
      await spend?.publish().catch(() => {});
      spend?.stop();
      await clusterLoop?.stop();
      await stagedHere?.stop();
      // Answers given here to other machines' questions reach the store before it closes.
      await sharing?.sync().catch(() => {});
      await cluster?.close();
      unjournal();
      notices?.close();
      journalStop.abort();
      await journaling;
      await bot?.stop();
      await control.close();
      await (await dashboardStarting)?.close();
      await jobsDone;
      await runtime.close();
      store.close();
      trace.info({ event: "daemon_stopped" }, "daemon stopped");
      trace.flush();
      try {
        unlock();
      } catch (error) {
        // A read-only home: the lock file stays; its process is gone, so the next start takes it over.
        stderr.write(`! could not remove the daemon's lock file: ${storageMessage(error)}\n`);
      }
      resolveStopped();
    })());
  return { stop, stopped };
}

/** A schedule slot as a file-name part in the schedule's zone: 2026-11-24T0700. */
function slotLabel(at: number, timeZone: string): string {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).formatToParts(at).map((part) => [part.type, part.value]));
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}${parts.minute}`;
}

/** `name`, or `name-2`, `name-3`… when a result by that name exists. */
function freeName(folder: string, name: string): string {
  const stem = name.replace(/\.md$/i, "");
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? name : `${stem}-${n}.md`;
    if (!existsSync(join(folder, candidate))) return candidate;
  }
}
