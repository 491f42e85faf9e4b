import type { ApprovalStore, Approver } from "../approvals.ts";
import type { Clock } from "../clock.ts";
import type { SessionEvent } from "../events.ts";
import { within } from "../tools/paths.ts";
import { decide, describe, toolGrantTarget, type Decision, type Grant, type PermissionRequest, type PolicyPlaces, type Rule, type TaskPermissions } from "./policy.ts";

/** Everything a session's permission checks need; built once per session. */
export interface GateOptions {
  session: string;
  rules: readonly Rule[];
  places: PolicyPlaces;
  task?: TaskPermissions;
  /** Undefined: nobody can answer, so every ask is denied at once. */
  approvals?: { store: ApprovalStore; approvers(): Approver[] };
  clock: Clock;
  /** A specialist's name, shown with its approvals. */
  label?: string;
  /** One approval at a time per session (a command's parallel connections would otherwise ask at once). */
  asking?: { tail: Promise<unknown> };
  /** Approvals whose answers this session has already used: never reused for another call. */
  used?: Set<string>;
  /**
   * The workdir is a staged copy: a write inside it that would ask is allowed, since the person
   * reviews the whole change before it is applied. Denies still hold.
   */
  staged?: boolean;
}

export interface CallInfo {
  toolUseId: string;
  tool: string;
  input: unknown;
}

export type GateResult = { allowed: true } | { allowed: false; message: string };

/**
 * Checks a tool call's requests against the policy, one by one, recording each decision (with the
 * rule) through `record`. An `ask` becomes a durable approval and waits for its answer; after a
 * restart the same approval is found again rather than asked twice. Grants live in `grants`.
 */
export async function checkRequests(
  requests: readonly PermissionRequest[],
  call: CallInfo,
  options: GateOptions,
  grants: Grant[],
  record: (...events: SessionEvent[]) => Promise<void>,
  signal: AbortSignal,
): Promise<GateResult> {
  for (const request of requests) {
    const decided = decide(request, options.rules, options.places, options.task, grants);
    const reviewedLater = options.staged && decided.action === "ask" && request.kind === "write" && within(request.path, options.places.workdir);
    const decision: Decision = reviewedLater ? { ...decided, action: "allow", rule: undefined, reason: "a staged copy: you review the changes before they are applied" } : decided;
    await record({ type: "permission", at: options.clock.now(), id: call.toolUseId, tool: call.tool, kind: decision.grant.kind, target: targetOf(request), action: decision.action, reason: decision.rule ? describe(decision.rule) : decision.reason });
    if (decision.action === "allow") continue;
    if (decision.action === "deny") return { allowed: false, message: `Denied: ${summarize(request, decision)}: ${decision.reason}. This is a hard rule: do not try another way around it.` };
    const queue = (options.asking ??= { tail: Promise.resolve() });
    const turn = queue.tail.then(() => askHuman(request, decision, call, options, record, signal));
    queue.tail = turn.catch(() => {});
    const answer = await turn;
    if (answer.decision === "once") continue;
    if (answer.decision === "task") {
      grants.push(decision.grant);
      await record({ type: "grant", at: options.clock.now(), kind: decision.grant.kind, target: decision.grant.target });
      continue;
    }
    const why = answer.decision === "expired" ? "nobody answered in time" : answer.decision === "unreachable" ? answer.reason : answer.reason ? `the user said: ${answer.reason}` : "the user said no";
    return { allowed: false, message: `Not approved: ${summarize(request, decision)} (${decision.reason}); ${why}. Do not retry it; continue without it or explain what you need.` };
  }
  return { allowed: true };
}

type HumanAnswer = { decision: "once" | "task" | "deny" | "expired"; reason?: string } | { decision: "unreachable"; reason: string };

async function askHuman(
  request: PermissionRequest,
  decision: Decision,
  call: CallInfo,
  options: GateOptions,
  record: (...events: SessionEvent[]) => Promise<void>,
  signal: AbortSignal,
): Promise<HumanAnswer> {
  const { clock } = options;
  const approvers = options.approvals?.approvers() ?? [];
  const target = targetOf(request);
  if (!options.approvals || approvers.length === 0) {
    const reason = "no one can approve it here (no terminal, no paired Telegram user and no one signed in to the dashboard)";
    await record({ type: "approval_answered", at: clock.now(), approval: "-", id: call.toolUseId, decision: "unreachable", by: "nightshift", reason });
    return { decision: "unreachable", reason };
  }
  const { store } = options.approvals;
  let approval = store.find(options.session, call.toolUseId, target);
  if (approval && options.used?.has(approval.id)) approval = undefined; // a repeated tool_use id gets its own question
  if (!approval) {
    approval = store.create({
      session: options.session,
      tool_use_id: call.toolUseId,
      tool: call.tool,
      input: call.input,
      summary: summarize(request, decision),
      kind: decision.grant.kind,
      target,
      reason: decision.reason,
      ...(options.label ? { label: options.label } : {}),
    });
    await record({ type: "approval_requested", at: clock.now(), approval: approval.id, id: call.toolUseId, tool: call.tool, summary: approval.summary, reason: approval.reason, expires_at: approval.expires_at });
  }
  if (!store.answerOf(approval.id)) for (const approver of approvers) approver.notify(approval);
  let answer;
  try {
    answer = await store.wait(approval, signal);
  } catch (error) {
    // Cancelled or out of time (not a shutdown, which resumes and asks again): nobody should still be asked.
    if ((signal.reason as Error | undefined)?.name !== "Shutdown") {
      const closed = store.answer(approval.id, { decision: "deny", by: "nightshift", reason: "the task stopped before anyone answered" });
      const final = closed.ok ? store.answerOf(approval.id) : undefined;
      if (final) for (const approver of approvers) approver.settled?.(approval, final);
    }
    throw error;
  }
  options.used?.add(approval.id);
  for (const approver of approvers) approver.settled?.(approval, answer);
  await record({ type: "approval_answered", at: clock.now(), approval: approval.id, id: call.toolUseId, decision: answer.decision, by: answer.by, ...(answer.reason ? { reason: answer.reason } : {}) });
  return { decision: answer.decision, ...(answer.reason ? { reason: answer.reason } : {}) };
}

function targetOf(request: PermissionRequest): string {
  switch (request.kind) {
    case "command":
      return request.command;
    case "network":
      return request.host;
    case "tool":
      return toolGrantTarget(request); // the approval names the exact call, arguments and all
    default:
      return request.path;
  }
}

/** One line for a human (approvals, denials): what the call would do. */
export function summarize(request: PermissionRequest, decision?: Decision): string {
  switch (request.kind) {
    case "command": {
      // Name the part that asked: a long line can hide it past the cut.
      const part = decision?.grant.target;
      const line = oneLine(request.command);
      return part && part !== request.command ? `run \`${oneLine(part)}\` (in \`${line}\`)` : `run \`${line}\``;
    }
    case "network":
      return `connect to ${request.host}`;
    case "tool":
      return request.arguments === undefined ? `call ${request.name}` : `call ${request.name} with ${oneLine(request.arguments)}`;
    case "read":
      return `read ${request.path}`;
    case "write":
      return `write ${request.path}`;
  }
}

function oneLine(text: string): string {
  const line = text.replace(/\s*\n\s*/g, " ⏎ ").replace(/[\u0000-\u001f\u007f-\u009f]/g, "�");
  return line.length > 200 ? `${line.slice(0, 120)} … ${line.slice(-80)}` : line;
}
