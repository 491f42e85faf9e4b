import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseConfigText, type Config } from "../runtime/config.ts";
import { ConfigError } from "../runtime/errors.ts";
import { namesShared, settingsHash, sharedSecrets, sharedSection, withSharedSection, type SharedSettings } from "../runtime/shared-settings.ts";
import type { SharedFiles } from "../runtime/store/pg-files.ts";
import { readSettingsState } from "./settings-state.ts";
import { serialized } from "../runtime/serialized.ts";

export { describeSettings, readSettingsState, type SettingsState } from "./settings-state.ts";

/**
 * Several machines on one store run one permission policy and one set of MCP servers
 * (runtime/shared-settings.ts says which settings). Each machine keeps them where a single machine
 * does, in its config.yaml, and `sync` makes that file and the store agree, as tasks/shared-files.ts
 * does for identity and memory:
 *
 * - a change made here (the shared part of config.yaml no longer means what both last agreed on)
 *   is published, if config.yaml validates and its MCP servers hold no secret;
 * - a change published by another machine is written into config.yaml here: only `permissions:`
 *   and `mcp:` are replaced, with the publisher's comments, the rest of the file stays as its author
 *   wrote it, and the previous file is kept under state/config-history/ (the newest ten);
 * - both changed since they last agreed: the store's stands (it was written first) and this
 *   machine's config.yaml is kept whole under state/shared-conflicts/, and said;
 * - another machine's settings that do not validate here (a newer Nightshift's, a broken rule) are
 *   refused, said once, and this machine runs on its own until a good version comes;
 * - a machine that joins with no `permissions:` or `mcp:` of its own takes the store's without a
 *   conflict: it had nothing to keep.
 *
 * Runs on every heartbeat and when another machine writes, so a change reaches the others within
 * seconds. `settings` in the report says when what this machine should run changed (a change
 * taken in, or made here): the caller applies it.
 */

/** The row of shared_files that holds the shared settings: outside every path the file sync writes (`isSharedPath`). */
export const SETTINGS_PATH = "@settings/config.yaml";
const HISTORY_KEPT = 10;


export interface SettingsReport {
  /** The version published from this machine's config.yaml. */
  sent?: number;
  /** Another machine's settings written into config.yaml here; `previous`: the copy kept. */
  received?: { from: string; version: number; previous: string };
  /** Both changed: the store's were taken and this machine's config.yaml kept at `keptAt`. */
  conflict?: { from: string; keptAt: string };
  /** Another machine's settings refused here (said once per version). */
  refused?: { from: string; version: number; message: string };
  /** This machine's change was not published (said once per content). */
  unpublished?: string;
  /** The shared settings this machine should run now, when they changed since the last sync. */
  settings?: SharedSettings & { hash: string };
}

export interface SettingsSync {
  sync(): Promise<SettingsReport>;
}

/** `running`: the hash of the settings the process started with (`settingsHash`). */
export function createSettingsSync(options: { home: string; files: SharedFiles; machine: string; now: () => number; running: string }): SettingsSync {
  const { home, files, machine } = options;
  const configFile = join(home, "config.yaml");
  const stateFile = join(home, "state", "shared-settings.json");
  let state = readSettingsState(home);
  let running = options.running;
  /** config.yaml texts already said not to validate, so each is said once. */
  let saidInvalid: string | undefined;
  let parsed: { text: string; config: Config } | undefined;
  // One sync at a time (the heartbeat's, a write elsewhere's): each compares against what the last one left.
  return { sync: serialized(syncOnce) };

  async function syncOnce(): Promise<SettingsReport> {
    const report: SettingsReport = {};
    const text = readText(configFile);
    let config: Config;
    try {
      // Read every heartbeat: validated again only when its text changed.
      config = parsed?.text === text ? parsed.config : parseConfigText(text, configFile);
      parsed = { text, config };
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      const key = hashText(text);
      if (saidInvalid !== key) report.unpublished = `${error.message} Until it validates, this machine neither publishes its shared settings (permissions, mcp) nor takes in other machines', and runs on the ones it has.`;
      saidInvalid = key;
      return report;
    }
    saidInvalid = undefined;
    const hash = settingsHash(config);
    const changedHere = state.agreed ? hash !== state.agreed.hash : namesShared(text);
    const remote = (await files.versions()).get(SETTINGS_PATH);
    const before = JSON.stringify(state);
    if (remote !== undefined && remote !== state.agreed?.version && remote !== state.refused?.version) {
      const [row] = await files.read([SETTINGS_PATH]);
      if (row?.content) {
        const taken = takeIn(text, hash, changedHere, { section: row.content.toString("utf8"), version: row.version, from: row.machine }, report);
        if (taken) config = taken;
      }
    } else if (changedHere && state.unpublished?.hash !== hash) {
      const section = sharedSection(text);
      const secrets = sharedSecrets(section);
      if (secrets.length) {
        report.unpublished = `config.yaml's shared settings are not published to the other machines, because secrets never leave this machine: ${secrets.join("; ")}.`;
        state = { ...state, unpublished: { hash, message: report.unpublished } };
      } else {
        const version = await files.put(SETTINGS_PATH, Buffer.from(section), remote ?? 0);
        // Another machine published first: the next sync takes theirs in and keeps this file aside.
        if (version !== undefined) {
          state = { agreed: { version, hash, from: machine, at: options.now() } };
          report.sent = version;
        }
      }
    }
    // Nothing set anywhere yet: said so by status and doctor, rather than "not yet shared".
    const none = remote === undefined && !changedHere && !state.agreed;
    if (none !== Boolean(state.defaults)) {
      const { defaults: _was, ...rest } = state;
      state = none ? { ...rest, defaults: true } : rest;
    }
    if (JSON.stringify(state) !== before) writeAtomically(stateFile, JSON.stringify(state));
    const now = settingsHash(config);
    if (now !== running) {
      report.settings = { permissions: config.permissions, mcp: config.mcp, hash: now };
      running = now;
    }
    return report;
  }

  /** Another machine's version: agreed, refused, or written into config.yaml here. Returns the config now in force when it changed. */
  function takeIn(text: string, hash: string, changedHere: boolean, theirs: { section: string; version: number; from: string }, report: SettingsReport): Config | undefined {
    const refuse = (message: string) => {
      report.refused = { from: theirs.from, version: theirs.version, message };
      state = { ...state, refused: report.refused };
      return undefined;
    };
    const secrets = sharedSecrets(theirs.section);
    if (secrets.length) return refuse(`they hold what looks like a secret (${secrets.join("; ")}); fix it in config.yaml on ${theirs.from}`);
    let candidate: string;
    let config: Config;
    try {
      // The section alone first, so a line number points into what the other machine wrote.
      parseConfigText(theirs.section, `the shared settings from machine ${theirs.from}`);
      candidate = withSharedSection(text, theirs.section);
      config = parseConfigText(candidate, configFile);
    } catch (error) {
      if (!(error instanceof ConfigError) && !(error instanceof Error && /does not hold settings/.test(error.message))) throw error;
      return refuse(`${error.message} Fix it in config.yaml on ${theirs.from} (or on any machine: the next valid change published wins); until then this machine runs on its own.`);
    }
    const theirHash = settingsHash(config);
    const agreed = { agreed: { version: theirs.version, hash: theirHash, from: theirs.from, at: options.now() } };
    if (theirHash === hash) {
      state = agreed; // the same policy and servers, however written: nothing to write
      return undefined;
    }
    // Written only over the text read: a file saved meanwhile is looked at again next time.
    if (readText(configFile) !== text) return undefined;
    const stamp = `${machine}-${options.now()}`;
    if (changedHere) {
      const keptAt = join(home, "state", "shared-conflicts", `config.yaml.${stamp}`);
      writeAtomically(keptAt, text);
      report.conflict = { from: theirs.from, keptAt };
    }
    const previous = join(home, "state", "config-history", `config.yaml.${stamp}`);
    writeAtomically(previous, text);
    pruneHistory(dirname(previous));
    writeAtomically(configFile, candidate);
    state = agreed;
    report.received = { from: theirs.from, version: theirs.version, previous };
    return config;
  }
}

function pruneHistory(folder: string): void {
  const copies = readdirSync(folder).filter((name) => name.startsWith("config.yaml.")).sort((a, b) => stampOf(a) - stampOf(b));
  for (const name of copies.slice(0, Math.max(0, copies.length - HISTORY_KEPT))) rmSync(join(folder, name), { force: true });
}

function stampOf(name: string): number {
  return Number(/-(\d+)$/.exec(name)?.[1] ?? 0);
}

function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw error;
  }
}

function hashText(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function writeAtomically(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = join(dirname(path), `.${process.pid}.settings.tmp`);
  writeFileSync(temp, content);
  renameSync(temp, path);
}
