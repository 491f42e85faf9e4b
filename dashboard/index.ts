export { createDashboard, type DashboardDeps } from "./app.ts";
export { createAuthStore, LINK_TTL_MS, SESSION_TTL_MS, type AuthStore } from "./auth-store.ts";
export { SESSION_COOKIE } from "./guard.ts";
export { DashboardUnavailable, serveDashboard, type DashboardServer } from "./server.ts";
export { specialistLogs, type SpecialistLog } from "./lanes.ts";
export { chargeReader, type Charge, type ChargeReader } from "./spend.ts";
export { dashboardApprover } from "./approver.ts";
