import { join } from "node:path";
import { createAuthStore } from "../dashboard/auth-store.ts";
import type { Clock } from "../runtime/clock.ts";

export interface DashboardCommandIO {
  home: string;
  clock: Clock;
  /** `dashboard.port` and `dashboard.public_url` from config. */
  port: number;
  publicUrl?: string;
  /** Whether a daemon (which serves the page) is running. */
  daemonRunning: boolean;
}

/**
 * `nightshift dashboard`: a one-time login link, its secret in the fragment (never sent to a
 * server by the browser, so never in a proxy's log or a Referer). `--logout-all` ends every session.
 */
export function dashboardCommand(args: { logoutAll: boolean }, io: DashboardCommandIO): string {
  const auth = createAuthStore(join(io.home, "state", "dashboard"), io.clock);
  if (args.logoutAll) {
    const count = auth.logoutAll();
    return count ? `Ended ${count} dashboard session${count > 1 ? "s" : ""}: every browser must sign in again.` : "No dashboard sessions were open.";
  }
  const { url, until } = loginLink(io);
  const lines = [url, "", `Open it and press the button. The link works once and expires in 10 minutes, at ${until}.`];
  if (!io.daemonRunning) lines.push("No daemon is running: the dashboard is served by `nightshift start`.");
  return lines.join("\n");
}

/**
 * A new one-time login link, as `nightshift dashboard` prints it and /dashboard on Telegram sends
 * it: at public_url when set, otherwise on loopback (`local`: it opens only on this machine or
 * through a tunnel). `until` is the local time it expires, as HH:MM.
 */
export function loginLink(io: Pick<DashboardCommandIO, "home" | "clock" | "port" | "publicUrl">): { url: string; until: string; local: boolean } {
  const { secret, expiresAt } = createAuthStore(join(io.home, "state", "dashboard"), io.clock).createLink();
  const origin = io.publicUrl ? new URL(io.publicUrl).origin : `http://127.0.0.1:${io.port}`;
  return { url: `${origin}/login#${secret}`, until: new Date(expiresAt).toTimeString().slice(0, 5), local: !io.publicUrl };
}
