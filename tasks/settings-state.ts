import { readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Where this machine's shared settings (permissions, mcp) came from, as tasks/shared-settings.ts
 * leaves it in state/shared-settings.json. Apart from the sync so that `nightshift status` reads
 * it without loading the config schema (start-up time).
 */

export interface Agreed {
  /** The store's version both held. */
  version: number;
  hash: string;
  /** The machine whose config.yaml they came from, and when this machine took them. */
  from: string;
  at: number;
}

/** What `nightshift doctor` and `status` read: where this machine's shared settings came from. */
export interface SettingsState {
  agreed?: Agreed;
  /** The newest version refused here, with why: not taken again until a newer one comes. */
  refused?: { version: number; from: string; message: string };
  /** This machine's change that could not be published (config.yaml does not validate, or holds a secret). */
  unpublished?: { hash: string; message: string };
  /** At the last sync no machine had set them (nothing in the store, nothing here): every machine runs the defaults. */
  defaults?: boolean;
}

/** Where this machine's shared settings came from, as the last sync left it (nothing: never synced). */
export function readSettingsState(home: string): SettingsState {
  try {
    return JSON.parse(readFileSync(join(home, "state", "shared-settings.json"), "utf8")) as SettingsState;
  } catch {
    return {}; // none yet, or unreadable: the next sync compares the settings again and loses nothing
  }
}

/** One line for `doctor` and `status`: where the shared settings this machine runs came from. */
export function describeSettings(state: SettingsState, machine: string, hereHash?: string): string {
  const parts: string[] = [];
  const agreed = state.agreed;
  if (!agreed && state.defaults) parts.push("the defaults on every machine (no machine's config.yaml sets permissions or mcp; the first one that does is shared within a heartbeat)");
  else if (!agreed) parts.push("not yet shared: this machine's config.yaml is published at its daemon's next heartbeat (if it names permissions or mcp)");
  else {
    const source = agreed.from === machine ? "this machine's config.yaml" : `machine ${agreed.from}'s config.yaml`;
    parts.push(`from ${source} (version ${agreed.version}, ${new Date(agreed.at).toISOString().slice(0, 19).replace("T", " ")} UTC)`);
    if (hereHash !== undefined && hereHash !== agreed.hash) parts.push("config.yaml here has changed since: the daemon publishes it at its next heartbeat");
  }
  if (state.refused) parts.push(`refused version ${state.refused.version} from machine ${state.refused.from}: ${state.refused.message}`);
  if (state.unpublished && state.unpublished.hash === hereHash) parts.push(state.unpublished.message);
  return parts.join("; ");
}

