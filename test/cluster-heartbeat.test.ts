import assert from "node:assert/strict";
import { it } from "node:test";
import { clusterHeartbeat } from "../cli/cluster-start.ts";
import { storeUnreachable } from "../runtime/store/outage.ts";

/** The shared steps of each heartbeat on several machines (cli/start.ts wires them into tasks/cluster.ts's loop). */
it("runs every shared step of a heartbeat though one fails, says a failure in the trace, and tells the store's watch an unreachable store at once", async () => {
  const ran: string[] = [];
  const warned: string[] = [];
  const toldWatch: unknown[] = [];
  const step = (name: string, error?: unknown) => async () => {
    ran.push(name);
    if (error) throw error;
  };
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
  const beat = clusterHeartbeat({
    watch: { failed: (error) => (toldWatch.push(error), storeUnreachable(error)) },
    trace: { warn: (_fields: object, message?: string) => void warned.push(message ?? "") } as never,
    sharing: { sync: step("approvals", new Error("a query the store refused")) },
    sessions: { sync: step("session logs") },
    journal: { sync: step("journal", refused) },
    spend: { publish: step("spend") },
    stagedHere: { tick: () => void ran.push("staged") },
    reviews: { tick: step("reviews") },
    notices: { tick: step("notices") },
    syncFiles: step("files", new Error("EACCES: a skill folder")),
    syncSettings: step("settings"),
  });
  await beat.also();
  assert.deepEqual(ran, ["approvals", "session logs", "journal", "staged", "reviews", "notices", "spend"]);
  assert.deepEqual(warned, ["sharing approvals failed; tried again at the next heartbeat: a query the store refused"], "the unreachable store is the watch's to say, once");
  assert.equal(toldWatch.length, 2);
  await assert.rejects(beat.syncFiles!(), /EACCES/);
  assert.deepEqual(ran.slice(-2), ["files", "settings"], "the settings are compared though the files failed");
});
