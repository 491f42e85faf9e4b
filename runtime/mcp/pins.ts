/**
 * Pins of MCP tool definitions. `nightshift mcp approve NAME` stores, per tool, a hash of its name,
 * description, input schema and annotations, with the definition itself so a later change can be
 * shown as a diff. A tool whose definition no longer matches its pin, or that has none, is withheld
 * (a server can change a description after it was approved: the hash catches it).
 *
 * One JSON file per server under state/mcp/pins/, written atomically by `approve`. With several
 * machines on one PostgreSQL, every approved definition is also kept in the store (`SharedPins`,
 * runtime/store/pg-pins.ts), a tool is pinned on every machine once its definition was approved on
 * any (`currentPins`), and the check also writes the file: this machine's copy of what is approved.
 */

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Tool } from "@modelcontextprotocol/client";
import { ConfigError } from "../errors.ts";
import { changedLines } from "../line-diff.ts";

/** The parts of a tool that are pinned: all the model is told about it. */
export interface PinnedDefinition {
  name: string;
  description: string | null;
  inputSchema: unknown;
  annotations: unknown;
}

export interface PinFile {
  version: 1;
  server: string;
  tools: Record<string, { hash: string; definition: PinnedDefinition; approvedAt: string }>;
}

export type PinState =
  | { name: string; state: "pinned" }
  | { name: string; state: "new" }
  | { name: string; state: "changed"; diff: string[] };

export function pinnedDefinition(tool: Tool): PinnedDefinition {
  return { name: tool.name, description: tool.description ?? null, inputSchema: tool.inputSchema ?? null, annotations: tool.annotations ?? null };
}

/** sha256 of the definition as canonical JSON (keys sorted at every depth), so key order does not count. */
export function toolHash(tool: Tool): string {
  return createHash("sha256").update(canonicalJson(pinnedDefinition(tool))).digest("hex");
}

export function pinsFile(home: string, server: string): string {
  return join(home, "state", "mcp", "pins", `${server}.json`);
}

export function readPins(home: string, server: string): PinFile | undefined {
  let text: string;
  try {
    text = readFileSync(pinsFile(home, server), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as PinFile;
    if (parsed.version === 1 && parsed.tools && typeof parsed.tools === "object") return parsed;
  } catch {
    // reported below
  }
  throw new ConfigError(pinsFile(home, server), `${pinsFile(home, server)} is not a pin file Nightshift wrote; delete it and run \`nightshift mcp approve ${server}\` again.`);
}

/** Pins exactly these tools (a tool no longer offered loses its pin). */
export function writePins(home: string, server: string, tools: readonly Tool[], now: Date): PinFile {
  return writePinFile(home, { version: 1, server, tools: Object.fromEntries(tools.map((tool) => [tool.name, pinOf(tool, now.toISOString())])) });
}

function writePinFile(home: string, file: PinFile): PinFile {
  const path = pinsFile(home, file.server);
  mkdirSync(join(path, ".."), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(file, null, 2) + "\n", { mode: 0o600 });
  renameSync(temp, path);
  return file;
}

const pinOf = (tool: Tool, approvedAt: string) => ({ hash: toolHash(tool), definition: pinnedDefinition(tool), approvedAt });

/** One approved definition of a server's tool, as several machines share them. */
export interface ApprovedPin {
  tool: string;
  hash: string;
  definition: PinnedDefinition;
  approvedAt: string;
}

/** Approvals shared by several machines on one PostgreSQL (runtime/store/pg-pins.ts). Each call throws when the store cannot be reached. */
export interface SharedPins {
  /** Every definition of these tools of `server` approved on any machine, oldest first. */
  approved(server: string, tools: readonly string[]): Promise<ApprovedPin[]>;
  /** Records these definitions as approved; one approved already stays as it was. */
  approve(server: string, pins: readonly ApprovedPin[]): Promise<void>;
}

/**
 * The pins a listing is compared with. Alone: this machine's file. With several machines: a tool
 * is pinned when its very definition was approved on any machine (the store) or here (the file:
 * an approval from before the store, which is shared now); a tool that is not is compared with
 * its newest approved definition, so a change on any machine still asks. Once every tool offered
 * is pinned, the file pins this listing too, so while the store does not answer this machine goes
 * on with what it last knew (the outage is said by the store's watch, not here).
 */
export async function currentPins(home: string, server: string, tools: readonly Tool[], shared?: SharedPins): Promise<PinFile | undefined> {
  const local = readPins(home, server);
  if (!shared) return local;
  let approved: ApprovedPin[];
  try {
    approved = await shared.approved(server, tools.map((tool) => tool.name));
  } catch {
    return local;
  }
  const pins: PinFile = { version: 1, server, tools: {} };
  const unshared: ApprovedPin[] = [];
  let allPinned = true;
  for (const tool of tools) {
    const hash = toolHash(tool);
    const here = local?.tools[tool.name];
    const approvals = approved.filter((pin) => pin.tool === tool.name);
    const match = approvals.find((pin) => pin.hash === hash) ?? (here?.hash === hash ? here : undefined);
    if (match) {
      // The server's own definition, which is what the hash was approved for (never the stored copy, which nothing checks).
      pins.tools[tool.name] = { hash, definition: pinnedDefinition(tool), approvedAt: match.approvedAt };
      if (!approvals.some((pin) => pin.hash === hash)) unshared.push({ tool: tool.name, ...pins.tools[tool.name]! });
      continue;
    }
    allPinned = false;
    const newest = [...approvals, ...(here ? [here] : [])].sort((a, b) => a.approvedAt.localeCompare(b.approvedAt)).at(-1);
    if (newest) pins.tools[tool.name] = { hash: newest.hash, definition: newest.definition, approvedAt: newest.approvedAt };
  }
  if (unshared.length) await shared.approve(server, unshared).catch(() => {}); // tried again at the next check
  const sameAsFile = local !== undefined && Object.keys(local.tools).length === tools.length && tools.every((tool) => local.tools[tool.name]?.hash === pins.tools[tool.name]!.hash);
  if (allPinned && !sameAsFile) writePinFile(home, pins);
  return pins;
}

/** `nightshift mcp approve`, Telegram's Approve: pins exactly this listing here and, with several machines, first in the store (any machine's approval counts everywhere). */
export async function approvePins(home: string, server: string, tools: readonly Tool[], now: Date, shared?: SharedPins): Promise<PinFile> {
  if (shared) await approveShared(server, tools, now, shared);
  return writePins(home, server, tools, now);
}

/** Records this listing as approved in the store only: a listing another machine's server offers, approved where the bot runs (its own file is that machine's to write, at its next check). */
export async function approveShared(server: string, tools: readonly Tool[], now: Date, shared: SharedPins): Promise<void> {
  await shared.approve(server, tools.map((tool) => ({ tool: tool.name, ...pinOf(tool, now.toISOString()) })));
}

/** Each offered tool against its pin; a changed one comes with a line diff of what changed. */
export function comparePins(tools: readonly Tool[], pins: PinFile | undefined): PinState[] {
  return tools.map((tool): PinState => {
    const pin = pins?.tools[tool.name];
    if (!pin) return { name: tool.name, state: "new" };
    if (pin.hash === toolHash(tool)) return { name: tool.name, state: "pinned" };
    return { name: tool.name, state: "changed", diff: definitionDiff(pin.definition, pinnedDefinition(tool)) };
  });
}

/** `- old` / `+ new` lines per changed field; schemas and annotations as indented JSON. */
export function definitionDiff(before: PinnedDefinition, after: PinnedDefinition): string[] {
  const lines: string[] = [];
  for (const field of ["description", "inputSchema", "annotations"] as const) {
    const old = fieldLines(before[field]);
    const now = fieldLines(after[field]);
    if (old.join("\n") === now.join("\n")) continue;
    lines.push(`${field}:`, ...changedLines(old.join("\n"), now.join("\n")));
  }
  return lines;
}

function fieldLines(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  if (typeof value === "string") return value.split("\n");
  return JSON.stringify(sortKeys(value), null, 2).split("\n");
}

/** JSON with object keys sorted at every level: the same value always reads the same (pins, MCP call arguments). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]));
  }
  return value;
}
