import type { Tool as ApiTool } from "@anthropic-ai/sdk/resources/messages";
import { z } from "zod";
import type { PathRules } from "./paths.ts";

export interface ToolContext {
  /** The task's working directory: absolute and real (symlinks resolved). */
  workdir: string;
  /** Aborts when the task is cancelled or out of time; long tools must stop. */
  signal: AbortSignal;
  /** Paths file tools must not read or write even inside the workdir. */
  paths: PathRules;
}

/** A tool the model can call. `execute` throws to report a failure the model should read. */
export interface Tool<Input = unknown> {
  name: string;
  description: string;
  schema: z.ZodType<Input>;
  execute(input: Input, context: ToolContext): Promise<string>;
}

export function defineTool<Schema extends z.ZodType>(tool: {
  name: string;
  description: string;
  schema: Schema;
  execute(input: z.output<Schema>, context: ToolContext): Promise<string>;
}): Tool {
  return tool as unknown as Tool;
}

/** The tool as the Messages API wants it. Computed once per session: the prefix must not change. */
export function toApiTool(tool: Tool): ApiTool {
  const { $schema: _ignored, ...schema } = z.toJSONSchema(tool.schema, { io: "input" }) as Record<string, unknown>;
  return { name: tool.name, description: tool.description, input_schema: schema as ApiTool["input_schema"] };
}

/** A failure the model should see as the tool's result (is_error), e.g. "no such file". */
export class ToolError extends Error {
  override name = "ToolError";
}
