import type { Approver, Clock } from "../runtime/index.ts";
import { createAuthStore } from "./auth-store.ts";

/**
 * The dashboard as a way to answer approvals. It shows pending approvals on its Now page and the
 * task's page (live, through the daemon's events), so `notify` has nothing to send. It counts as an
 * approver only while someone holds a live session: with no one signed in, nobody would see the
 * question, and an ask is better denied at once than left to expire.
 */
export function dashboardApprover(dir: string, clock: Clock): { approver: Approver; signedIn(): boolean } {
  const auth = createAuthStore(dir, clock);
  return {
    approver: { name: "dashboard", notify() {} },
    signedIn: () => auth.anySession(),
  };
}
