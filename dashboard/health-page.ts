import { html } from "hono/html";
import type { Check } from "../cli/doctor.ts";

/**
 * The Health page: what `nightshift doctor` checks (sandbox, endpoints, Telegram, memory cap,
 * schedules…), run when the page is loaded, as a list marked ✓ (fine), ! (a warning) or ✗ (a
 * problem) with each failing check's fix. Nothing is cached: a reload checks again.
 */

export interface HealthSources {
  /** Every doctor check (the daemon: `runDoctor` over its config and sandbox). Must not throw; if it does, the page says why. */
  checks(): Promise<Check[]>;
}

export async function healthBody(sources: HealthSources, now: number) {
  const checks: Check[] = await sources.checks().catch((error: unknown): Check[] => [{ ok: false, label: `the checks could not run: ${(error as Error).message}` }]);
  const problems = checks.filter((check) => !check.ok && check.level !== "warn").length;
  const warnings = checks.filter((check) => !check.ok && check.level === "warn").length;
  const summary = problems ? `${problems} problem${problems > 1 ? "s" : ""} to fix.` : warnings ? `No problems; ${warnings} warning${warnings > 1 ? "s" : ""}.` : "All good.";
  return html`<h1>Health</h1>
<p>${summary} <span class="quiet">Checked at ${new Date(now).toTimeString().slice(0, 5)}, as <code>nightshift doctor</code> checks; reload to check again.</span></p>
<ul class="cards checks">${checks.map((check) => {
    const [mark, kind] = check.ok ? ["✓", "ok"] : check.level === "warn" ? ["!", "warning"] : ["✗", "problem"];
    return html`<li class="card ${kind}"><span class="mark" aria-label="${kind}">${mark}</span> ${check.label}${check.fix && !check.ok ? html`<p class="quiet">fix: <code>${check.fix}</code></p>` : ""}</li>`;
  })}</ul>`;
}
