import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { startBotApi, type BotApi } from "./bot-api.ts";
import { CLI, nightshift, until } from "./cli.ts";
import { tempDir } from "./home.ts";
import { startMessagesApi, type MessagesApi, type Responder } from "./messages-api.ts";
import { describeMissing, findOnPath, PREREQUISITES } from "./prerequisites.ts";
import { freePort } from "./ports.ts";
export { freePort };

/**
 * A real daemon (`nightshift start` in a child process, its dashboard on a free port) and a real
 * headless Chromium, for the dashboard's browser test and its benchmark. playwright-core is
 * imported only when a browser is launched, so a test file that skips never loads it.
 */

/** A phone's screen (an iPhone 12 to 15 in CSS pixels): the width the dashboard is made for. */
export const PHONE = { width: 390, height: 844 } as const;

/**
 * This machine's network is closed and a test must not depend on one: the flags stop Chromium's
 * own background requests (component updates, sync, field trials). As root Chromium needs
 * --no-sandbox; headless needs no GPU.
 */
const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];

export async function launchChromium(): Promise<Browser> {
  const executablePath = findOnPath("chromium-headless-shell");
  if (!executablePath) throw new Error(describeMissing(PREREQUISITES.filter((item) => item.tool === "chromium-headless-shell")));
  const { chromium } = await import("playwright-core");
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS });
}

/** The Telegram user the daemon asks when `telegram` is on (telegram.allowed_users). */
export const TELEGRAM_USER = 4242;

export interface DashboardDaemonOptions {
  /** The Messages API stand-in's answers (default: "Done." to everything). */
  responder?: Responder;
  /**
   * With no one to ask, the daemon denies an ask at once. This adds a Bot API stand-in and one
   * allowed user, so asks wait for an answer (from Telegram, the CLI or the page) as in real use.
   */
  telegram?: boolean;
  /** Written to the home before the daemon first starts (state, memory, session logs). */
  seed?(home: string): void | Promise<void>;
  /** The daemon's entry point: the CLI's TypeScript by default; the bench passes dist/ (as `npm start` runs it). */
  cli?: string;
  /** `dashboard.port` (default: a free one). */
  port?: number;
  /**
   * What `start` waits for: "served" (default) the dashboard's line, failing if it did not start;
   * "port taken" its one-line complaint (the daemon runs on without it); "none" only the ready
   * line, with no `dashboard:` in config.yaml (a checkout from before the dashboard refuses it).
   */
  dashboard?: "served" | "port taken" | "none";
}

export interface DashboardDaemon {
  home: string;
  /** A folder beside the home, outside every folder the policy lets the agent write. */
  outside: string;
  port: number;
  /** http://127.0.0.1:PORT */
  origin: string;
  env: NodeJS.ProcessEnv;
  api: MessagesApi;
  telegram?: BotApi;
  /** The running daemon (the last one started). */
  child(): ChildProcess;
  /** What the last daemon printed, stdout and stderr together. */
  output(): string;
  /** Starts `nightshift start` (again, after `stop`) and resolves once its dashboard listens. */
  start(): Promise<void>;
  /** SIGTERM, then its exit code. */
  stop(): Promise<number | null>;
  /** A one-time login link, printed by `nightshift dashboard` as a person would get it. */
  loginLink(): Promise<string>;
  /** A task file dropped into inbox/; its result comes to outbox/NAME. */
  drop(name: string, title: string, body: string): void;
  close(): Promise<void>;
}

export async function startDashboardDaemon(options: DashboardDaemonOptions = {}): Promise<DashboardDaemon> {
  const dir = tempDir("nightshift-browser-", "/var/tmp");
  const home = join(dir.path, "home");
  const outside = join(dir.path, "outside");
  mkdirSync(home);
  mkdirSync(outside);
  const port = options.port ?? (await freePort());
  const api = await startMessagesApi({ responder: options.responder ?? (() => ({ content: [{ type: "text", text: "Done." }] })) });
  const telegram = options.telegram ? await startBotApi({ token: "4242:browser-test" }) : undefined;
  const dashboard = options.dashboard ?? "served";
  writeFileSync(join(home, "config.yaml"), `${dashboard === "none" ? "" : `dashboard:\n  port: ${port}\n`}${telegram ? `telegram:\n  allowed_users: [${TELEGRAM_USER}]\n` : ""}`);
  await options.seed?.(home);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NIGHTSHIFT_HOME: home,
    ANTHROPIC_BASE_URL: api.url,
    ANTHROPIC_API_KEY: "sk-ant-browser-test",
    TELEGRAM_BOT_TOKEN: telegram?.token ?? "",
    ...(telegram ? { TELEGRAM_API_ROOT: telegram.url } : {}),
  };
  let child: ChildProcess | undefined;
  let output = "";
  let exited: Promise<number | null> = Promise.resolve(null);
  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;

  const daemon: DashboardDaemon = {
    home,
    outside,
    port,
    origin: `http://127.0.0.1:${port}`,
    env,
    api,
    ...(telegram ? { telegram } : {}),
    child: () => child!,
    output: () => output,
    async start() {
      output = "";
      const started = spawn(process.execPath, [options.cli ?? CLI, "start"], { env, stdio: ["ignore", "pipe", "pipe"] });
      child = started;
      started.stdout!.on("data", (chunk) => (output += chunk));
      started.stderr!.on("data", (chunk) => (output += chunk));
      exited = new Promise((resolve) => started.on("close", (code) => resolve(code)));
      // The dashboard starts after the ready line; its own line says it listens (or why not).
      const awaited = dashboard === "none" ? /Nightshift is running/ : /Dashboard: http|dashboard not started/;
      await until(() => awaited.test(output) || started.exitCode !== null, "the daemon's dashboard", 30_000);
      const expected = { served: "Dashboard: http", "port taken": "dashboard not started", none: "Nightshift is running" }[dashboard];
      if (!output.includes(expected)) throw new Error(`expected "${expected}" from nightshift start:\n${output}`);
    },
    async stop() {
      if (running()) child!.kill("SIGTERM");
      return exited;
    },
    async loginLink() {
      const printed = await nightshift(["dashboard"], env);
      const url = /^http:\S+\/login#\S+$/m.exec(printed.stdout)?.[0];
      if (!url) throw new Error(`nightshift dashboard printed no link:\n${printed.stdout}${printed.stderr}`);
      return url;
    },
    drop(name, title, body) {
      writeFileSync(join(home, "inbox", name), `---\ntitle: ${title}\n---\n${body}\n`);
    },
    async close() {
      if (running()) child!.kill("SIGKILL");
      await exited;
      await api.close();
      await telegram?.close();
      dir.cleanup();
    },
  };
  try {
    await daemon.start();
  } catch (error) {
    await daemon.close();
    throw error;
  }
  return daemon;
}

/**
 * A new browser context (no cookies) at a phone's size, signed in as a person would be: open the
 * printed link, press the button, land on Now.
 */
export async function signIn(browser: Browser, daemon: DashboardDaemon): Promise<Page> {
  const page = await (await browser.newContext({ viewport: PHONE })).newPage();
  await page.goto(await daemon.loginLink());
  await page.getByRole("button", { name: "Sign in to the dashboard" }).click();
  await page.waitForURL(`${daemon.origin}/`);
  return page;
}
