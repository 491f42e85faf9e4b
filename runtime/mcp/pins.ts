/**
 * Pins of MCP tool definitions. `nightshift mcp approve NAME` stores, per tool, a hash of its name,
 * description, input schema and annotations, with the definition itself so a later change can be
 * shown as a diff. A tool whose definition no longer matches its pin, or that has none, is withheld
 * (a server can change a description after it was approved: the hash catches it).
 *
 * One JSON file per server under state/mcp/pins/, written atomically by `approve` alone.
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
  const file: PinFile = {
    version: 1,
    server,
    tools: Object.fromEntries(tools.map((tool) => [tool.name, { hash: toolHash(tool), definition: pinnedDefinition(tool), approvedAt: now.toISOString() }])),
  };
  const path = pinsFile(home, server);
  mkdirSync(join(path, ".."), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(file, null, 2) + "\n", { mode: 0o600 });
  renameSync(temp, path);
  return file;
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
