#!/usr/bin/env node
// The composition root: parses the command line, wires config, runtime and memory together, and is
// the only place that exits. User mistakes print one message and no stack.
//
// Each command imports what it needs when it runs (the SDK, grammy, zod and pino are most of a
// start-up): `status`, `approve`, `cancel` and `--help` load only Node's own modules and a few small
// files of ours, so they answer about as fast as Node starts. Keep new imports here lazy.
import { existsSync } from "node:fs";
import module from "node:module";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { systemClock } from "../runtime/clock.ts";
import { isUserError } from "../runtime/errors.ts";
import { storageFault, storageMessage } from "../runtime/write-gate.ts";
import { resolveHome } from "../runtime/home.ts";
import { UsageError } from "./usage.ts";

const HELP = `nightshift: a personal agent runtime

  nightshift init                  create NIGHTSHIFT_HOME (default ~/.nightshift) with defaults
  nightshift start                 the daemon: watches inbox/ and schedules/, runs the queue, resumes after a crash
  nightshift status [TASK]         tasks and their state; one task's timeline
  nightshift cancel TASK           stop a task at its next safe point (its running command is killed)
  nightshift service install       a systemd user unit (Linux) or launchd agent (macOS) for the daemon
  nightshift run FILE|"PROMPT"     run one task in the foreground: progress on stderr, answer on stdout
      --workdir DIR                  work in DIR instead of a fresh folder under workspace/
      --resume ID                    continue session ID from its log (a failed one is tried again; with a daemon, it does it)
      --quiet                        no progress lines
  nightshift approve [ID] [--task] allow a pending approval once (or for the rest of its task); no ID lists them
  nightshift deny ID [--reason T]  deny it; the agent sees the reason
  nightshift pair [--no-wait]      a one-time code: send /start CODE to the bot on Telegram to pair with it
      --list | --remove ID           the paired Telegram users (and telegram.allowed_users); unpair one
  nightshift memory consolidate    run the memory consolidator now (it runs nightly at memory.consolidate)
  nightshift memory undo|show      restore the previous MEMORY.md; show the memory and its last changes
  nightshift digest                the digest now: printed here, and sent on Telegram when the daemon runs
  nightshift dashboard             a one-time login link for the dashboard (http://127.0.0.1:7420 by default)
      --logout-all                   end every dashboard session instead
  nightshift mcp list [NAME]       MCP servers (started in the sandbox), their tools, pin state and token cost
  nightshift mcp approve NAME      pin the server's tool definitions; a tool that changes later is withheld
  nightshift skills add PATH|URL   install an Agent Skill from a folder or .tar.gz/.zip (a URL: HTTPS): shows its files and red flags, pins its hash
  nightshift skills list|approve NAME|remove NAME   the skills and their state; approve one after a change; move one aside
  nightshift changes ID            what a task with a staged copy changed, with the diff
  nightshift apply ID | discard ID put those changes into the folder (merging your own edits) | throw them away
  nightshift doctor                check Node, folders, sandbox, model endpoints; each problem with its fix
  nightshift config schema         print the JSON Schema of config.yaml
  nightshift store migrate         move this home's tasks into the shared PostgreSQL store (store: / NIGHTSHIFT_DATABASE_URL)

Environment: NIGHTSHIFT_HOME, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, TELEGRAM_BOT_TOKEN (and NIGHTSHIFT_HOME/.env).
Exit codes: 0 done, 1 failed or cancelled, 2 bad input.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      workdir: { type: "string" },
      resume: { type: "string" },
      quiet: { type: "boolean", short: "q" },
      task: { type: "boolean" },
      reason: { type: "string" },
      list: { type: "boolean" },
      remove: { type: "string" },
      "no-wait": { type: "boolean" },
      "logout-all": { type: "boolean" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean" },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || command === "help") return print(HELP, 0);
  if (values.version) return print("nightshift 0.1.0", 0);
  const env = process.env;

  switch (command) {
    case "init": {
      const home = resolveHome(env);
      const { initHome } = await import("./init.ts");
      const { created, kept } = initHome(home);
      const lines = [`Nightshift home: ${home}`];
      if (created.length) lines.push(`created: ${created.join(", ")}`);
      if (kept.length) lines.push(`kept as they were: ${kept.join(", ")}`);
      lines.push("", "Next: set ANTHROPIC_API_KEY (in your shell or in .env there), then `nightshift doctor`.");
      return print(lines.join("\n"), 0);
    }
    case "doctor": {
      useCompileCache(env);
      const [{ loadConfig }, { createSandbox }, { formatChecks, runDoctor }] = await Promise.all([import("../runtime/config.ts"), import("../runtime/runtime.ts"), import("./doctor.ts")]);
      const loaded = loadConfig(env);
      const sandbox = createSandbox(loaded);
      const checks = await runDoctor({ loaded, sandbox, nodeVersion: process.version });
      await sandbox.close?.(); // srt's bridge and proxy would keep the process alive
      const failed = checks.filter((check) => !check.ok && check.level !== "warn").length;
      print(formatChecks(checks), 0);
      return print(failed ? `\n${failed} problem${failed > 1 ? "s" : ""} to fix.` : "\nAll good.", failed ? 1 : 0);
    }
    case "mcp": {
      useCompileCache(env);
      const [{ loadConfig }, { mcpCommand, openSharedPins }] = await Promise.all([import("../runtime/config.ts"), import("./mcp.ts")]);
      const loaded = loadConfig(env);
      // Several machines: approvals are read from and recorded in the shared store (not for a usage mistake).
      const shared = rest[0] === "list" || rest[0] === "approve" ? await openSharedPins(loaded, rest[0]) : undefined;
      try {
        const { text, code } = await mcpCommand(rest[0], rest.slice(1), loaded, new Date(), undefined, shared?.pins);
        return print(shared?.note ? `${shared.note}\n\n${text}` : text, code);
      } finally {
        await shared?.close();
      }
    }
    case "store": {
      useCompileCache(env);
      const [{ loadConfig }, { storeCommand }] = await Promise.all([import("../runtime/config.ts"), import("./store.ts")]);
      return print(await storeCommand(rest, loadConfig(env), systemClock), 0);
    }
    case "config": {
      if (rest[0] !== "schema") throw new UsageError("usage: nightshift config schema");
      const { configJsonSchema } = await import("../runtime/config.ts");
      return print(JSON.stringify(configJsonSchema(), null, 2), 0);
    }
    case "run": {
      if (rest.length > 1) throw new UsageError(`nightshift run takes one task file or one quoted prompt; got ${rest.length} arguments (quote the prompt)`);
      useCompileCache(env);
      const [{ loadConfig }, { Shutdown }, { runCommand }] = await Promise.all([import("../runtime/config.ts"), import("../runtime/loop.ts"), import("./run.ts")]);
      const loaded = loadConfig(env);
      const controller = new AbortController();
      let interrupts = 0;
      process.on("SIGINT", () => {
        if (++interrupts > 1) process.exit(130);
        process.stderr.write("\ncancelling (Ctrl-C again to quit at once)…\n");
        controller.abort(new Error("cancelled with Ctrl-C"));
      });
      process.on("SIGTERM", () => controller.abort(new Shutdown("stopped by SIGTERM")));
      return runCommand(
        { ...(rest[0] !== undefined ? { target: rest[0] } : {}), ...(values.resume ? { resume: values.resume } : {}), ...(values.workdir ? { workdir: values.workdir } : {}), quiet: values.quiet ?? false },
        { loaded, clock: systemClock, stdout: process.stdout, stderr: process.stderr, signal: controller.signal, ...(process.stdin.isTTY ? { stdin: process.stdin } : {}) },
      );
    }
    case "start": {
      useCompileCache(env);
      const [{ loadConfig }, { startDaemon }] = await Promise.all([import("../runtime/config.ts"), import("./start.ts")]);
      const loaded = loadConfig(env);
      // Handlers before the start: a SIGTERM that arrives while it starts still stops it cleanly.
      const starting = startDaemon({ loaded, clock: systemClock, stderr: process.stderr });
      const stop = (signal: string) => {
        process.stderr.write(`\n${signal}: stopping; running tasks stop at a safe point and resume at the next start…\n`);
        void starting.then((daemon) => daemon.stop(), () => undefined);
      };
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
      await (await starting).stopped;
      return 0;
    }
    case "status": {
      if (rest.length > 1) throw new UsageError("nightshift status takes at most one task id");
      const { statusCommand } = await import("./status.ts");
      return print(await statusCommand(resolveHome(env), rest[0], Date.now()), 0);
    }
    case "cancel": {
      if (!rest[0]) throw new UsageError("nightshift cancel needs a task id (nightshift status lists them)");
      const { connectDaemon } = await import("../tasks/control-client.ts");
      const client = await connectDaemon(resolveHome(env));
      if (!client) throw new UsageError("no daemon is running; a task in `nightshift run` is cancelled with Ctrl-C");
      const outcome = await client.cancel(rest[0]);
      const text = { cancelling: `cancelling ${rest[0]}: it stops at the next safe point; a running command is killed`, cancelled: `cancelled ${rest[0]} before it started`, unknown: `no task ${rest[0]}; nightshift status lists them`, finished: `${rest[0]} has already finished` }[outcome] ?? outcome;
      return print(text, outcome === "unknown" ? 1 : 0);
    }
    case "memory":
    case "digest": {
      useCompileCache(env);
      const action = command === "digest" ? "digest" : rest[0];
      if (command === "memory" && (rest.length !== 1 || (action !== "consolidate" && action !== "undo" && action !== "show"))) throw new UsageError("usage: nightshift memory consolidate|undo|show");
      if (command === "digest" && rest.length) throw new UsageError("nightshift digest takes no arguments");
      const [{ loadConfig }, { memoryCommand }] = await Promise.all([import("../runtime/config.ts"), import("./memory.ts")]);
      return print(await memoryCommand(loadConfig(env), action as "consolidate" | "undo" | "show" | "digest", systemClock), 0);
    }
    case "service": {
      if (rest[0] !== "install") throw new UsageError("usage: nightshift service install");
      const [{ loadConfig }, { installService }, { existsSync }, { fileURLToPath }] = await Promise.all([import("../runtime/config.ts"), import("./service.ts"), import("node:fs"), import("node:url")]);
      const loaded = loadConfig(env);
      // The service runs the emitted JavaScript (`npm run build`): less memory and a faster start than .ts.
      const here = fileURLToPath(import.meta.url);
      const cliPath = here.endsWith(".js") ? here : fileURLToPath(new URL("../dist/cli/nightshift.js", import.meta.url));
      if (!existsSync(cliPath)) throw new UsageError(`${cliPath} is missing; run \`npm run build\` in the Nightshift folder first`);
      const result = installService({ platform: process.platform, nodePath: process.execPath, cliPath, home: loaded.home });
      return print(result.created ? `wrote ${result.path}\nNext: ${result.next}` : `${result.path} exists and was kept as it is; remove it to write a fresh one.\nTo enable it: ${result.next}`, 0);
    }
    case "pair": {
      if (rest.length) throw new UsageError("nightshift pair takes no arguments; to unpair a user: nightshift pair --remove ID");
      const { pairCommand } = await import("./pair.ts");
      const controller = new AbortController();
      process.once("SIGINT", () => controller.abort(new Error("stopped with Ctrl-C")));
      const io = { clock: systemClock, stdout: process.stdout, signal: controller.signal };
      const args = { list: values.list ?? false, ...(values.remove !== undefined ? { remove: values.remove } : {}), wait: !values["no-wait"] };
      if (args.list || args.remove !== undefined) {
        // Listing and unpairing need only telegram.allowed_users: read it alone, and the whole config
        // (which names any mistake) only when that value is not a plain list of ids.
        const home = resolveHome(env);
        const { peekSetting } = await import("../runtime/config-peek.ts");
        let peeked: unknown;
        try {
          peeked = (await peekSetting(home, ["telegram", "allowed_users"])) ?? [];
        } catch {
          peeked = undefined; // not YAML: loadConfig names the line
        }
        const allowedUsers = Array.isArray(peeked) && peeked.every((id) => Number.isSafeInteger(id) && id > 0) ? (peeked as number[]) : (await import("../runtime/config.ts")).loadConfig(env).config.telegram.allowed_users;
        return pairCommand(args, { ...io, home, env, allowedUsers, ...(args.remove !== undefined ? await unpairing(env) : {}) });
      }
      const [{ loadConfig }, { openSharedPairing }] = await Promise.all([import("../runtime/config.ts"), import("./pair.ts")]);
      const loaded = loadConfig(env);
      // Several machines: the code goes to the shared store, where the machine running the bot finds it
      // (this machine needs no token then); without a store, the bot token is what pairCommand checks.
      const shared = await openSharedPairing(loaded);
      try {
        return await pairCommand(args, { ...io, home: loaded.home, env: loaded.env, allowedUsers: loaded.config.telegram.allowed_users, ...(shared ? { shared } : {}) });
      } finally {
        await shared?.close();
      }
    }
    case "dashboard": {
      if (rest.length) throw new UsageError("nightshift dashboard takes no arguments (--logout-all ends every session)");
      const [{ loadConfig }, { dashboardCommand }, { connectDaemon }] = await Promise.all([import("../runtime/config.ts"), import("./dashboard.ts"), import("../tasks/control-client.ts")]);
      const loaded = loadConfig(env);
      const daemon = values["logout-all"] ? undefined : await connectDaemon(loaded.home);
      const { port, public_url } = loaded.config.dashboard;
      return print(dashboardCommand({ logoutAll: values["logout-all"] ?? false }, { home: loaded.home, clock: systemClock, port, ...(public_url ? { publicUrl: public_url } : {}), daemonRunning: daemon !== undefined }), 0);
    }
    case "approve":
    case "deny": {
      if (rest.length > 1) throw new UsageError(`nightshift ${command} takes one approval id; put a reason in --reason "…"`);
      if (command === "deny" && !rest[0]) throw new UsageError("nightshift deny needs the approval id (nightshift approve lists them)");
      const { answerCommand } = await import("./approve.ts");
      const { text, code } = await answerCommand(command, rest[0], { ...(values.task ? { task: true } : {}), ...(values.reason ? { reason: values.reason } : {}) }, resolveHome(env));
      return print(text, code);
    }
    case "changes":
    case "apply":
    case "discard": {
      if (rest.length > 1) throw new UsageError(`nightshift ${command} takes one task id`);
      const { applyCommand, changesCommand, discardCommand } = await import("./changes.ts");
      const home = resolveHome(env);
      const { text, code } = command === "changes" ? await changesCommand(home, rest[0]) : command === "apply" ? await applyCommand(home, rest[0]) : discardCommand(home, rest[0]);
      return print(text, code);
    }
    case "skills": {
      const { addSkillFromUrl, isUrl, skillsCommand } = await import("./skills.ts");
      const io = { home: resolveHome(env), clock: systemClock };
      const { text, code } = rest[0] === "add" && rest.length === 2 && isUrl(rest[1]!) ? await addSkillFromUrl(rest[1]!, io) : skillsCommand(rest, io);
      return print(text, code);
    }
    case undefined:
      return print(HELP, 0);
    default:
      throw new UsageError(`unknown command "${command}"; \`nightshift help\` lists the commands`);
  }
}

/**
 * V8's compile cache for the commands that load most of the program (the daemon, `run`, `doctor`,
 * `memory`): about a tenth off their module loading, measured. It lives in the user's own state
 * folder, never a shared temp folder (another user could plant code there), and only once that
 * folder exists, so the cache never creates NIGHTSHIFT_HOME with the wrong permissions.
 */
function useCompileCache(env: NodeJS.ProcessEnv): void {
  const state = join(resolveHome(env), "state");
  if (existsSync(state)) module.enableCompileCache?.(join(state, "compile-cache"));
}

function print(text: string, code: number): number {
  process.stdout.write(text + "\n");
  return code;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError || isUserError(error) || (error as { code?: string })?.code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`nightshift: ${(error as Error).message}\n`);
      process.exitCode = 2;
      return;
    }
    const fault = storageFault(error);
    if (fault) {
      // A full or read-only disk is not a bug: said plainly, with what to do.
      const fix = fault === "full" ? "free some space, then try again" : "make it writable again (remount it read-write), then try again";
      process.stderr.write(`nightshift: the disk is ${fault === "full" ? "full" : "read-only"}: ${storageMessage(error)}; ${fix}\n`);
      process.exitCode = 1;
      return;
    }
    process.stderr.write(`nightshift: unexpected error (a bug; please report it):\n${(error as Error)?.stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);

/** With a shared store (several machines), `nightshift pair --remove` unpairs on every machine: the others would otherwise share the user back. */
async function unpairing(env: NodeJS.ProcessEnv): Promise<{ unpairEverywhere?(id: number): Promise<void> }> {
  const { loadConfig, storeUrl } = await import("../runtime/config.ts");
  const loaded = loadConfig(env);
  const url = storeUrl(loaded);
  if (!url) return {};
  return {
    async unpairEverywhere(id) {
      const [{ connectForCommand }, { sharedTelegram }] = await Promise.all([import("./store-connect.ts"), import("../runtime/store/pg-telegram.ts")]);
      const store = (await connectForCommand(loaded, `unpair ${id} on every machine`, "With several machines the paired users are kept there"))!;
      try {
        await sharedTelegram(store.sql, store.machine).unpaired(id);
      } finally {
        await store.close();
      }
    },
  };
}
