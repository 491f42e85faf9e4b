import type { LoadedConfig } from "../runtime/config.ts";
import type { Sql } from "../runtime/store/pg.ts";
import { UsageError } from "./usage.ts";

/**
 * A command's connection to the shared store (several machines on one PostgreSQL), or undefined
 * when none is configured. A store that cannot be reached is a UsageError naming the setting, never
 * the URL (it may hold a password): "could not reach the shared store (SETTING) to DOING: …. WHY: check …".
 * The modules load only here, so a home without a store never pays for them.
 */
export async function connectForCommand(loaded: LoadedConfig, doing: string, why: string): Promise<{ sql: Sql; machine: string; close(): Promise<void> } | undefined> {
  const { machineName, storeSetting, storeUrl } = await import("../runtime/config.ts");
  const url = storeUrl(loaded);
  if (!url) return undefined;
  const { connectPg } = await import("../runtime/store/pg.ts");
  const sql = await connectPg(url, { max: 1 }).catch((error: unknown) => {
    throw new UsageError(`could not reach the shared store (${storeSetting(loaded)}) to ${doing}: ${(error as Error).message}. ${why}: check that PostgreSQL runs and can be reached from here, then run the command again`);
  });
  return { sql, machine: machineName(loaded.config), close: () => sql.end({ timeout: 1 }) };
}
