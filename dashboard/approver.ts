import type { Approver, Clock } from "../runtime/index.ts";
import { createAuthStore } from "./auth-store.ts";

/**
 * The dashboard as a way to answer approvals. It shows pending approvals on its Now page and the
 * task's page (live, through the daemon's events) and sends nothing itself, so `notify` is empty.
 * It counts as an approver while someone holds a live session (signed in within the last 7 days,
 * not logged out): such a person opens the page to look, and their asks wait for them, up to
 * `approvals.expire`, instead of being denied at once. With no session, nobody would ever see the
 * question, and an ask is denied at once with that reason. Telegram, when paired, also pushes it.
 */
export function dashboardApprover(dir: string, clock: Clock): { approver: Approver; signedIn(): boolean } {
  const auth = createAuthStore(dir, clock);
  return {
    approver: { name: "dashboard", notify() {} },
    signedIn: () => auth.anySession(),
  };
}
