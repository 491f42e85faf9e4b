/**
 * Runs every bench and prints markdown: the machine first, then one table per bench. Run with
 * `npm run bench` (`node bench/run.ts`). Figures are wall time on this machine, not pass/fail tests.
 */

import { cpus, freemem, platform, release, totalmem } from "node:os";
import { benchDurableAppend, benchHarnessOverhead, benchResume, formatFigures, type Figure } from "./runtime.ts";
import { benchSandbox, formatTable } from "./sandbox.ts";
import { benchConcurrency, benchIdle, benchPickup, benchStartup, benchStateHistory, formatRows, type Row } from "./daemon.ts";
import { benchMemoryGrowth } from "./daemon-memory.ts";
import { benchFanOut } from "./specialists.ts";
import { benchConsolidation } from "./memory.ts";
import { benchAnswerToResult, benchBacklog, benchFirstReply } from "./telegram.ts";
import { benchCli, benchEntryIdle } from "./cli.ts";
import { benchCron, formatCron } from "./cron.ts";
import { benchFormat } from "./format.ts";
import { benchPolicy } from "./policy.ts";
import { benchFirstRender, benchIdleDashboard, benchLiveEvents } from "./dashboard.ts";
import { benchAppend, benchClaim, benchFailover, benchMirror, benchSpread } from "./cluster.ts";

interface Bench {
  title: string;
  what: string;
  run(): Promise<string>;
}

const figures = (bench: () => Promise<Figure[]>) => async () => formatFigures(await bench());
const rows = (bench: () => Promise<Row[]>) => async () => formatRows(await bench());

const benches: Bench[] = [
  { title: "Harness overhead per step", what: "200-step sessions against the local Messages API stand-in, zero latency, a noop tool, real fdatasync", run: figures(() => benchHarnessOverhead()) },
  { title: "Durable append, step 10 vs step 1000", what: "realistic step batches appended with fdatasync, 5 runs of 1,005 steps", run: figures(() => benchDurableAppend()) },
  { title: "Resume a 1,000-step session", what: "readSessionLog + rebuild of a realistic 1,000-step log, median of 10", run: figures(() => benchResume()) },
  { title: "Pickup latency, file closed → session started", what: "`nightshift start` as a child process; 20 task files dropped one at a time into inbox/; close → the session's session_start in its log", run: rows(() => benchPickup()) },
  { title: "50 tasks at concurrency 50", what: "the daemon in this process (event loop watched), the stand-in in a child answering in 200 ms; 10 model calls per task (9 list_files calls, then an answer); 50 at once against one alone", run: rows(() => benchConcurrency()) },
  { title: "Idle daemon", what: "`nightshift start` as a child process with nothing queued, watched for 10 s from its ready line: RSS, CPU time, model requests", run: rows(() => benchIdle()) },
  { title: "CLI commands, whole process", what: "`nightshift status`, `approve`, `deny`, `cancel`, `pair --list`, `--help` and `--version` with no daemon, through dist/ and through package.json's bin, interleaved with `node -e 0`, median of 15; peak RSS from GNU time", run: rows(() => benchCli()) },
  { title: "The daemon idle, by entry point", what: "`nightshift start` through dist/ (`npm start`, the service) and through package.json's bin (`npx nightshift start`): VmRSS after the ready line and 5 s of nothing to do", run: rows(() => benchEntryIdle()) },
  { title: "Start → ready", what: "spawn of `nightshift start` → its \"Nightshift is running\" line, median of 5: empty home, 20 finished tasks, 20 interrupted sessions to resume", run: rows(() => benchStartup()) },
  { title: "State changes as history grows", what: "`openState` + one task's state change (queued ↔ running) with 100, 1,000 and 10,000 finished tasks in the state, a home under /var/tmp; open median of 5, change median of 21", run: rows(() => benchStateHistory()) },
  { title: "Daemon memory as tasks accumulate", what: "`nightshift start` as a child process with Telegram on, 1,500 task files (two model calls and a sandboxed bash command each) dropped 50 at a time: peak RSS after 100, 500, 1,000 and 1,500 tasks, and after 100 with a 5 MB MEMORY.md", run: rows(() => benchMemoryGrowth()) },
  { title: "Fan-out of 4 specialists", what: "the main agent consults 4 specialists in parallel, each answering after 1 s at the Messages API stand-in; wall time from its consult reply to its next request (the reports), median of 5", run: rows(() => benchFanOut()) },
  { title: "Tokens per consolidation as the journal grows", what: "the consolidator against the Messages API stand-in with 50 new journal entries per run, the journal holding 100, 1,000 and 10,000 entries in all", run: rows(() => benchConsolidation()) },
  { title: "Telegram: update → first reply", what: "the daemon and its grammy bot in this process, the Bot API stand-in, system clock; 40 `/help` commands and 40 new-task messages, each from its own user (no per-chat limit in the way): update pushed → the reply's sendMessage received", run: rows(() => benchFirstReply()) },
  { title: "Telegram: answer → the sendMessage carrying it", what: "the daemon and its grammy bot in this process, both stand-ins answering at once, system clock; ten plain messages from one user, each its own task, one at a time: 3 s after each result (a chat under its limit), then back to back (over it): the Messages API stand-in's final answer → the result's sendMessage received", run: rows(async () => [...(await benchAnswerToResult(3_000)), ...(await benchAnswerToResult(0))]) },
  { title: "Telegram: 200 notifications after an outage", what: "the outbox alone against the Bot API stand-in: 20 chats × 10 messages stored while Telegram is down, then it comes back", run: rows(() => benchBacklog()) },
  { title: "Schedules against crontab(5) and cronie", what: "Nightshift's slots, croner as it comes and croner with `fixedTimeRule: \"no-wildcard\"`, each against a model of cronie's rules (bench/cron.ts): the first 10 runs after 2026-01-01 and every run within 2 h of each 2026 DST change, per expression and zone", run: async () => formatCron(benchCron()) },
  { title: "Formatting answers for Telegram", what: "`markdownToTelegramHtml` then `splitForTelegram`, as the bot sends a result: a 60 KB answer (median of 20), pathological input (one run each), and the parts a link-heavy answer becomes", run: rows(() => benchFormat()) },
  { title: "Dashboard: first render at 390×844", what: "headless Chromium (chromium-headless-shell) signed in to a `nightshift start` child: Now with 1,000 and 10,000 tasks in the state, Tasks with 10,000, a Task whose log has 5,000 events; a new tab per run, median of 7 after one untimed run", run: rows(() => benchFirstRender()) },
  { title: "Dashboard: live updates into one Task page", what: "the dashboard app served on loopback, a signed-in 390×844 headless Chromium tab on a running task, a writer appending each event to the log and emitting it as a session does: one turn (4 events) at a time, then a burst of 2,000 events", run: rows(() => benchLiveEvents()) },
  { title: "Dashboard: the idle daemon", what: "`nightshift start` with nothing to do, 10 s from its dashboard line: the dashboard served with nobody signed in, with a tab open on Now, and not served (its port taken)", run: rows(() => benchIdleDashboard()) },
  { title: "Policy checks per bash call", what: "`decide` for the command and `pathArguments` with a `decide` per path, over the 417-line ordinary corpus with the default rules and a deny rule for `git push`; median of 21 passes after one untimed pass", run: rows(() => benchPolicy()) },
  { title: "Several machines: claim latency", what: "a PostgreSQL server of its own on loopback (fsync on): 300 tasks enqueued, then claimed one at a time, each timed; a claim of the empty queue", run: rows(() => benchClaim()) },
  { title: "Several machines: a session event append, PostgreSQL against the JSONL file", what: "500 steps (1,000 appends: model_response + tool_start, then tool_end) into the JSONL log with fdatasync under /var/tmp, and into runtime/store/pg-sessions.ts on a loopback server with fsync on", run: rows(() => benchAppend()) },
  { title: "Several machines: how far behind another machine sees a session", what: "a 300-step session written with fdatasync, the mirror asked after each append as the daemon's event asks it (tasks/session-mirror.ts): append → the store's notification of it on another connection", run: rows(() => benchMirror()) },
  { title: "Several machines: 60 tasks on three machines against one", what: "real `nightshift start` daemons (concurrency 1 each) on one database, 60 task files dropped at once into one machine's inbox/, the Messages API stand-in answering each task's one request after 500 ms: drop → the 60th result in that machine's outbox/", run: rows(() => benchSpread()) },
  { title: "Several machines: Telegram failover", what: "two real daemons with the 15 s Telegram lease, the Bot API stand-in; the bot's machine stopped with SIGSTOP and a message sent at once: stop → another machine runs the bot, and → that message's answer (median of 3)", run: rows(() => benchFailover()) },
  { title: "Sandbox cost per command", what: "`true` and a curl GET, bare, unsandboxed, under bubblewrap and under sandbox-runtime (srt), each also with the network proxy, 20 runs each (target: ≤ 50 ms added)", run: async () => formatTable(await benchSandbox()) },
];

export function describeMachine(): string {
  const cores = cpus();
  const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
  return [
    "| machine | |",
    "|---|---|",
    `| os | ${platform()} ${release()} |`,
    `| cpu | ${cores[0]?.model.trim() ?? "unknown"} |`,
    `| cores | ${cores.length} |`,
    `| memory | ${gib(totalmem())} (${gib(freemem())} free) |`,
    `| node | ${process.version} |`,
  ].join("\n");
}

if (import.meta.main) {
  console.log(`# Nightshift benchmarks, ${new Date().toISOString().slice(0, 10)}\n\n${describeMachine()}\n`);
  for (const bench of benches) {
    const started = performance.now();
    let body: string;
    try {
      body = await bench.run();
    } catch (error) {
      body = `not run: ${(error as Error).message}`; // e.g. no bubblewrap on this machine
    }
    console.log(`## ${bench.title}\n\n${bench.what} (${((performance.now() - started) / 1000).toFixed(1)} s)\n\n${body}\n`);
  }
}
