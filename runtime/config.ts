import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { parseEnv } from "node:util";
import { z } from "zod";
import { cronNever, cronProblem } from "./cron.ts";
import { ConfigError } from "./errors.ts";
import { expandHome, resolveHome } from "./home.ts";
import { durationMs } from "./duration.ts";
import { validatePattern } from "./policy/policy.ts";
import { describeIssue, firstIssue, parseYaml, YamlSyntaxError } from "./yaml.ts";

export { expandHome, resolveHome };

const modelRole = z.strictObject({
  model: z.string().min(1).describe("Model id, e.g. claude-sonnet-5-5"),
  base_url: z.url().optional().describe("Messages API endpoint; default ANTHROPIC_BASE_URL or Anthropic's"),
  api_key_env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "must be an environment variable name like MY_API_KEY").optional()
    .describe("Name of the environment variable holding this role's key; default ANTHROPIC_API_KEY"),
  context_window: z.number().int().positive().default(200_000).describe("Tokens the model accepts"),
  max_tokens: z.number().int().positive().default(8192).describe("Output tokens per request"),
  server_compaction: z.enum(["auto", "on", "off"]).default("auto")
    .describe("Use the endpoint's server-side compaction; auto = on for api.anthropic.com"),
  tool_references: z.enum(["auto", "on", "off"]).default("auto")
    .describe("MCP tools load through tool references (deferred loading); auto = on for api.anthropic.com; off = tool_search returns their schemas as text and call_tool calls them"),
});

const price = z.strictObject({
  input: z.number().nonnegative(),
  output: z.number().nonnegative(),
  cache_read: z.number().nonnegative().optional(),
  cache_write: z.number().nonnegative().optional(),
}).describe("US dollars per million tokens");

/** Credentials commands and file tools never see. */
const DEFAULT_HIDDEN = [
  "~/.ssh", "~/.aws", "~/.gnupg", "~/.config/gh", "~/.netrc", "~/.docker/config.json", "~/.git-credentials", "~/.npmrc", "~/.pypirc", "~/.pgpass",
  "~/.kube", "~/.config/gcloud", "~/.azure", "~/.cargo/credentials.toml", "~/.cargo/credentials", "~/.password-store", "~/.local/share/keyrings",
  "~/.config/google-chrome", "~/.config/chromium", "~/.mozilla", "~/.terraform.d/credentials.tfrc.json", "~/.config/op", "~/.vault-token",
  // macOS keeps keychains, cookies and browser profiles under ~/Library (missing paths are skipped).
  "~/Library/Keychains", "~/Library/Cookies", "~/Library/Safari", "~/Library/Application Support/Google/Chrome", "~/Library/Application Support/Chromium",
  "~/Library/Application Support/Firefox", "~/Library/Application Support/BraveSoftware", "~/Library/Application Support/Microsoft Edge",
  "~/Library/Group Containers/2BUA8C4S2C.com.1password",
];

const ruleEntry = z
  .strictObject({
    read: z.string().min(1).optional().describe("Path glob: ~, {workdir}, {home}, ** and * work"),
    write: z.string().min(1).optional().describe("Path glob"),
    command: z.string().min(1).optional().describe("Command pattern, matched against each command of a shell line; * matches anything"),
    network: z.string().min(1).optional().describe("Domain: example.com, *.example.com or *"),
    tool: z.string().min(1).optional().describe("Tool name as the model sees it; * matches anything: mcp__github__*"),
  })
  .refine((entry) => Object.values(entry).filter((value) => value !== undefined).length === 1, {
    message: "each rule names exactly one of read, write, command, network or tool, e.g. { command: \"git push\" }",
  })
  .superRefine((entry, ctx) => {
    for (const kind of ["read", "write", "command", "network", "tool"] as const) {
      const pattern = entry[kind];
      const problem = pattern === undefined ? undefined : validatePattern(kind, pattern);
      if (problem) ctx.addIssue({ code: "custom", path: [kind], message: problem });
    }
  });

/** A 5-field cron expression in local time (crontab(5) rules, see runtime/cron.ts) that runs at some point. */
const cron = z
  .string()
  .refine((value) => value.trim().split(/\s+/).length === 5 && cronProblem(value) === undefined, "must be a cron expression with 5 fields, like \"0 3 * * *\" (03:00 every day)")
  .superRefine((value, ctx) => {
    const never = cronProblem(value) === undefined ? cronNever(value) : undefined;
    if (never) ctx.addIssue({ code: "custom", message: never });
  });

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name like GITHUB_TOKEN");

/** Tool names as the server spells them; include keeps only these, exclude drops these (after include). */
const toolFilter = z.strictObject({
  include: z.array(z.string().min(1)).optional().describe("Only these tools of the server"),
  exclude: z.array(z.string().min(1)).optional().describe("Never these tools of the server"),
});

/**
 * One MCP server: stdio (`command`) or remote (`url`). One flat object rather than a union, so a
 * mistake is reported as the field it is in, not as "no union member matched".
 */
const mcpServer = z.strictObject({
  command: z.string().min(1).optional().describe("stdio server: the program, run inside the sandbox"),
  args: z.array(z.string()).optional().describe("stdio server: its arguments"),
  env: z.record(envName, z.string()).optional()
    .describe("stdio server: literal, non-secret environment values; secrets go in .env and are named in env_from"),
  env_from: z.array(envName).optional().describe("stdio server: names of variables (environment or NIGHTSHIFT_HOME/.env) passed to it"),
  network: z.array(z.string()).optional().describe("stdio server: hosts it may reach through the proxy, e.g. api.github.com or *.example.com"),
  write: z.array(z.string()).optional().describe("stdio server: paths it may write besides NIGHTSHIFT_HOME/mcp/<name>/ (absolute or ~/…)"),
  url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL like https://mcp.example.com/mcp" }).optional()
    .describe("remote server: its streamable HTTP endpoint"),
  auth_env: envName.optional().describe("remote server: the variable whose value is sent as `Authorization: Bearer …`"),
  allow_private_network: z.boolean().optional()
    .describe("remote server: it may be on this machine or the local network (refused by default, like web_fetch)"),
  tools: toolFilter.default({}),
}).superRefine((server, ctx) => {
  if ((server.command === undefined) === (server.url === undefined)) {
    ctx.addIssue({ code: "custom", message: "needs exactly one of command (a stdio server) or url (a remote one)" });
    return;
  }
  const wrongSide = server.command !== undefined ? (["url", "auth_env", "allow_private_network"] as const) : (["args", "env", "env_from", "network", "write"] as const);
  for (const key of wrongSide) {
    if (server[key] !== undefined) ctx.addIssue({ code: "custom", path: [key], message: `belongs to a ${server.command !== undefined ? "remote (url)" : "stdio (command)"} server; remove it` });
  }
  server.network?.forEach((host, index) => {
    const problem = validatePattern("network", host);
    if (problem) ctx.addIssue({ code: "custom", path: ["network", index], message: problem });
  });
  server.write?.forEach((path, index) => {
    if (!/^(\/|~\/)/.test(path)) ctx.addIssue({ code: "custom", path: ["write", index], message: `${JSON.stringify(path)} is relative; write an absolute path or one starting with ~/` });
  });
});

/** Server names become part of tool names (mcp__<server>__<tool>, at most 64 characters in all). */
const mcpServerName = z.string().regex(/^[a-z0-9](?:[a-z0-9-]|_(?!_)){0,23}$/, "must be 1-24 lowercase letters, digits, - or single _, like github");

export const configSchema = z.strictObject({
  models: z.strictObject({
    main: modelRole.default({ model: "claude-sonnet-5-5", context_window: 200_000, max_tokens: 8192, server_compaction: "auto", tool_references: "auto" }),
    specialist: modelRole.default({ model: "claude-sonnet-5-5", context_window: 200_000, max_tokens: 4096, server_compaction: "auto", tool_references: "auto" }),
    small: modelRole.default({ model: "claude-haiku-5-5", context_window: 200_000, max_tokens: 4096, server_compaction: "off", tool_references: "auto" }),
  }).default({
    main: { model: "claude-sonnet-5-5", context_window: 200_000, max_tokens: 8192, server_compaction: "auto", tool_references: "auto" },
    specialist: { model: "claude-sonnet-5-5", context_window: 200_000, max_tokens: 4096, server_compaction: "auto", tool_references: "auto" },
    small: { model: "claude-haiku-5-5", context_window: 200_000, max_tokens: 4096, server_compaction: "off", tool_references: "auto" },
  }),
  prices: z.record(z.string(), price).default({
    "claude-sonnet-5-5": { input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 },
    "claude-haiku-5-5": { input: 1, output: 5, cache_read: 0.1, cache_write: 1.25 },
    "claude-opus-5-5": { input: 5, output: 25, cache_read: 0.5, cache_write: 6.25 },
  }).describe("Price table by model id; a model missing here is counted at the `default` entry or 0 with a warning"),
  budget: z.strictObject({
    max_turns: z.number().int().positive().default(40).describe("Model requests per task"),
    max_usd: z.number().positive().default(2).describe("Dollars per task"),
    timeout: durationMs.default(3_600_000).describe("Wall time per task, e.g. 30m or 2h"),
    daily_usd: z.number().positive().default(10).describe("Dollars per day across tasks"),
  }).default({ max_turns: 40, max_usd: 2, timeout: 3_600_000, daily_usd: 10 }),
  sandbox: z.strictObject({
    mode: z.enum(["auto", "bwrap", "srt", "off"]).default("auto")
      .describe("auto: bwrap on Linux, srt (sandbox-runtime: Seatbelt) on macOS; bwrap or srt picks one; off runs commands unconfined, flagged loudly by doctor and in every trace"),
    command_timeout: durationMs.default(120_000).describe("Time limit per command"),
    max_output_bytes: z.number().int().positive().default(30_000).describe("Output kept per command; the rest is dropped with a note"),
    allow_private_network: z.boolean().default(false).describe("Let commands reach loopback and private addresses through the proxy (a dev server on this machine)"),
    hide: z.array(z.string()).default(DEFAULT_HIDDEN)
      .describe("Paths that commands cannot read"),
    secret_env_patterns: z.array(z.string()).default([])
      .describe("Extra regular expressions; environment variables whose names match are removed from commands"),
  }).default({ mode: "auto", command_timeout: 120_000, max_output_bytes: 30_000, allow_private_network: false, hide: DEFAULT_HIDDEN, secret_env_patterns: [] }),
  permissions: z.strictObject({
    deny: z.array(ruleEntry).default([]).describe("Never allowed, whatever else matches"),
    ask: z.array(ruleEntry).default([]).describe("Allowed only after a human says yes"),
    allow: z.array(ruleEntry).default([]).describe("Allowed without asking, e.g. { network: registry.npmjs.org }"),
    defaults: z.boolean().default(true).describe("Add the built-in rules after yours: secrets denied, publishing asks, reads and workdir writes allowed"),
  }).default({ deny: [], ask: [], allow: [], defaults: true }),
  approvals: z.strictObject({
    expire: durationMs.default(1_800_000).describe("An unanswered approval is denied after this long"),
  }).default({ expire: 1_800_000 }),
  compaction: z.strictObject({
    threshold: z.number().gt(0).lt(1).default(0.7).describe("Fraction of the context window that triggers compaction"),
    keep_recent_turns: z.number().int().min(1).default(4).describe("Assistant turns kept verbatim after a checkpoint"),
  }).default({ threshold: 0.7, keep_recent_turns: 4 }),
  model_retries: z.strictObject({
    attempts: z.number().int().min(0).default(5).describe("Retries after the first try for 429, 529, 5xx, timeouts, broken streams"),
    initial_delay: durationMs.default(1000),
    max_delay: durationMs.default(60_000),
    request_timeout: durationMs.default(120_000).describe("Abandon (and retry) a request when the endpoint sends nothing for this long: no answer yet, or a stream that stalled. Raise it for a slow local model"),
  }).default({ attempts: 5, initial_delay: 1000, max_delay: 60_000, request_timeout: 120_000 }),
  daemon: z.strictObject({
    concurrency: z.number().int().min(1).max(64).default(2).describe("Tasks running at once"),
    max_crashes: z.number().int().min(0).default(3).describe("A task the daemon died under this many times fails instead of resuming"),
    timezone: z.string().optional().describe("IANA time zone for schedules, e.g. Europe/Berlin; default the system's"),
  }).default({ concurrency: 2, max_crashes: 3 }),
  tasks: z.strictObject({
    stage: z.enum(["auto", "on", "off"]).default("auto")
      .describe("Work on a staged copy that reaches the folder only with `nightshift apply`: auto = for a task whose workdir is your own folder (not a fresh one under workspace/); on = always; off = never (a task's `stage:` decides)"),
    keep_staged: durationMs.default(7 * 24 * 3_600_000).describe("Unapplied staged changes are discarded this long after their task last ran, with a notice"),
  }).default({ stage: "auto", keep_staged: 7 * 24 * 3_600_000 }),
  inbox: z.strictObject({
    max_bytes: z.number().int().positive().default(256 * 1024).describe("Larger task files are rejected"),
  }).default({ max_bytes: 256 * 1024 }),
  memory: z.strictObject({
    cap: z.number().int().min(1024).max(1024 * 1024).default(12 * 1024).describe("MEMORY.md size sessions see, in bytes; over it they see the newest and most cited entries, and you are told"),
    consolidate: cron.default("0 3 * * *").describe("When the consolidator runs (cron, local time); a run missed while asleep runs once on wake"),
    digest: cron.default("0 7 * * *").describe("When the daily digest goes to Telegram (cron, local time)"),
  }).default({ cap: 12 * 1024, consolidate: "0 3 * * *", digest: "0 7 * * *" }),
  specialists: z.strictObject({
    concurrency: z.number().int().min(1).max(16).default(4).describe("Specialists running at once across all tasks"),
    review_rounds: z.number().int().min(0).max(5).default(1).describe("Review rounds for a task that names specialists"),
  }).default({ concurrency: 4, review_rounds: 1 }),
  telegram: z.strictObject({
    allowed_users: z.array(z.number({ error: "must be a numeric Telegram user id (usernames can change hands; the daemon logs the id of anyone who messages the bot)" }).int().positive())
      .default([]).describe("Telegram user ids served besides those paired with `nightshift pair`"),
    edit_interval: durationMs.default(3000).describe("At most one progress edit per chat this often"),
    poll_timeout: durationMs.default(30_000).describe("Long-polling wait per getUpdates request"),
    watchdog: durationMs.default(90_000).describe("Polling restarts when no getUpdates has completed for this long"),
    notify: z.array(z.enum(["finished", "failed", "approval", "budget"])).default(["finished", "failed", "approval", "budget"])
      .describe("What paired users hear about for tasks not sent from Telegram"),
    max_file_bytes: z.number().int().positive().default(20 * 1024 * 1024).describe("Larger documents sent to the bot are refused"),
  }).refine((telegram) => telegram.watchdog > telegram.poll_timeout + 5000, { message: "must be longer than poll_timeout plus a few seconds, or every quiet poll is restarted", path: ["watchdog"] }).default({ allowed_users: [], edit_interval: 3000, poll_timeout: 30_000, watchdog: 90_000, notify: ["finished", "failed", "approval", "budget"], max_file_bytes: 20 * 1024 * 1024 }),
  dashboard: z.strictObject({
    port: z.number({ error: "must be a port number like 7420" }).int().min(1).max(65535).default(7420)
      .describe("Port of the dashboard on 127.0.0.1 (it never listens on other addresses)"),
    public_url: z.url({ protocol: /^https$/, error: "must be an https URL like https://nightshift.example.com (your tunnel's address)" })
      .refine((value) => { const url = URL.parse(value); return !url || (url.pathname === "/" && !url.search && !url.hash && !url.username); }, "must be the tunnel's origin alone, like https://nightshift.example.com (no path, query or credentials)")
      .optional().describe("The https address of a tunnel to the dashboard (cloudflared, tailscale serve); login links use it"),
  }).default({ port: 7420 }),
  mcp: z.strictObject({
    servers: z.record(mcpServerName, mcpServer).default({}).describe("MCP servers by name"),
  }).default({ servers: {} }),
  store: z.url({ protocol: /^postgres(ql)?$/, error: "must be a PostgreSQL URL like postgres://nightshift@db.example.com/nightshift" })
    .refine((value) => !URL.parse(value)?.password, "holds a password, which tasks could read in config.yaml: put the whole URL in NIGHTSHIFT_HOME/.env as NIGHTSHIFT_DATABASE_URL instead")
    .optional().describe("Several machines on one PostgreSQL: its URL (NIGHTSHIFT_DATABASE_URL, e.g. in .env, wins). Without it this machine keeps everything in its own files"),
  machine: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "must be a short name of letters, digits, dots, dashes or underscores, like home-server")
    .optional().describe("This machine's name among several on one store; default its host name"),
  log_level: z.enum(["trace", "debug", "info", "warn", "error", "silent"]).default("info"),
});

export type Config = z.output<typeof configSchema>;
export type ModelRoleConfig = z.output<typeof modelRole>;
export type RoleName = keyof Config["models"];
export type PriceTable = Config["prices"];
export type McpServerConfig = Config["mcp"]["servers"][string];

/** A model role with its endpoint and key resolved from config and environment. */
export interface ResolvedRole extends ModelRoleConfig {
  role: RoleName;
  baseURL: string | undefined;
  /** Name of the variable the key came from (for messages), never the key in logs. */
  apiKeyEnv: string;
  apiKey: string | undefined;
}

export interface LoadedConfig {
  home: string;
  config: Config;
  /** Environment merged from process.env and NIGHTSHIFT_HOME/.env (process wins). */
  env: Record<string, string | undefined>;
  /** The process environment alone: what commands may inherit (after scrubbing); .env is for Nightshift only. */
  processEnv: Record<string, string | undefined>;
  roles: Record<RoleName, ResolvedRole>;
}

/**
 * Reads config.yaml and .env from `home` and validates them once. A missing config.yaml means
 * defaults (so `nightshift run` works before `init`). Throws ConfigError naming the setting and fix.
 */
export function loadConfig(processEnv: Record<string, string | undefined>, home = resolveHome(processEnv)): LoadedConfig {
  const env = { ...readDotEnv(join(home, ".env")), ...processEnv };
  const file = join(home, "config.yaml");
  const text = readOptional(file);
  const config = parseConfigText(text ?? "", file);
  return { home, config, env, processEnv, roles: resolveRoles(config, env) };
}

export function parseConfigText(text: string, file: string): Config {
  let parsed;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    if (error instanceof YamlSyntaxError) {
      throw new ConfigError(file, `${file}${error.line ? `:${error.line}` : ""}: invalid YAML: ${error.message}. Fix the syntax (indentation, quotes, colons) and try again.`);
    }
    throw error;
  }
  const result = configSchema.safeParse(parsed.value ?? {});
  if (result.success) return result.data;
  const issue = firstIssue(result.error.issues);
  const { field, message, path } = describeIssue(issue);
  const line = parsed.lineOf(path);
  const hint = issue.code === "unrecognized_keys"
    ? "remove it or check its spelling (`nightshift config schema` lists every setting)"
    : "see `nightshift config schema` for what it accepts";
  throw new ConfigError(field, `${file}${line ? `:${line}` : ""}: setting \`${field}\`: ${message}; ${hint}.`);
}

function resolveRoles(config: Config, env: Record<string, string | undefined>): Record<RoleName, ResolvedRole> {
  const resolveRole = (role: RoleName): ResolvedRole => {
    const settings = config.models[role];
    const apiKeyEnv = settings.api_key_env ?? "ANTHROPIC_API_KEY";
    return {
      ...settings,
      role,
      baseURL: settings.base_url ?? (env.ANTHROPIC_BASE_URL || undefined),
      apiKeyEnv,
      apiKey: env[apiKeyEnv] || undefined,
    };
  };
  return { main: resolveRole("main"), specialist: resolveRole("specialist"), small: resolveRole("small") };
}

/** Fails with a clear message when a role cannot talk to its endpoint at all. */
/** The shared store's URL, if this machine is one of several: NIGHTSHIFT_DATABASE_URL, else `store:`. */
export function storeUrl(loaded: Pick<LoadedConfig, "config" | "env">): string | undefined {
  return loaded.env.NIGHTSHIFT_DATABASE_URL?.trim() || loaded.config.store;
}

/** Which setting names the shared store: said instead of the URL, which may hold a password. */
export function storeSetting(loaded: Pick<LoadedConfig, "env">): string {
  return loaded.env.NIGHTSHIFT_DATABASE_URL?.trim() ? "NIGHTSHIFT_DATABASE_URL" : "store: in config.yaml";
}

/** This machine's name on the shared store: `machine:`, else the host name (cut to what `machine:` allows). */
export function machineName(config: Config, host = hostname()): string {
  return config.machine ?? (host.replace(/[^A-Za-z0-9._-]/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 63) || "machine");
}

/** This machine's name when it is one of several on a shared store; undefined when it runs alone. */
export function sharedMachine(loaded: Pick<LoadedConfig, "config" | "env">): string | undefined {
  return storeUrl(loaded) ? machineName(loaded.config) : undefined;
}

export function requireApiKey(role: ResolvedRole): string {
  if (role.apiKey) return role.apiKey;
  const local = role.baseURL && /^https?:\/\/(localhost|127\.|\[::1\])/.test(role.baseURL);
  if (local) return "local"; // Ollama and llama.cpp accept any key
  throw new ConfigError(role.apiKeyEnv, `${role.apiKeyEnv} is not set: the \`${role.role}\` model role needs an API key. Set it in your shell or in NIGHTSHIFT_HOME/.env (${role.apiKeyEnv}=sk-...), or point models.${role.role}.base_url at a local model.`);
}

function readDotEnv(file: string): Record<string, string> {
  const text = readOptional(file);
  if (text === undefined) return {};
  try {
    return parseEnv(text) as Record<string, string>;
  } catch (error) {
    throw new ConfigError(file, `${file}: cannot be read as KEY=value lines (${(error as Error).message}); fix or remove it.`);
  }
}

function readOptional(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new ConfigError(file, `${file}: cannot be read (${(error as NodeJS.ErrnoException).code}); check its permissions.`);
  }
}

/** JSON Schema of config.yaml, generated from the zod schema. */
export function configJsonSchema(): unknown {
  return z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any" });
}

export type SandboxBackend = "bwrap" | "srt" | "off";

/** The backend `sandbox.mode` means on this platform: `auto` is bubblewrap on Linux and sandbox-runtime on macOS. */
export function sandboxBackend(mode: Config["sandbox"]["mode"], platform: NodeJS.Platform = process.platform): SandboxBackend {
  if (mode !== "auto") return mode;
  return platform === "darwin" ? "srt" : "bwrap";
}
