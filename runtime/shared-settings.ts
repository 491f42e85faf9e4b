/**
 * The part of config.yaml every machine on a shared store runs alike: the permission policy
 * (`permissions`) and the MCP servers (`mcp`). Everything else in config.yaml (the machine's name,
 * the store, the dashboard's port, models, budgets, the sandbox and what it hides) stays the
 * machine's own. These functions work on the YAML text, so a section taken from one machine's
 * config.yaml into another's keeps its comments, and the rest of the receiving file is left as its
 * author wrote it (the yaml library keeps comments and layout of the nodes it does not replace).
 */

import { createHash } from "node:crypto";
import { Document, isAlias, isMap, isNode, isPair, parseDocument, visit, type Pair } from "yaml";
import type { Config } from "./config.ts";
import { findConfigSecrets } from "./mcp/secrets.ts";

/** The top-level settings shared by every machine, in the order they are written. */
export const SHARED_SETTINGS = ["permissions", "mcp"] as const;

export type SharedSettings = Pick<Config, (typeof SHARED_SETTINGS)[number]>;

/** A fingerprint of the shared settings as they apply (defaults filled in): two files that mean the same policy and servers agree. */
export function settingsHash(config: SharedSettings): string {
  return createHash("sha256").update(canonical({ permissions: config.permissions, mcp: config.mcp })).digest("hex");
}

/** Whether config.yaml names any shared setting at all (a machine that names none has no opinion to publish). */
export function namesShared(text: string): boolean {
  const doc = parseDocument(text);
  return isMap(doc.contents) && SHARED_SETTINGS.some((key) => doc.has(key));
}

/**
 * The shared settings of config.yaml as a YAML document of their own, with their comments. A
 * section that uses anchors or aliases (which may point into the rest of the file) is written
 * out as plain values instead, so it reads the same anywhere.
 */
export function sharedSection(text: string): string {
  const doc = parseDocument(text);
  const section = new Document({});
  const pairs = isMap(doc.contents) ? doc.contents.items : [];
  for (const key of SHARED_SETTINGS) {
    const pair = pairs.find((item) => keyOf(item) === key);
    if (!pair) continue;
    if (usesAnchors(pair)) section.set(key, section.createNode((doc.toJS() as Record<string, unknown>)[key]));
    else (section.contents as { items: unknown[] }).items.push(pair.clone());
  }
  return String(section);
}

/**
 * `local` (a machine's config.yaml) with its shared settings replaced by those of `section` (one
 * made by `sharedSection`): a setting the section lacks is removed (it means the defaults), one
 * it has replaces the local one in place or is added at the end. The rest of `local` is kept.
 */
export function withSharedSection(local: string, section: string): string {
  const doc: Document = parseDocument(local);
  const shared = parseDocument(section);
  if (!isMap(doc.contents)) {
    if (doc.contents !== null && doc.contents !== undefined) throw new Error("config.yaml does not hold settings (key: value lines)");
    doc.contents = doc.createNode({});
  }
  const items = (doc.contents as { items: Pair[] }).items;
  const theirs = isMap(shared.contents) ? shared.contents.items : [];
  for (const key of SHARED_SETTINGS) {
    const pair = theirs.find((item) => keyOf(item) === key);
    const index = items.findIndex((item) => keyOf(item) === key);
    if (pair && index >= 0) items[index] = pair.clone();
    else if (pair) items.push(pair.clone());
    else if (index >= 0) items.splice(index, 1);
  }
  return String(doc);
}

/**
 * What must never leave this machine in the shared settings: values in MCP servers that look like
 * secrets (tokens belong in each machine's .env, named by `env_from` or `auth_env`). One line per
 * finding, naming the field and the fix, never the value.
 */
export function sharedSecrets(section: string): string[] {
  return findConfigSecrets(section).map((found) => `\`${found.field}\` ${found.why}: ${found.fix}`);
}

function keyOf(item: unknown): unknown {
  return isPair(item) && isNode(item.key) ? (item.key as { value?: unknown }).value : isPair(item) ? item.key : undefined;
}

function usesAnchors(pair: Pair): boolean {
  let found = false;
  visit(new Document(pair.value), (_key, node) => {
    if (isAlias(node) || (isNode(node) && node.anchor)) {
      found = true;
      return visit.BREAK;
    }
    return undefined;
  });
  return found;
}

/** JSON with object keys sorted, so equal settings give equal text whatever order they were written in. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, each]) => each !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, each]) => `${JSON.stringify(key)}:${canonical(each)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
