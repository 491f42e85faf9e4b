/**
 * Secrets written into config.yaml's MCP servers, for `doctor`. config.yaml is meant to be copied,
 * shown and committed; keys belong in NIGHTSHIFT_HOME/.env, named by `env_from` or `auth_env`.
 * A heuristic, tuned to flag rather than miss: a known token shape, a long random-looking value, or
 * a secret-sounding variable name with a value that is not a placeholder.
 */

import { parseYaml } from "../yaml.ts";

export interface ConfigSecret {
  /** Dotted path, e.g. `mcp.servers.github.env.GITHUB_TOKEN`. */
  field: string;
  line: number | undefined;
  /** Why it looks like a secret (never the value itself). */
  why: string;
  /** The fix, naming the variable to use. */
  fix: string;
}

const TOKEN_SHAPES: readonly [RegExp, string][] = [
  [/^sk-[A-Za-z0-9_-]{16,}/, "an API key (sk-…)"],
  [/^(gh[pousr]_|github_pat_)[A-Za-z0-9_]{20,}/, "a GitHub token"],
  [/^glpat-[A-Za-z0-9_-]{16,}/, "a GitLab token"],
  [/^xox[abprs]-[A-Za-z0-9-]{10,}/, "a Slack token"],
  [/^(AKIA|ASIA)[0-9A-Z]{16}$/, "an AWS access key id"],
  [/^AIza[0-9A-Za-z_-]{30,}/, "a Google API key"],
  [/^(sk|rk)_(live|test)_[A-Za-z0-9]{10,}/, "a Stripe key"],
  [/^\d{6,}:[A-Za-z0-9_-]{30,}$/, "a Telegram bot token"],
  [/^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, "a JWT"],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "a private key"],
];

const SECRET_NAME = /KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION/i;
const PLACEHOLDER = /^(|x+|\.\.\.|…|changeme|change-me|your[-_ ].*|<.*>|\$\{.*\}|\$[A-Z_]+|none|null|false|true|\d{1,5})$/i;

/** Why `value` (under variable or flag `name`, if any) looks like a secret, or undefined. */
export function secretReason(value: string, name?: string): string | undefined {
  const trimmed = value.trim();
  for (const [shape, what] of TOKEN_SHAPES) if (shape.test(trimmed)) return `looks like ${what}`;
  if (name && SECRET_NAME.test(name) && !PLACEHOLDER.test(trimmed)) return `${name} sounds like a secret and has a value`;
  if (trimmed.length >= 32 && /^[A-Za-z0-9+/=_-]+$/.test(trimmed) && /\d/.test(trimmed) && /[a-z]/.test(trimmed) && /[A-Z]/.test(trimmed)) return "looks like a random key";
  return undefined;
}

/** Every MCP server setting in config.yaml that holds what looks like a secret. Broken YAML finds nothing (loading the config reports it). */
export function findConfigSecrets(text: string): ConfigSecret[] {
  let parsed;
  try {
    parsed = parseYaml(text);
  } catch {
    return [];
  }
  const servers = (parsed.value as { mcp?: { servers?: unknown } } | null)?.mcp?.servers;
  if (!servers || typeof servers !== "object") return [];
  const found: ConfigSecret[] = [];
  const flag = (path: (string | number)[], why: string, fix: string) => found.push({ field: path.join("."), line: parsed.lineOf(path), why, fix });
  const viaEnvFrom = (name: string, variable: string) =>
    `move it to NIGHTSHIFT_HOME/.env as ${variable}=…, remove it from config.yaml and add ${variable} to mcp.servers.${name}.env_from (the server reads it from its environment)`;
  for (const [name, server] of Object.entries(servers as Record<string, Record<string, unknown>>)) {
    if (!server || typeof server !== "object") continue;
    const base = ["mcp", "servers", name];
    const fallback = `${name.toUpperCase().replace(/-/g, "_")}_TOKEN`;
    if (server.env && typeof server.env === "object") {
      for (const [variable, value] of Object.entries(server.env as Record<string, unknown>)) {
        const why = typeof value === "string" || typeof value === "number" ? secretReason(String(value), variable) : undefined;
        if (why) flag([...base, "env", variable], why, viaEnvFrom(name, variable));
      }
    }
    if (Array.isArray(server.args)) {
      const args: unknown[] = server.args;
      args.forEach((arg, index) => {
        if (typeof arg !== "string") return;
        const [, option, value] = /^(--?[\w-]+)=(.*)$/.exec(arg) ?? [];
        const previous = args[index - 1];
        const flagName = option ?? (typeof previous === "string" && previous.startsWith("-") ? previous : undefined);
        const why = secretReason(value ?? arg, flagName);
        if (why) flag([...base, "args", index], why, `${viaEnvFrom(name, fallback)}; a server that only takes it as an argument needs a wrapper script that reads it`);
      });
    }
    if (typeof server.url === "string") {
      const url = URL.parse(server.url);
      const query = url ? [...url.searchParams].find(([key, value]) => secretReason(value, key)) : undefined;
      const fix = `move it to NIGHTSHIFT_HOME/.env as ${fallback}=…, remove it from the URL and set mcp.servers.${name}.auth_env: ${fallback} (sent as Authorization: Bearer)`;
      if (url?.password || url?.username) flag([...base, "url"], "has credentials in it", fix);
      else if (query) flag([...base, "url"], `has a secret in its ${query[0]} parameter`, fix);
    }
  }
  return found;
}
