import type { LoadedConfig } from "../runtime/config.ts";
import type { Sql } from "../runtime/store/pg.ts";
import { UsageError } from "./usage.ts";

/** The shared store is configured but does not answer: a command that can do without it (`nightshift mcp list`) goes on with this machine's own state. */
export class StoreAway extends UsageError {
  override name = "StoreAway";
}

/**
 * A command's connection to the shared store (several machines on one PostgreSQL), or undefined
 * when none is configured. It never changes the schema: a store whose schema is not this
 * Nightshift's is a UsageError saying what to do (start the daemon, which migrates, or update
 * Nightshift here), so a short command from a newer build does not lock older daemons out. A store
 * that cannot be reached is a StoreAway naming the setting, never the URL (it may hold a password):
 * "could not reach the shared store (SETTING) to DOING: …. WHY: check …".
 * The modules load only here, so a home without a store never pays for them.
 */
export async function connectForCommand(loaded: LoadedConfig, doing: string, why: string): Promise<{ sql: Sql; machine: string; close(): Promise<void> } | undefined> {
  const { machineName, storeSetting, storeUrl } = await import("../runtime/config.ts");
  const url = storeUrl(loaded);
  if (!url) return undefined;
  const [{ connectPg, StoreRefused }, { storeUnreachable }] = await Promise.all([import("../runtime/store/pg.ts"), import("../runtime/store/outage.ts")]);
  const sql = await connectPg(url, { max: 1, migrate: false }).catch((error: unknown) => {
    if (error instanceof StoreRefused) throw new UsageError(`the shared store (${storeSetting(loaded)}) cannot be used to ${doing}: ${error.message}`);
    throw new (storeUnreachable(error) ? StoreAway : UsageError)(`could not reach the shared store (${storeSetting(loaded)}) to ${doing}: ${(error as Error).message}. ${why}: check that PostgreSQL runs and can be reached from here, then run the command again`);
  });
  return { sql, machine: machineName(loaded.config), close: () => sql.end({ timeout: 1 }) };
}
