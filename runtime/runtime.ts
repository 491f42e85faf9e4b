import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, realpathSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import type { Clock } from "./clock.ts";
import { requireApiKey, sandboxBackend, type LoadedConfig, type ResolvedRole, type RoleName } from "./config.ts";
import type { SessionEvent, TaskSpec } from "./events.ts";
import { SandboxUnavailable } from "./errors.ts";
import { createStage, mountStage, readStage, summarizeStage } from "./stage/overlay.ts";
import { createDailySpend, type DailySpend, type MachineDailySpend } from "./daily-spend.ts";
import { BUILTIN_TOOL_NAMES, loadAgents } from "./specialists/agents.ts";
import { createSpecialistRunner } from "./specialists/run.ts";
import type { McpHost } from "./mcp/host.ts";
import { mcpGenerations, type McpLease, type McpServers, type Started } from "./mcp/generations.ts";
import type { SharedSettings } from "./shared-settings.ts";
import { currentPins, type SharedPins } from "./mcp/pins.ts";
import { offeredTools, type OfferedTools } from "./mcp/tools.ts";
import { createCallTool, createToolSearch, toolCatalog, type ServerTools } from "./mcp/search.ts";
import { dropReview, reviewOf, saveReview, type ToolReview } from "./mcp/reviews.ts";
import { createConsultTool } from "./tools/consult.ts";
import { createMemoryTools, type MemoryAccess } from "./tools/memory.ts";
import { createSkillTool, reloadSkill } from "./tools/skill.ts";
import { loadSkills, skillCatalog } from "./skills/library.ts";
import { createApprovalStore, type ApprovalStore, type Approver, type DamagedFile } from "./approvals.ts";
import { continueSession, resumeSession, startSession, type SessionDeps, type SessionPermissions, type SessionResult } from "./loop.ts";
import { rulesFromConfig } from "./policy/policy.ts";
import { createModelClient, type ModelClient } from "./model.ts";
import type { Prefix } from "./prompt.ts";
import { startNetworkProxy, type Sandbox } from "./sandbox/index.ts";
import { lockSession } from "./session-lock.ts";
import { openSessionLog, readSessionLog, SessionLogError } from "./session-log.ts";
import type { WriteGate } from "./write-gate.ts";
import type { Tool, WorkdirView } from "./tools/index.ts";
import { createNetworkRegistry, createSandbox, createTools, pathRules, proxySocketPath, realOrResolved } from "./sandbox-setup.ts";

export interface RuntimeOptions {
  loaded: LoadedConfig;
  clock: Clock;
  /** Identity and memory text (memory/ provides it; runtime/ does not read those files itself). */
  loadPrefix(): Promise<Prefix>;
  /** Replaces the sandbox chosen by config (tests). */
  sandbox?: Sandbox;
  /** Long-term memory for `remember` and `recall` (memory/ provides it). Without it, the tools are left out. */
  memory?: MemoryAccess;
  /** Warnings for every session's log and trace (memory over its cap). */
  notices?(): string[];
  /** Who can answer approvals right now (the terminal, Telegram). None: every ask is denied at once. */
  approvers?(): Approver[];
  /** A server's tools are new or changed since approved: show the person (once per listing). Must not throw. */
  onToolReview?(review: ToolReview): void;
  /** The server's pending review is settled: its tools are approved now (here, on the CLI, or on another machine). Must not throw. */
  onToolReviewSettled?(server: string): void;
  /** Several machines on one PostgreSQL: tool approvals of every machine count here (runtime/store/pg-pins.ts). */
  sharedPins?: SharedPins;
  /** The daemon's: sessions wait out a full or read-only disk instead of failing (runtime/write-gate.ts). */
  storage?: WriteGate;
  /** A damaged file of the runtime's (an approval's) was moved aside: say so. Must not throw. */
  onDamaged?(damage: DamagedFile): void;
}

export interface RunOptions {
  signal?: AbortSignal;
  emit?(sessionId: string, event: SessionEvent): void;
}

/** Everything a session needs, built once from config; the CLI and the daemon share it. */
export interface Runtime {
  readonly sandbox: Sandbox;
  readonly approvals: ApprovalStore;
  readonly sessionsDir: string;
  /** Today's spending as the daily budget counts it: the Now page shows this, not a count of its own. */
  readonly daily: MachineDailySpend;
  newSessionId(): string;
  start(id: string, task: TaskSpec, options?: RunOptions): Promise<SessionResult>;
  resume(id: string, options?: RunOptions): Promise<SessionResult>;
  /** A follow-up message for a finished session. Idempotent: a follow-up already in the log (a crash after it was written) is not added twice. */
  continue(id: string, text: string, options?: RunOptions, since?: number): Promise<SessionResult>;
  /** The model client for a role name or a model id (an id runs on the main role's endpoint). */
  modelFor(model: string): ModelClient;
  /**
   * The permission policy and MCP servers changed while the process runs (several machines: another
   * machine's config.yaml). Sessions that start from now on use them; running ones keep theirs.
   * Says which of the two changed.
   */
  reconfigure(settings: SharedSettings): { policy: boolean; mcp: boolean };
  /** Stops the network proxy. Sessions must have ended. */
  close(): Promise<void>;
}

/**
 * Builds the runtime once per process. With the bubblewrap sandbox it starts the network proxy
 * (one Unix socket, private to this user) that every command's connections go through.
 */
export { createSandbox, createTools, pathRules } from "./sandbox-setup.ts";

export async function createRuntime(options: RuntimeOptions): Promise<Runtime> {
  const { loaded, clock } = options;
  const { config, home } = loaded;
  const sessionsDir = join(home, "sessions");
  const network = createNetworkRegistry({ allowPrivate: config.sandbox.allow_private_network, dashboardPort: config.dashboard.port });
  const backend = sandboxBackend(config.sandbox.mode);
  // srt can only point commands at a TCP port (Seatbelt allows one loopback port): the proxy listens there too.
  const proxy = options.sandbox || backend === "off" ? undefined : await startNetworkProxy({ socketPath: proxySocketPath(), decide: network.decide, tcp: backend === "srt" });
  const sandbox = options.sandbox ?? createSandbox(loaded, proxy);
  const paths = pathRules(loaded);
  const approvals = createApprovalStore(join(home, "state", "approvals"), { clock, expireMs: config.approvals.expire, ...(options.onDamaged ? { onDamaged: options.onDamaged } : {}) });
  const permissions: SessionPermissions = {
    rules: rulesFromConfig(config.permissions),
    home: realOrResolved(home),
    userHome: loaded.env.HOME || homedir(),
    approvals: { store: approvals, approvers: options.approvers ?? (() => []) },
  };
  const clients = new Map<string, ModelClient>();
  const daily = await createDailySpend({ sessionsDir, clock, limitUsd: config.budget.daily_usd });

  const modelFor = (model: string): ModelClient => {
    const cached = clients.get(model);
    if (cached) return cached;
    const role: ResolvedRole = isRole(model) ? loaded.roles[model] : { ...loaded.roles.main, model };
    const client = createModelClient(role, requireApiKey(role), { clock, retry: config.model_retries });
    clients.set(model, client);
    return client;
  };

  const agentsDir = join(home, "agents");
  const builtins = createTools(sandbox, {
    timeoutMs: config.sandbox.command_timeout,
    maxOutputBytes: config.sandbox.max_output_bytes,
    userHome: loaded.env.HOME || homedir(),
    ...(proxy ? { network: network.registry } : {}),
  });
  const agents = () => loadAgents(agentsDir, BUILTIN_TOOL_NAMES).agents;
  // The main agent's tools: the built-ins and consult, listing the specialists there are now.
  const tools = [...builtins, ...(options.memory ? createMemoryTools(options.memory) : []), createConsultTool([...agents().values()])];
  const skillsHome = realOrResolved(home);
  const skillTool = createSkillTool(skillsHome);
  /**
   * The skills catalog as it stands now, and what the trace should say about the rest. A session
   * gets the skill tool only when some skill is ready as it starts, so a home without skills sends
   * no extra bytes; the catalog is read again after a compaction, like identity and memory.
   */
  const skillsNow = () => {
    const entries = loadSkills(skillsHome);
    const catalog = skillCatalog(entries);
    const notices = entries.flatMap((entry) => (entry.problem ? [`skill withheld: ${entry.problem}`] : []));
    if (catalog.leftOut.length) notices.push(`the skills catalog is capped at 2 KB; not described in it: ${catalog.leftOut.join(", ")} (shorten descriptions, or remove skills with \`nightshift skills remove NAME\`)`);
    return { catalog: catalog.text, notices };
  };

  /**
   * MCP servers' pinned tools. The servers start when the first session starts (not when the
   * daemon does: a daemon with nothing to run starts nothing), one process per server for as long
   * as the `mcp` setting stays as it is, inside their own sandbox. Pins are read per session (with several
   * machines, every machine's approvals), so an approval counts from the next session on; within a
   * session the tool list never changes (the cached prefix).
   */
  const startMcp = async (servers: McpServers): Promise<Started> => {
    const names = Object.keys(servers);
    const none = { servers: [], notices: [], close: async () => {} };
    if (names.length === 0) return none;
    let host: McpHost;
    try {
      // Imported here: the MCP client costs about 0.5 s to load, which a home without servers never pays.
      const { openMcpHost } = await import("./mcp/host.ts");
      host = await openMcpHost({ ...loaded, config: { ...config, mcp: { servers } } }, options.sandbox ? { sandbox: options.sandbox } : {});
    } catch (error) {
      return { ...none, notices: [`MCP servers not started: ${(error as Error).message}`] };
    }
    const started = await Promise.allSettled(names.map((name) => host.connect(name)));
    return {
      servers: started.flatMap((outcome) => (outcome.status === "fulfilled" ? [outcome.value] : [])),
      notices: started.flatMap((outcome, index) => (outcome.status === "rejected" ? [`MCP server \`${names[index]}\` offers no tools: ${(outcome.reason as Error).message}`] : [])),
      close: () => host.close().catch(() => {}),
    };
  };
  /** One generation of servers per `mcp` setting: a change taken in while the daemon runs reaches the sessions that start after it (runtime/mcp/generations.ts). */
  const mcpRuns = mcpGenerations(startMcp, config.mcp.servers);
  const mcpNow = async (lease: McpLease): Promise<{ servers: ServerTools[]; notices: string[] }> => {
    const { servers, notices } = await lease.started;
    const offered = await Promise.all(servers.map(async (server): Promise<OfferedTools & { server: string }> => {
      try {
        const pins = await currentPins(home, server.name, server.tools, options.sharedPins);
        // New or changed tools are shown to the person once per listing; an approved listing's review is dropped.
        const review = reviewOf(server.name, server.tools, pins, new Date(clock.now()));
        if (!review) {
          if (dropReview(home, server.name)) options.onToolReviewSettled?.(server.name);
        } else if (saveReview(home, review)) options.onToolReview?.(review);
        return { server: server.name, ...offeredTools(server, pins, permissions.rules) };
      } catch (error) {
        return { server: server.name, tools: [], notices: [`MCP server \`${server.name}\` offers no tools: ${(error as Error).message}`] };
      }
    }));
    return { servers: offered, notices: [...notices, ...offered.flatMap((entry) => entry.notices)] };
  };
  /**
   * MCP tools load on demand: the session gets `tool_search` (and `call_tool` where the endpoint
   * takes no tool references), the prompt a catalog line per server, and the tools stay deferred.
   */
  const deferredMcp = (offered: { servers: ServerTools[] }, references: boolean) => {
    const deferred = offered.servers.flatMap((entry) => entry.tools);
    if (deferred.length === 0) return undefined;
    return { deferred, tools: [createToolSearch(deferred, references), ...(references ? [] : [createCallTool(deferred)])], catalog: toolCatalog(offered.servers, references) };
  };

  /** Every session's trace says loudly when commands are not confined. */
  const sandboxNotices = async (): Promise<string[]> => {
    const extra = options.notices?.() ?? [];
    if (backend === "off") return ["SANDBOX IS OFF (config sandbox.mode): commands run unconfined on this machine, with its network and files", ...extra];
    const probe = await sandbox.probe();
    return probe.ok ? extra : [`sandbox unavailable, so bash is refused: ${probe.problem}`, ...extra];
  };

  const runner = createSpecialistRunner({
    agents,
    concurrency: config.specialists.concurrency,
    async runChild({ id, agent, task, pool, signal }) {
      const logPath = join(sessionsDir, task.parent!.session, `${id}.jsonl`);
      const existing = existsSync(logPath) ? await readSessionLog(logPath) : [];
      const end = existing.findLast((event) => event.type === "session_end");
      if (end) return { status: end.status, answer: end.answer, ...(end.reason ? { reason: end.reason } : {}), turns: end.turns, costUsd: end.cost_usd }; // finished before a restart: not recomputed
      const child = { logPath, tools: builtins.filter((tool) => agent.tools.includes(tool.name)), prefix: { identity: agent.prompt, memory: "" }, label: agent.name, pool };
      const deps = await depsFor(id, task.model, childEmit.get(task.parent!.session), child, signal);
      // A specialist of a staged task reads and runs commands in the same staged copy.
      const parentView = stageViews.get(task.parent!.session);
      if (parentView) deps.view = parentView;
      try {
        return existing[0]?.type === "session_start" ? await resumeSession(deps, signal) : await startSession(task, deps, signal);
      } finally {
        await deps.release();
      }
    },
  });
  /** Each running top-level session's emit, for its specialists' events. */
  const childEmit = new Map<string, RunOptions["emit"]>();
  /** Each running staged session's view, which its specialists share. */
  const stageViews = new Map<string, WorkdirView>();

  /**
   * A staged task's copy (runtime/stage/overlay.ts): made at its first start, mounted for each run
   * and shared by its specialists; what the task wrote stays under state/stages/<id>/ between runs.
   * Only bubblewrap can enter the copy's namespace; elsewhere a staged task is refused, never run
   * on the folder itself.
   */
  type RunDeps = SessionDeps & { release(): Promise<void>; changes?(): NonNullable<SessionResult["staged"]> };
  const withStage = async (id: string, task: TaskSpec, deps: RunDeps): Promise<RunDeps> => {
    if (!task.stage) return deps;
    try {
      if (backend !== "bwrap") throw new SandboxUnavailable(`task ${id} works on a staged copy of ${task.workdir}, which needs the bwrap sandbox on Linux (this one is ${backend}); set stage: false in the task to let it work in the folder itself`);
      if (!readStage(home, id)) createStage(home, id, task.workdir, clock.now());
      const mount = await mountStage(home, id);
      const view: WorkdirView = { toView: mount.toView, stage: { pid: mount.pid, merged: mount.merged, original: mount.info.original } };
      stageViews.set(id, view);
      return {
        ...deps,
        view,
        /** What the copy holds now, for the result: read while it is still mounted. */
        changes: () => {
          const { diff, ...summary } = summarizeStage(home, mount, 1_000_000);
          return { ...summary, ...(diff ? { diff } : {}) };
        },
        release: async () => {
          stageViews.delete(id);
          await deps.release();
          await mount.close();
        },
      };
    } catch (error) {
      await deps.release();
      throw error;
    }
  };

  /** The session's lock and open log; with `options.storage`, a full or read-only disk is waited out (a lock or header cut short is taken over next try). */
  const openLog = (id: string, logPath: string, signal?: AbortSignal) => {
    const open = async () => {
      const unlock = lockSession(logPath);
      const log = await openSessionLog(logPath, id, { now: clock.now }).catch((error: unknown) => {
        unlockQuietly(unlock);
        throw error;
      });
      return { log, unlock };
    };
    return options.storage ? options.storage.retry(`the session log of ${id}`, open, signal) : open();
  };

  const depsFor = async (id: string, model: string, emit?: RunOptions["emit"], child?: ChildOptions, signal?: AbortSignal): Promise<SessionDeps & { release(): Promise<void> }> => {
    const role = isRole(model) ? loaded.roles[model] : loaded.roles.main;
    const logPath = child?.logPath ?? join(sessionsDir, `${id}.jsonl`);
    mkdirSync(dirname(logPath), { recursive: true });
    if (!child) childEmit.set(id, emit);
    const skills = child ? undefined : skillsNow();
    const client = modelFor(model);
    const mcpLease = child ? undefined : mcpRuns.acquire();
    const mcp = mcpLease && (await mcpNow(mcpLease).catch((error: unknown) => (mcpLease.release(), Promise.reject(error))));
    const lazy = mcp && deferredMcp(mcp, client.toolReferences === true);
    const { log, unlock } = await openLog(id, logPath, signal).catch((error: unknown) => (mcpLease?.release(), Promise.reject(error)));
    if (log.torn) emit?.(id, log.torn); // in the log already; the trace says it too
    return {
      log,
      model: client,
      small: modelFor("small"),
      tools: child?.tools ?? [...tools, ...(skills?.catalog ? [skillTool] : []), ...(lazy?.tools ?? [])],
      ...(lazy ? { deferred: lazy.deferred } : {}),
      clock,
      loadPrefix: child
        ? async () => child.prefix
        : async () => ({ ...(await options.loadPrefix()), ...(skills?.catalog ? { skills: skillsNow().catalog } : {}), ...(lazy?.catalog ? { tools: lazy.catalog } : {}) }),
      ...(skills?.catalog ? { reloadSkill: (name: string) => reloadSkill(skillsHome, name) } : {}),
      prices: config.prices,
      compaction: { threshold: config.compaction.threshold, keepRecentTurns: config.compaction.keep_recent_turns, contextWindow: role.context_window },
      paths,
      permissions: child ? { ...permissions, label: child.label } : permissions,
      notices: [...(await sandboxNotices()), ...(skills?.notices ?? []), ...(mcp?.notices ?? [])],
      sandbox: sandbox.kind,
      daily,
      ...(options.storage ? { storage: options.storage } : {}),
      ...(child ? { pool: child.pool } : { specialists: runner, reviewRounds: config.specialists.review_rounds }),
      ...(emit ? { emit: (event: SessionEvent) => emitWithParent(emit, id, event, child) } : {}),
      release: async () => {
        await log.close();
        unlockQuietly(unlock);
        mcpLease?.release();
        if (!child) childEmit.delete(id);
      },
    };
  };

  return {
    sandbox,
    approvals,
    sessionsDir,
    daily,
    newSessionId: () => newSessionId(clock.now()),
    async start(id, task, runOptions = {}) {
      const deps = await withStage(id, task, await depsFor(id, task.model, runOptions.emit, undefined, runOptions.signal));
      try {
        return withChanges(await startSession(task, deps, runOptions.signal), deps);
      } finally {
        await deps.release();
      }
    },
    async resume(id, runOptions = {}) {
      const first = (await readSessionLog(join(sessionsDir, `${id}.jsonl`)))[0];
      // Killed before its first event: what the task was is not in the log (the daemon starts such a task afresh from its state).
      if (first === undefined) throw new SessionLogError(`session ${id} never started (its log holds no event), so there is nothing to resume; run the task again`);
      const model = first.type === "session_start" ? first.task.model : "main";
      const plain = await depsFor(id, model, runOptions.emit, undefined, runOptions.signal);
      const deps: RunDeps = first?.type === "session_start" ? await withStage(id, first.task, plain) : plain;
      try {
        return withChanges(await resumeSession(deps, runOptions.signal), deps);
      } finally {
        await deps.release();
      }
    },
    async continue(id, text, runOptions = {}, since) {
      const events = await readSessionLog(join(sessionsDir, `${id}.jsonl`));
      const first = events[0];
      if (first?.type !== "session_start") throw new Error(`session ${id} has no start in its log, so there is nothing to continue`);
      // Taken in already (a crash after it was written, or after the session it started ended): resume, never add it twice.
      const lastEnd = events.findLastIndex((event) => event.type === "session_end");
      const taken = events.some((event, index) => event.type === "user" && event.text === text && (since !== undefined ? event.at >= since : index > lastEnd));
      const deps = await withStage(id, first.task, await depsFor(id, first.task.model, runOptions.emit, undefined, runOptions.signal));
      try {
        return withChanges(taken ? await resumeSession(deps, runOptions.signal) : await continueSession(text, deps, runOptions.signal), deps);
      } finally {
        await deps.release();
      }
    },
    modelFor,
    reconfigure(settings) {
      const rules = rulesFromConfig(settings.permissions);
      const policy = JSON.stringify(rules) !== JSON.stringify(permissions.rules);
      // A session reads the rules once, as it starts (loop.ts builds its gate then).
      permissions.rules = rules;
      return { policy, mcp: mcpRuns.replace(settings.mcp.servers) };
    },
    close: async () => {
      await mcpRuns.close();
      await sandbox.close?.();
      await proxy?.close();
    },
  };
}

/** On a read-only disk a session's lock file stays: stale once this run is over, a later run takes it over. */
function unlockQuietly(unlock: () => void): void {
  try {
    unlock();
  } catch {
    // the read-only disk is said where a write waits for it
  }
}

/** A staged task's result says what its copy holds (read before the copy is unmounted); a stopped one's does not. */
function withChanges(result: SessionResult, deps: { changes?(): NonNullable<SessionResult["staged"]> }): SessionResult {
  if (!deps.changes || result.status === "interrupted") return result;
  try {
    return { ...result, staged: deps.changes() };
  } catch {
    return result; // the copy could not be read: `nightshift changes` says more
  }
}

interface ChildOptions {
  logPath: string;
  tools: Tool[];
  prefix: Prefix;
  label: string;
  pool: DailySpend;
}

/**
 * A specialist's events go out under its own session id; its approvals also under the parent's, so
 * whoever follows the parent (the daemon's state, Telegram) sees it waiting.
 */
function emitWithParent(emit: NonNullable<RunOptions["emit"]>, id: string, event: SessionEvent, child?: ChildOptions): void {
  emit(id, event);
  if (child && (event.type === "approval_requested" || event.type === "approval_answered")) emit(id.split(".")[0]!, event);
}

function isRole(model: string): model is RoleName {
  return model === "main" || model === "specialist" || model === "small";
}

/** Sortable and readable: 20261124-041900-3fa2. */
export function newSessionId(now: number): string {
  const stamp = new Date(now).toISOString().replace(/[-:T]/g, "").slice(0, 14);
  return `${stamp.slice(0, 8)}-${stamp.slice(8)}-${randomBytes(4).toString("hex")}`;
}

/** A fresh folder under workspace/ for a task without a workdir. */
export function createWorkdir(home: string, id: string): string {
  const dir = join(home, "workspace", id);
  mkdirSync(dir, { recursive: true });
  return realpathSync(dir);
}
