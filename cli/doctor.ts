import Anthropic, { APIConnectionError, APIError } from "@anthropic-ai/sdk";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createPairingStore } from "../bot/pairing.ts";
import { openMemory, openMemoryRuns } from "../memory/index.ts";
import { machineName, storeSetting, storeUrl, systemClock, type LoadedConfig, type Sandbox } from "../runtime/index.ts";
import { checkTimezone, cronRarity, cronSlots } from "../runtime/cron.ts";
import { findConfigSecrets } from "../runtime/mcp/secrets.ts";
import { BUILTIN_TOOL_NAMES, loadAgents } from "../runtime/specialists/agents.ts";
import { loadSkills } from "../runtime/skills/library.ts";
import { readSchedules } from "../tasks/schedules.ts";
import { FOLDERS } from "./init.ts";
import { settingsHash } from "../runtime/shared-settings.ts";
import { describeSettings, readSettingsState } from "../tasks/settings-state.ts";

export interface Check {
  ok: boolean;
  /** "warn" is shown but does not fail doctor. */
  level?: "warn";
  label: string;
  fix?: string;
}

export interface DoctorInput {
  loaded: LoadedConfig;
  sandbox: Sandbox;
  nodeVersion: string;
  /** Milliseconds per endpoint check. */
  timeoutMs?: number;
}

/** Every check, each with a fix when it fails. Never throws. */
export async function runDoctor({ loaded, sandbox, nodeVersion, timeoutMs = 5000 }: DoctorInput): Promise<Check[]> {
  const checks: Check[] = [checkNode(nodeVersion), ...checkFolders(loaded.home), ...checkSpecialists(loaded.home), ...checkSkills(loaded.home)];
  const probe = await sandbox.probe();
  if (loaded.config.sandbox.mode === "off") {
    checks.push({ ok: false, level: "warn", label: "SANDBOX IS OFF: commands the model chooses run unconfined on this machine", fix: "set `sandbox: { mode: auto }` in config.yaml" });
  } else {
    const mode = `sandbox.mode: ${loaded.config.sandbox.mode}`;
    checks.push(probe.ok ? { ok: true, label: `sandbox works (${probe.kind}, ${mode})` } : { ok: false, label: `sandbox unavailable (${probe.kind}, ${mode}): bash will be refused`, fix: probe.problem ?? "install bubblewrap" });
  }
  // socat carries the network into a Linux sandbox (ours and srt's); Seatbelt needs no relay.
  if (loaded.config.sandbox.mode !== "off" && !(probe.kind === "srt" && process.platform === "darwin")) checks.push(checkTool("socat", ["-V"], "network for sandboxed commands (the relay to the filtering proxy)", "sudo apt-get install socat` or `brew install socat"));
  checks.push(checkRipgrep());
  checks.push(...(await checkEndpoints(loaded, timeoutMs)));
  checks.push(...(await checkTelegram(loaded, timeoutMs)));
  checks.push(...(await checkStore(loaded, timeoutMs)));
  checks.push(...checkSharedSettings(loaded));
  checks.push(...checkMemory(loaded));
  checks.push(...checkConfigSecrets(loaded.home));
  checks.push(...(await checkMcpServers(loaded)));
  if (existsSync(loaded.home)) {
    const timezone = loaded.config.daemon.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
    const jobs = { "memory.consolidate": loaded.config.memory.consolidate, "memory.digest": loaded.config.memory.digest };
    checks.push(...(await checkSchedules({ home: loaded.home, timezone, jobs, now: Date.now() })));
  }
  return checks;
}

/**
 * schedules/ as the daemon would load it: a bad file fails, a schedule (or a memory job in config)
 * whose next run is more than a year away or never comes is a warning; the rest, with their next run.
 */
export async function checkSchedules({ home, timezone, jobs, now }: { home: string; timezone: string; jobs: Record<string, string>; now: number }): Promise<Check[]> {
  try {
    checkTimezone(timezone);
  } catch (error) {
    return [{ ok: false, label: `daemon.${(error as Error).message}`, fix: "set daemon.timezone in config.yaml to an IANA zone, or remove it to use the system's" }];
  }
  const checks: Check[] = [];
  const fine: string[] = [];
  const when = new Intl.DateTimeFormat("sv-SE", { timeZone: timezone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  for (const item of await readSchedules(join(home, "schedules"))) {
    if (!("file" in item)) {
      checks.push({ ok: false, label: item.message, fix: `edit schedules/${item.name}.md as the message says; until then it does not run` });
      continue;
    }
    const rarity = cronRarity(item.schedule, timezone, now);
    if (rarity) {
      checks.push({ ok: false, level: "warn", label: `${item.path}: schedule ${rarity}`, fix: `edit schedule: in schedules/${item.name}.md` });
      continue;
    }
    const slots = cronSlots(item.schedule, timezone);
    const next = slots.next(now);
    slots.dispose();
    fine.push(`${item.name} (next ${next === undefined ? "never" : when.format(next)} ${timezone})`);
  }
  for (const [setting, cron] of Object.entries(jobs)) {
    const rarity = cronRarity(cron, timezone, now);
    if (rarity) checks.push({ ok: false, level: "warn", label: `${setting}: ${rarity}`, fix: `set ${setting} in config.yaml` });
  }
  if (fine.length > 0) checks.unshift({ ok: true, label: `schedules: ${fine.join(", ")}` });
  return checks;
}

/** Keys and tokens written into config.yaml's MCP servers: each with its line and where it belongs instead. */
export function checkConfigSecrets(home: string): Check[] {
  const file = join(home, "config.yaml");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  return findConfigSecrets(text).map((secret) => ({
    ok: false,
    label: `${file}${secret.line ? `:${secret.line}` : ""}: \`${secret.field}\` ${secret.why}: secrets do not belong in config.yaml`,
    fix: secret.fix,
  }));
}

/** MEMORY.md against its cap, and how the last consolidation went: nothing about memory is silent. */
function checkMemory(loaded: LoadedConfig): Check[] {
  const checks: Check[] = [];
  const memory = openMemory(loaded.home, systemClock, loaded.config.memory.cap);
  const over = memory.overCap();
  const { entries, bytes } = memory.store.read();
  checks.push(over ? { ok: false, level: "warn", label: over, fix: "let tonight's consolidation retire entries, edit MEMORY.md, or raise memory.cap" } : { ok: true, label: `memory: ${entries.length} entries, ${(bytes / 1024).toFixed(1)} of ${(loaded.config.memory.cap / 1024).toFixed(0)} KB` });
  // Every line of the journal (doctor is run by hand): one that does not read is skipped by memory, never silently.
  const damaged = memory.journal.damaged();
  for (const line of damaged.slice(0, 5)) checks.push({ ok: false, level: "warn", label: `${line.file} line ${line.id.split("#")[1]} does not read (${line.problem}): memory skips it`, fix: "fix or remove the line by hand (it is kept as it is)" });
  if (damaged.length > 5) checks.push({ ok: false, level: "warn", label: `and ${damaged.length - 5} more journal lines that do not read`, fix: "fix or remove them by hand" });
  const runs = openMemoryRuns(join(loaded.home, "state")).read();
  if (runs.damaged) checks.push({ ok: false, level: "warn", label: `${join(loaded.home, "state", "memory.json")} does not read (${runs.damaged}): the next consolidation reads the whole journal again`, fix: "nothing to do: the next consolidation moves it aside as memory.json.damaged-<time> and starts a new one" });
  const last = runs.runs.filter((run) => run.status !== "nothing-new").at(-1);
  if (last && last.status !== "applied") checks.push({ ok: false, level: "warn", label: `the last memory consolidation was ${last.status}: ${last.problem ?? "no reason recorded"}`, fix: "memory is unchanged; it tries again tonight, or run `nightshift memory consolidate`" });
  return checks;
}

/** The bot token works (getMe) and someone can use the bot. Never prints the token. */
async function checkTelegram(loaded: LoadedConfig, timeoutMs: number): Promise<Check[]> {
  const token = loaded.env.TELEGRAM_BOT_TOKEN?.trim();
  if (!token) return [{ ok: true, label: "Telegram off (no TELEGRAM_BOT_TOKEN; create a bot with @BotFather to steer Nightshift from your phone)" }];
  const root = (loaded.env.TELEGRAM_API_ROOT ?? "https://api.telegram.org").replace(/\/+$/, "");
  const checks: Check[] = [];
  try {
    const response = await fetch(`${root}/bot${token}/getMe`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await response.json().catch(() => ({}))) as { ok?: boolean; result?: { username?: string } };
    if (body.ok && body.result?.username) checks.push({ ok: true, label: `Telegram bot @${body.result.username}` });
    else if (response.status === 401 || response.status === 404) checks.push({ ok: false, label: "Telegram refuses TELEGRAM_BOT_TOKEN", fix: "copy the token again from @BotFather (/mybots → API Token) into .env" });
    else checks.push({ ok: false, label: `Telegram answered ${response.status} to getMe`, fix: "try again later; if it persists, check TELEGRAM_API_ROOT" });
  } catch {
    checks.push({ ok: false, level: "warn", label: "Telegram is not reachable now", fix: "messages wait in the outbox until it is; check the network (and TELEGRAM_API_ROOT if set)" });
  }
  let paired = 0;
  try {
    paired = createPairingStore(join(loaded.home, "state", "telegram"), systemClock).users().length;
  } catch (error) {
    checks.push({ ok: false, label: (error as Error).message });
  }
  const users = paired + loaded.config.telegram.allowed_users.length;
  checks.push(users > 0 ? { ok: true, label: `Telegram users: ${users}` } : { ok: false, level: "warn", label: "nobody is paired with the Telegram bot", fix: "run `nightshift pair` and send the bot the code" });
  return checks;
}

/**
 * The shared store, when one is configured: the database answers, and its schema is the one this
 * Nightshift knows. Reads only (the next start migrates). The URL is never printed (it may hold a
 * password): the setting is named instead.
 */
export async function checkStore(loaded: LoadedConfig, timeoutMs: number): Promise<Check[]> {
  const url = storeUrl(loaded);
  if (!url) return [];
  const setting = storeSetting(loaded);
  const machine = `this machine is ${machineName(loaded.config)}${loaded.config.machine ? "" : " (its host name; set machine: in config.yaml to name it)"}`;
  const [{ default: postgres }, { SCHEMA_VERSION, schemaVersion }] = await Promise.all([import("postgres"), import("../runtime/store/pg.ts")]);
  const sql = postgres(url, { max: 1, connect_timeout: Math.max(1, Math.ceil(timeoutMs / 1000)), onnotice: () => {} });
  try {
    const version = await Promise.race([schemaVersion(sql), new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs).unref())]);
    const answers = `shared store (${setting}) answers`;
    if (version === undefined) return [{ ok: true, label: `${answers}; it holds no Nightshift schema yet: the next \`nightshift start\` creates it (version ${SCHEMA_VERSION}); ${machine}` }];
    if (version === SCHEMA_VERSION) return [{ ok: true, label: `${answers}, schema version ${version} (this Nightshift's); ${machine}` }];
    if (version < SCHEMA_VERSION) {
      return [{ ok: false, level: "warn", label: `${answers}, schema version ${version}, older than this Nightshift's ${SCHEMA_VERSION}: the next \`nightshift start\` here migrates it`, fix: `update Nightshift on the other machines too: one older than the schema refuses to start` }];
    }
    return [{ ok: false, label: `${answers}, but its schema version ${version} is newer than this Nightshift's ${SCHEMA_VERSION}: a machine with a newer Nightshift migrated it, and this one cannot use it`, fix: "update Nightshift on this machine to the version the other machines run, then start it again" }];
  } catch (error) {
    return [{ ok: false, label: `shared store (${setting}) does not answer: ${withoutSecrets((error as Error).message, url)}`, fix: `check that PostgreSQL runs and that ${setting} names it (host, port, database, user and password), or remove the setting to run this machine on its own files` }];
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/** Several machines: where the permission policy and MCP servers this machine runs came from (tasks/shared-settings.ts). */
function checkSharedSettings(loaded: LoadedConfig): Check[] {
  if (!storeUrl(loaded)) return [];
  const state = readSettingsState(loaded.home);
  const hash = settingsHash(loaded.config);
  const label = `shared settings (permissions, mcp): ${describeSettings(state, machineName(loaded.config), hash)}`;
  if (state.refused) return [{ ok: false, level: "warn", label, fix: `fix the settings in config.yaml on ${state.refused.from} (or change them on any machine: the next valid change published wins)` }];
  if (state.unpublished?.hash === hash) return [{ ok: false, level: "warn", label, fix: "fix config.yaml as the message says; the daemon publishes it at its next heartbeat" }];
  return [{ ok: true, label }];
}

/** A message about a connection, with its URL and password taken out wherever they appear. */
function withoutSecrets(message: string, url: string): string {
  const password = URL.parse(url)?.password;
  let text = message.split(url).join("(the URL)");
  for (const secret of password ? [password, decodeURIComponent(password)] : []) text = text.split(secret).join("***");
  return text;
}

function checkNode(version: string): Check {
  const [major = 0, minor = 0] = version.replace(/^v/, "").split(".").map(Number);
  if (major > 22 || (major === 22 && minor >= 13)) return { ok: true, label: `Node ${version}` };
  return { ok: false, label: `Node ${version} is too old (Nightshift needs 22.13 or newer: node:sqlite, 24 LTS recommended)`, fix: "run through npm (`npx nightshift …`), which uses the Node 24 installed with Nightshift, or install Node 24" };
}

function checkFolders(home: string): Check[] {
  if (!existsSync(home)) return [{ ok: false, label: `${home} does not exist`, fix: "run `nightshift init`" }];
  // skills/ came later and is optional: a home from before it is not broken.
  const missing = FOLDERS.filter((folder) => folder !== "skills" && !existsSync(join(home, folder)));
  const files = ["config.yaml", "IDENTITY.md"].filter((file) => !existsSync(join(home, file)));
  if (missing.length || files.length) {
    return [{ ok: false, label: `${home} lacks ${[...missing.map((f) => f + "/"), ...files].join(", ")}`, fix: "run `nightshift init` (it never overwrites what exists)" }];
  }
  return [{ ok: true, label: `home ${home}` }];
}

/** The specialists consult can use, and one failing check per agent file left out. */
function checkSpecialists(home: string): Check[] {
  if (!existsSync(home)) return []; // checkFolders already says to run init
  const { agents, problems } = loadAgents(join(home, "agents"), BUILTIN_TOOL_NAMES);
  const checks: Check[] = problems.map((problem) => ({
    ok: false,
    label: problem.message,
    fix: `edit ${problem.file} as the message says, or delete it; until then consult cannot use it`,
  }));
  if (agents.size > 0) checks.unshift({ ok: true, label: `specialists: ${[...agents.keys()].join(", ")}` });
  else if (problems.length === 0) checks.unshift({ ok: false, level: "warn", label: "no specialists in agents/: consult has nobody to ask", fix: "run `nightshift init` to restore planner, reviewer and challenger, or add agents/<name>.md" });
  return checks;
}

/** Installed skills; a warning for each one withheld from the agent (invalid, changed, not approved). */
function checkSkills(home: string): Check[] {
  const entries = loadSkills(home);
  const ready = entries.filter((entry) => entry.state === "ready").map((entry) => entry.name);
  const checks: Check[] = entries.flatMap((entry) => (entry.problem ? [{ ok: false, level: "warn" as const, label: entry.problem, fix: entry.state === "invalid" ? "fix it as the message says, or nightshift skills remove it" : `nightshift skills approve ${entry.name} once you have checked it` }] : []));
  if (ready.length) checks.unshift({ ok: true, label: `skills: ${ready.join(", ")}` });
  return checks;
}

/**
 * Starts each configured MCP server as a session would (stdio ones in the sandbox), lists its
 * tools and compares them with their pins, then stops it. A server that cannot start fails; tools
 * withheld until approved are a warning.
 */
export async function checkMcpServers(loaded: LoadedConfig, timeoutMs = 20_000): Promise<Check[]> {
  const names = Object.keys(loaded.config.mcp.servers);
  if (names.length === 0) return [];
  // Imported here: the MCP client costs about 0.5 s to load, which a home without servers never pays.
  const { openMcpHost, comparePins, currentPins } = await import("../runtime/mcp/index.ts");
  let host;
  try {
    host = await openMcpHost(loaded, { timeoutMs });
  } catch (error) {
    return [{ ok: false, label: `MCP servers cannot start: ${(error as Error).message}` }];
  }
  // Several machines: a tool approved on any machine is approved here (runtime/store/pg-pins.ts); with the store away, this machine's own approvals, said so.
  const { connectForCommand } = await import("./store-connect.ts");
  let alone = "";
  const store = await connectForCommand(loaded, "compare MCP tools with every machine's approvals", "doctor compares them with this machine's own").catch((error: unknown) => void (alone = ` (compared with this machine's approvals only: ${(error as Error).message.split(":")[0]})`));
  const shared = store ? (await import("../runtime/store/pg-pins.ts")).sharedPins(store.sql, store.machine) : undefined;
  const kind = host.sandbox.kind;
  try {
    return await Promise.all(
      names.map(async (name): Promise<Check> => {
        const started = Date.now();
        try {
          const server = await host.connect(name);
          const where = loaded.config.mcp.servers[name]!.url ? "remote" : `in ${kind}`;
          const states = comparePins(server.tools, await currentPins(loaded.home, name, server.tools, shared));
          const withheld = states.filter((state) => state.state !== "pinned").map((state) => `${state.name} (${state.state})`);
          const label = `MCP server \`${name}\`: ${server.tools.length} tool${server.tools.length === 1 ? "" : "s"}, started ${where} in ${Date.now() - started} ms`;
          if (withheld.length === 0) return { ok: true, label };
          return { ok: false, level: "warn", label: `${label}; withheld until approved: ${withheld.join(", ")}${alone}`, fix: `check them with \`nightshift mcp list ${name}\`, then \`nightshift mcp approve ${name}\`` };
        } catch (error) {
          return { ok: false, label: (error as Error).message, fix: `fix mcp.servers.${name} in config.yaml as the message says, or remove it; \`nightshift mcp list ${name}\` shows more` };
        }
      }),
    );
  } finally {
    await host.close();
    await store?.close().catch(() => {});
  }
}

function checkTool(name: string, args: string[], purpose: string, install: string): Check {
  const result = spawnSync(name, args, { encoding: "utf8" });
  if (result.status === 0) return { ok: true, label: `${name} found` };
  return { ok: false, label: `${name} not found: no ${purpose}`, fix: `install it: \`${install}\`` };
}

function checkRipgrep(): Check {
  const result = spawnSync("rg", ["--version"], { encoding: "utf8" });
  if (result.status === 0) return { ok: true, label: `ripgrep ${result.stdout.split("\n")[0]?.split(" ")[1] ?? ""}`.trim() };
  return { ok: false, label: "ripgrep (rg) not found: search_files will not work", fix: "install it: `sudo apt-get install ripgrep` or `brew install ripgrep`" };
}

async function checkEndpoints(loaded: LoadedConfig, timeoutMs: number): Promise<Check[]> {
  const seen = new Map<string, string[]>();
  for (const role of Object.values(loaded.roles)) {
    const key = `${role.baseURL ?? "https://api.anthropic.com"}|${role.apiKeyEnv}`;
    seen.set(key, [...(seen.get(key) ?? []), role.role]);
  }
  return Promise.all(
    [...seen].map(async ([key, roles]) => {
      const [endpoint, keyEnv] = key.split("|") as [string, string];
      const role = loaded.roles[roles[0] as "main"];
      const who = `${roles.join(", ")} → ${endpoint}`;
      const local = /^https?:\/\/(localhost|127\.|\[::1\])/.test(endpoint);
      if (!role.apiKey && !local) return { ok: false, label: `${who}: ${keyEnv} is not set`, fix: `export ${keyEnv}=sk-… or add it to ${join(loaded.home, ".env")}` };
      const client = new Anthropic({ apiKey: role.apiKey ?? "local", baseURL: role.baseURL ?? null, maxRetries: 0, timeout: timeoutMs });
      try {
        await client.models.list({ limit: 1 });
        return { ok: true, label: `${who}: reachable, key accepted` };
      } catch (error) {
        if (error instanceof APIConnectionError) return { ok: false, label: `${who}: not reachable (${error.name === "APIConnectionTimeoutError" ? "timed out" : (error.cause as Error)?.message ?? error.message})`, fix: "check the network, or models.*.base_url in config.yaml" };
        if (error instanceof APIError && error.status === 401) return { ok: false, label: `${who}: the key in ${keyEnv} was rejected`, fix: `set a valid key in ${keyEnv}` };
        if (error instanceof APIError) return { ok: true, label: `${who}: reachable (answered ${error.status} to a model list)` };
        return { ok: false, label: `${who}: ${(error as Error).message}` };
      }
    }),
  );
}

export function formatChecks(checks: Check[]): string {
  return checks
    .map((check) => {
      const mark = check.ok ? "✓" : check.level === "warn" ? "!" : "✗";
      return `${mark} ${check.label}${check.fix && !check.ok ? `\n    fix: ${check.fix}` : ""}`;
    })
    .join("\n");
}
