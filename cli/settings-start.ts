import { escapeHtml } from "../bot/format.ts";
import type { Cluster } from "../runtime/store/pg-cluster.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { settingsHash, type SharedSettings } from "../runtime/shared-settings.ts";
import type { TraceLogger } from "../runtime/trace.ts";
import type { Clock } from "../runtime/index.ts";
import { createSettingsSync } from "../tasks/shared-settings.ts";

/**
 * Several machines: the permission policy and MCP servers every machine runs alike
 * (tasks/shared-settings.ts), kept in line on each heartbeat and applied here as they change:
 * sessions that start after a change use the new policy and the new servers; running sessions
 * keep what they started with. Everything is said on stderr and in the trace; what a person must
 * know (a change taken in, a conflict, a refusal) also on Telegram.
 */
export function sharedSettingsSync(options: {
  cluster: Cluster;
  home: string;
  clock: Clock;
  trace: TraceLogger;
  stderr: NodeJS.WritableStream;
  notice(html: string): void;
  runtime: Pick<Runtime, "reconfigure">;
  /** The settings the daemon started with. */
  started: SharedSettings;
}): () => Promise<void> {
  const { trace, stderr } = options;
  const sync = createSettingsSync({ home: options.home, files: options.cluster.files, machine: options.cluster.machine, now: options.clock.now, running: settingsHash(options.started) });
  const say = (level: "info" | "warn" | "error", event: Record<string, unknown>, message: string, telegram: boolean) => {
    stderr.write(`${level === "info" ? "" : "! "}${message}\n`);
    trace[level](event, message);
    if (telegram) options.notice(`${level === "info" ? "⚙️" : "⚠️"} ${escapeHtml(message)}`);
  };
  return async () => {
    const report = await sync.sync();
    if (report.sent !== undefined) {
      say("info", { event: "shared_settings_published", version: report.sent }, `the permission policy and MCP servers of this machine's config.yaml are published to the other machines (version ${report.sent})`, false);
    }
    if (report.conflict) {
      say("warn", { event: "shared_settings_conflict", from: report.conflict.from, kept_at: report.conflict.keptAt },
        `config.yaml's permissions or mcp were changed on this machine and on ${report.conflict.from} at once: ${report.conflict.from}'s are kept (written first), this machine's whole config.yaml is at ${report.conflict.keptAt}; copy what you want from it into config.yaml again`, true);
    }
    if (report.received) {
      say("info", { event: "shared_settings_received", from: report.received.from, version: report.received.version, previous: report.received.previous },
        `config.yaml: permissions and mcp taken from machine ${report.received.from} (version ${report.received.version}); the rest of the file is as it was, and the previous file is at ${report.received.previous}`, true);
    }
    if (report.refused) {
      say("error", { event: "shared_settings_refused", from: report.refused.from, version: report.refused.version, message: report.refused.message },
        `REFUSED the shared permissions and mcp settings from machine ${report.refused.from} (version ${report.refused.version}): ${report.refused.message}`, true);
    }
    if (report.unpublished) say("warn", { event: "shared_settings_unpublished", message: report.unpublished }, report.unpublished, true);
    if (report.settings) {
      const changed = options.runtime.reconfigure(report.settings);
      // Taken in from another machine, or changed here by hand.
      const from = report.received ? `machine ${report.received.from}'s config.yaml` : "this machine's config.yaml";
      const what = [
        ...(changed.policy ? ["the permission policy (sessions that start from now on use it; running ones keep theirs)"] : []),
        ...(changed.mcp ? [`the MCP servers ${Object.keys(report.settings.mcp.servers).join(", ") || "(none)"} (started afresh for sessions that start from now on; running sessions keep theirs until they end)`] : []),
      ];
      if (what.length) {
        say("info", { event: "shared_settings_applied", from, policy: changed.policy, mcp: changed.mcp }, `applied, from ${from}: ${what.join("; and ")}`, false);
      }
    }
  };
}
