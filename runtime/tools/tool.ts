import type { Tool as ApiTool } from "@anthropic-ai/sdk/resources/messages";
import { z } from "zod";
import type { SpecialistReport } from "../events.ts";
import type { PermissionRequest } from "../policy/policy.ts";
import type { PathRules, PathView } from "./paths.ts";
import type { StagedView } from "../sandbox/sandbox.ts";

export interface WorkdirView extends PathView {
  stage: StagedView;
}

export interface ToolContext {
  /** The task's working directory: absolute and real (symlinks resolved). */
  workdir: string;
  /** Aborts when the task is cancelled or out of time; long tools must stop. */
  signal: AbortSignal;
  /** Paths no tool may read or write, whatever the policy says (secrets, Nightshift's settings). */
  paths: PathRules;
  /** Folders besides the workdir where commands may write (from allow-write rules), real paths. */
  writable: string[];
  /** Paths inside those that commands may not write: bases of deny and ask write rules. */
  readOnly: string[];
  /** Checks what a tool finds it needs while running (a redirect's host, a command's connection); asks a human when the policy says so. */
  permissions: PermissionChecker;
  /** The session this call belongs to. */
  session?: string;
  /**
   * The workdir is a staged copy: paths stay the task's, their contents are read and written at
   * `toView(path)`, and commands run in the stage (runtime/stage/overlay.ts).
   */
  view?: WorkdirView;
  /** True once this session has read a web page or an MCP tool's result: what it notes from then on is kept as untrusted. */
  webSeen?(): boolean;
  /** Runs specialists for this call (the main agent's sessions only: specialists cannot consult). */
  consult?(names: string[], question: string, mode: "parallel" | "chain"): Promise<SpecialistReport[]>;
}

/** A result with more than text: what the call spent on model calls of its own, and the specialists it ran. */
export interface ToolOutput {
  output: string;
  cost_usd?: number;
  specialists?: SpecialistReport[];
  /** Deferred tools the call loaded (`tool_search`): the model gets their references, not `output`. */
  references?: string[];
}

export interface PermissionChecker {
  /** Resolves when every request is allowed; throws PermissionDenied with a message for the model otherwise. */
  check(requests: PermissionRequest[]): Promise<void>;
}

/** A tool the model can call. `execute` throws to report a failure the model should read. */
export interface Tool<Input = unknown> {
  name: string;
  description: string;
  schema: z.ZodType<Input>;
  /** The JSON schema shown to the model, when it comes from elsewhere (an MCP server's tool) rather than `schema`. */
  inputSchema?: Record<string, unknown>;
  execute(input: Input, context: ToolContext): Promise<string | ToolOutput>;
  /**
   * Safe to run again after a restart that interrupted it (a consult: its specialists resume from
   * their own logs). Other tools are reported as interrupted and never re-run.
   */
  resumable?: boolean;
  /** What the call will touch, checked against the policy before it starts (real paths, the command line, the host). */
  access?(input: Input, context: Pick<ToolContext, "workdir" | "paths" | "view">): PermissionRequest[];
}

export function defineTool<Schema extends z.ZodType>(tool: {
  name: string;
  description: string;
  schema: Schema;
  inputSchema?: Record<string, unknown>;
  execute(input: z.output<Schema>, context: ToolContext): Promise<string | ToolOutput>;
  resumable?: boolean;
  access?(input: z.output<Schema>, context: Pick<ToolContext, "workdir" | "paths" | "view">): PermissionRequest[];
}): Tool {
  return tool as unknown as Tool;
}

const apiTools = new WeakMap<Tool, ApiTool>();
const deferredTools = new WeakMap<Tool, ApiTool>();

/** The tool as the Messages API wants it: computed once per tool, so the cached prefix never changes. */
export function toApiTool(tool: Tool): ApiTool {
  let api = apiTools.get(tool);
  if (!api) {
    const { $schema: _ignored, ...schema } = tool.inputSchema ?? (z.toJSONSchema(tool.schema, { io: "input" }) as Record<string, unknown>);
    api = { name: tool.name, description: tool.description, input_schema: schema as ApiTool["input_schema"] };
    apiTools.set(tool, api);
  }
  return api;
}

/** The tool sent with `defer_loading`: outside the cached prefix, shown to the model where a reference to it is. */
export function toDeferredApiTool(tool: Tool): ApiTool {
  let api = deferredTools.get(tool);
  if (!api) {
    api = { ...toApiTool(tool), defer_loading: true };
    deferredTools.set(tool, api);
  }
  return api;
}

/** A failure the model should see as the tool's result (is_error), e.g. "no such file". */
export class ToolError extends Error {
  override name = "ToolError";
}
