import { z } from "zod";
import type { SpecialistReport } from "../events.ts";
import { defineTool, ToolError, type Tool } from "./tool.ts";

const schema = z.object({
  specialists: z.array(z.string().min(1)).min(1).max(8).describe("Names of the specialists to ask"),
  question: z.string().min(1).describe("What they should look at: the question, the draft or plan, and the facts they need (they do not see this conversation)"),
  mode: z.enum(["parallel", "chain"]).default("parallel").describe("parallel: all answer at once, independently; chain: one after another, each seeing the reports before it"),
});

/**
 * `consult`: asks specialists for short reports. The description lists the specialists there are
 * when the runtime starts (it is part of the cached prefix, so it must not change per step).
 */
export function createConsultTool(specialists: ReadonlyArray<{ name: string; description: string }>): Tool {
  const list = specialists.map((agent) => `- ${agent.name}: ${agent.description}`).join("\n");
  return defineTool({
    name: "consult",
    description: `Ask specialists for a second opinion. Each works in its own session with read access to the working directory and returns a short report; they cannot see this conversation, so put everything they need in the question. Use parallel for independent views (they disagree usefully), chain when each should build on the previous report. Costs count against this task's budget.\nSpecialists:\n${list || "- (none: add agents/<name>.md)"}`,
    schema,
    resumable: true, // a restart resumes the specialists from their logs; finished reports are read back
    async execute(input, context) {
      if (!context.consult) throw new ToolError("Specialists cannot consult other specialists.");
      const reports = await context.consult(input.specialists, input.question, input.mode);
      return { output: formatReports(reports), cost_usd: reports.reduce((sum, report) => sum + report.cost_usd, 0), specialists: reports };
    },
  });
}

function formatReports(reports: SpecialistReport[]): string {
  return reports.map((report) => `<report from="${report.name}" status="${report.status}">\n${report.report}\n</report>`).join("\n\n");
}
