export { createApprovalStore, damageMessage, type AnswerResult, type ApprovalAnswer, type ApprovalRecord, type ApprovalStore, type Approver, type DamagedFile } from "./approvals.ts";
export { systemClock, type Clock } from "./clock.ts";
export {
  configJsonSchema,
  configSchema,
  expandHome,
  loadConfig,
  machineName,
  parseConfigText,
  requireApiKey,
  resolveHome,
  storeSetting,
  sharedMachine,
  storeUrl,
  type Config,
  type LoadedConfig,
  type ResolvedRole,
  type RoleName,
} from "./config.ts";
export { rebuild, type SessionState } from "./conversation.ts";
export { formatDuration, parseDuration } from "./duration.ts";
export { ConfigError, isUserError, ModelError, PermissionDenied, SandboxUnavailable, SessionBusy, TaskFileError } from "./errors.ts";
export type { EventOf, SessionEvent, SessionStatus, SpecialistReport, TaskSpec, Usage } from "./events.ts";
export { continueSession, resultOf as resultOfEnd, resumeSession, Shutdown, startSession, type SessionDeps, type SessionResult } from "./loop.ts";
export { createModelClient, type ModelClient } from "./model.ts";
export { costOf, spentIn } from "./pricing.ts";
export { buildSystem, taskMessage, type Prefix } from "./prompt.ts";
export { createRuntime, createSandbox, createWorkdir, newSessionId, pathRules, type Runtime } from "./runtime.ts";
export { decide, DEFAULT_RULES, rulesFromConfig, type Decision, type PermissionRequest, type Rule } from "./policy/policy.ts";
export { createBwrapSandbox, createUnsandboxed, scrubEnv, type Sandbox, type SandboxProbe } from "./sandbox/index.ts";
export { openSessionLog, readSessionLog, readSessionLogFrom, SessionLogError, type SessionLog } from "./session-log.ts";
export { lockSession, sessionLocked } from "./session-lock.ts";
export { createTraceLogger, traceEvent, type TraceLogger } from "./trace.ts";
export { createWriteGate, storageFault, storageMessage, type OutageChange, type StorageFault, type StorageOutage, type WriteGate } from "./write-gate.ts";
export { parseYaml, YamlSyntaxError } from "./yaml.ts";
export { createMemoryTools, type MemoryAccess } from "./tools/memory.ts";
export { createDailySpend, sessionLogs, type DailySpend, type MachineDailySpend } from "./daily-spend.ts";
export { BUILTIN_TOOL_NAMES, DEFAULT_AGENTS, loadAgents, type AgentProblem, type AgentSpec } from "./specialists/agents.ts";
