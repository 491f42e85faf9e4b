import { readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * One setting read from `home`/config.yaml without validating the rest, for a command that needs
 * only it and should not pay for the whole schema (zod is most of a command's start-up). The caller
 * checks the value and, when it is not what a valid config holds, falls back to `loadConfig`, which
 * says what is wrong with the file's line. Resolves to undefined when the file or the setting is
 * absent; rejects when the file cannot be read or is not YAML.
 */
export async function peekSetting(home: string, path: readonly string[]): Promise<unknown> {
  let text: string;
  try {
    text = readFileSync(join(home, "config.yaml"), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  // A key that appears nowhere in the text is absent (the only other way to spell it is an escape
  // sequence in a quoted key, hence the backslash), and most files never set the one asked for:
  // they are answered without loading the YAML parser.
  if (!text.includes(path.at(-1) ?? "") && !text.includes("\\")) return undefined;
  const { parse } = await import("yaml");
  let value: unknown = parse(text);
  for (const key of path) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}
