import { couldMatchCommand, globBase, globProblem, globToRegExp, isValidHost, matchesCommand, matchesDomain, normalizeDomain } from "./patterns.ts";
import { commandSuffixes, splitCommands, type SimpleCommand } from "./shell.ts";

export { normalizeDomain };

export type Action = "allow" | "ask" | "deny";
export type RuleKind = "read" | "write" | "command" | "network" | "tool";

export interface Rule {
  action: Action;
  kind: RuleKind;
  pattern: string;
  /** Paths the pattern matches that the rule leaves alone (the built-in secrets rule and `.env.example`). */
  unless?: string;
  /** Where the rule came from, for traces: `config permissions.ask[0]`, `default`, `task permissions.commands`. */
  origin: string;
}

/**
 * One thing a tool call wants to do. Paths are absolute and real (symlinks and `..` resolved),
 * except an `unsure` one: a path as written that cannot be resolved before the command runs
 * (`~bob/x`, a relative path after `cd "$dir"`); `unsure` says why, and it asks where it would
 * otherwise be allowed.
 */
export type PermissionRequest =
  | { kind: "read"; path: string; unsure?: string }
  | { kind: "write"; path: string; unsure?: string }
  | { kind: "command"; command: string }
  | { kind: "network"; host: string }
  /**
   * A call of a tool that reaches outside Nightshift (an MCP server's), by the name the model sees,
   * with its arguments as compact JSON (keys sorted): rules match the name; "allow for this task"
   * covers the name with exactly these arguments.
   */
  | { kind: "tool"; name: string; arguments?: string };

export interface Decision {
  action: Action;
  /** The rule that decided; undefined when nothing matched and the kind's fallback applied. */
  rule: Rule | undefined;
  /** One line for traces and the model: what was decided and why. */
  reason: string;
  /** What an "allow for this task" answer would cover. */
  grant: Grant;
}

/**
 * An "allow for this task" answer: this exact target (the same path, the same command, the same
 * host) stops asking for the rest of the task. Exact, not a pattern: approving `~/notes.txt` must
 * not approve `~/.bashrc`, and approving `git push origin main` must not approve `--force`.
 */
export interface Grant {
  kind: RuleKind;
  target: string;
}

/** A task's front matter `permissions`: lists that can only narrow what the global policy allows. */
export interface TaskPermissions {
  read?: string[];
  write?: string[];
  commands?: string[];
  network?: string[];
  tools?: string[];
}

export interface PolicyPlaces {
  workdir: string;
  /** NIGHTSHIFT_HOME */
  home: string;
  /** The user's home, for `~` */
  userHome: string;
}

/** Secrets: neither read nor written, whatever other rules say. */
const SECRET_PATHS = ["~/.ssh/**", "~/.aws/**", "~/.gnupg/**", "~/.config/gh/**", "~/.netrc", "~/.docker/config.json", "**/.env", "**/.env.*", "{home}/state/**", "{home}/sessions/**", "{home}/logs/**", "{home}/.env"];
/** Templates committed beside `.env` to show its keys, without values: not secrets (`runtime/tools/paths.ts` `isSecretFileName`). */
const ENV_TEMPLATES = "**/.env*.{example,sample,template,dist}";
/** Commands that publish, push or delete widely: allowed only with a human's yes. */
const RISKY_COMMANDS = ["git push", "npm publish", "pnpm publish", "yarn publish", "yarn npm publish", "cargo publish", "gem push", "twine upload", "docker push", "gh release create", "rm -rf /", "rm -rf ~", "rm -rf /*", "rm -rf ~/*", "rm -Rf /", "rm -Rf ~"];

export const DEFAULT_RULES: readonly Rule[] = [
  ...SECRET_PATHS.flatMap((pattern): Rule[] => [
    { action: "deny", kind: "read", pattern, ...(pattern === "**/.env.*" ? { unless: ENV_TEMPLATES } : {}), origin: "default (secrets)" },
    { action: "deny", kind: "write", pattern, ...(pattern === "**/.env.*" ? { unless: ENV_TEMPLATES } : {}), origin: "default (secrets)" },
  ]),
  // Git runs these later, outside the sandbox (hooks, core.fsmonitor, core.pager).
  ...["**/.git/config", "**/.git/hooks/**"].map((pattern): Rule => ({ action: "deny", kind: "write", pattern, origin: "default (git runs what these say)" })),
  ...RISKY_COMMANDS.map((pattern): Rule => ({ action: "ask", kind: "command", pattern, origin: "default (publishes or deletes)" })),
  { action: "allow", kind: "read", pattern: "**", origin: "default" },
  { action: "allow", kind: "write", pattern: "{workdir}/**", origin: "default (the task's working directory)" },
  { action: "allow", kind: "command", pattern: "*", origin: "default (sandboxed, no network)" },
];

const ORDER: Action[] = ["deny", "ask", "allow"];
const TASK_KEYS: Record<RuleKind, keyof TaskPermissions> = { read: "read", write: "write", command: "commands", network: "network", tool: "tools" };

/**
 * Rules are checked deny, then ask, then allow; the first match decides and a deny is final. A
 * task's lists narrow: something outside them asks. A grant (allow for this task) skips the ask.
 * Nothing matching asks: new domains, writes outside the workdir.
 */
export function decide(request: PermissionRequest, rules: readonly Rule[], places: PolicyPlaces, task: TaskPermissions = {}, grants: readonly Grant[] = []): Decision {
  if (request.kind === "command") return decideCommand(request.command, rules, places, task, grants);
  if (request.kind === "network") return decideHost(request.host, rules, places, task, grants);
  if (request.kind === "tool") return decideOne("tool", request.name, rules, places, task, grants, toolGrantTarget(request));
  const decision = decideOne(request.kind, request.path, rules, places, task, grants);
  if (request.unsure === undefined || decision.action !== "allow" || decision.reason === "allowed for this task") return decision;
  return { ...decision, action: "ask", rule: undefined, reason: `this path cannot be checked safely: ${request.unsure}` };
}

/** Hosts are compared normalized (lower case, punycode, no trailing dot); one that is no valid host name is denied. */
function decideHost(host: string, rules: readonly Rule[], places: PolicyPlaces, task: TaskPermissions, grants: readonly Grant[]): Decision {
  const target = normalizeDomain(host);
  if (!isValidHost(target)) return { action: "deny", rule: undefined, reason: `${JSON.stringify(host)} is not a valid host name`, grant: { kind: "network", target } };
  return decideOne("network", target, rules, places, task, grants);
}

function decideCommand(line: string, rules: readonly Rule[], places: PolicyPlaces, task: TaskPermissions, grants: readonly Grant[]): Decision {
  const split = splitCommands(line);
  // Every simple command in the line is checked, and every command it may run with its own
  // words (an unknown wrapper's); the strictest decision wins.
  const decisions = split.commands.flatMap((command) => [decideSimple(command, rules, places, task, grants), ...decideSuffixes(command, rules, places, task, grants)]);
  const strictest = decisions.sort((a, b) => ORDER.indexOf(a.action) - ORDER.indexOf(b.action))[0];
  if (!split.ok) {
    // What could be read still counts: a deny is final even when the rest of the line is unreadable.
    if (strictest?.action === "deny") return strictest;
    if (grants.some((grant) => grant.kind === "command" && grant.target === line)) return { action: "allow", rule: undefined, reason: "allowed for this task", grant: { kind: "command", target: line } };
    return { action: "ask", rule: undefined, reason: `this command cannot be checked safely (${split.reason})`, grant: { kind: "command", target: line } };
  }
  return strictest ?? { action: "allow", rule: undefined, reason: "no command to run", grant: { kind: "command", target: line } };
}

/**
 * A command whose arguments are computed at run time (`git $(echo push)`) is checked as written,
 * and asks when some value of them could make it match a deny or ask rule.
 */
function decideSimple(command: SimpleCommand, rules: readonly Rule[], places: PolicyPlaces, task: TaskPermissions, grants: readonly Grant[]): Decision {
  const decision = decideOne("command", command.text, rules, places, task, grants);
  const template = command.template;
  if (decision.action !== "allow" || template === undefined || grants.some((g) => g.kind === "command" && g.target === command.text)) return decision;
  const risky = rules.find((rule) => rule.kind === "command" && rule.action !== "allow" && couldMatchCommand(template, rule.pattern));
  if (risky === undefined) return decision;
  const reason = `\`${command.text}\` cannot be checked safely (its arguments are computed at run time) and could match ${describe(risky)}`;
  return { action: "ask", rule: undefined, reason, grant: { kind: "command", target: command.text } };
}

/**
 * `flock /tmp/x git push` runs `git push`: a deny or ask rule matching a suffix of the words
 * counts. Allowing is left to the whole command (a task's list names what it runs, wrapper and all).
 */
function decideSuffixes(command: SimpleCommand, rules: readonly Rule[], places: PolicyPlaces, task: TaskPermissions, grants: readonly Grant[]): Decision[] {
  const found: Decision[] = [];
  for (const suffix of commandSuffixes(command)) {
    const decision = decideSimple(suffix, rules, places, {}, grants);
    if (decision.action === "allow" || (decision.rule === undefined && decision.reason.startsWith("no rule"))) continue;
    found.push({ ...decision, reason: `${decision.reason}, for \`${suffix.text}\` that \`${command.words[0]}\` may run` });
  }
  return found;
}

/** What a grant for a tool call names: the tool with exactly its arguments. */
export const toolGrantTarget = (request: Extract<PermissionRequest, { kind: "tool" }>) => (request.arguments === undefined ? request.name : `${request.name} ${request.arguments}`);

/** `grantTarget`: what a grant must name to cover this request, when not the target itself (a tool with its arguments). */
function decideOne(kind: RuleKind, target: string, rules: readonly Rule[], places: PolicyPlaces, task: TaskPermissions, grants: readonly Grant[], grantTarget = target): Decision {
  const grant = { kind, target: grantTarget };
  const ofKind = rules.filter((rule) => rule.kind === kind && matches(kind, target, rule.pattern, places) && !(rule.unless && matches(kind, target, rule.unless, places)));
  const denied = ofKind.find((rule) => rule.action === "deny");
  if (denied) return { action: "deny", rule: denied, reason: `denied by ${describe(denied)}`, grant };
  if (grants.some((g) => g.kind === kind && g.target === grantTarget)) return { action: "allow", rule: undefined, reason: "allowed for this task", grant };
  const asked = ofKind.find((rule) => rule.action === "ask");
  if (asked) return { action: "ask", rule: asked, reason: `${describe(asked)} asks first`, grant };
  const list = task[TASK_KEYS[kind]];
  if (list && !list.some((pattern) => matches(kind, target, pattern, places))) {
    return { action: "ask", rule: undefined, reason: `outside the task's permissions.${TASK_KEYS[kind]}`, grant };
  }
  const allowed = ofKind.find((rule) => rule.action === "allow");
  if (allowed) return { action: "allow", rule: allowed, reason: `allowed by ${describe(allowed)}`, grant };
  const what = kind === "network" ? "a domain not on the allow list" : kind === "write" ? "a write outside the allowed folders" : `no rule allows this ${kind}`;
  return { action: "ask", rule: undefined, reason: what, grant };
}

function matches(kind: RuleKind, target: string, pattern: string, places: PolicyPlaces): boolean {
  if (kind === "command") return matchesCommand(target, pattern);
  if (kind === "network") return matchesDomain(target, pattern);
  if (kind === "tool") return toolPattern(pattern).test(target);
  return globToRegExp(expand(pattern, places)).test(target);
}

/**
 * Folders a sandboxed command may write besides the workdir: the bases of allow-write rules (or of
 * the task's own write list, when it has one) where the policy allows writing without asking.
 * Commands cannot ask per file, so a folder that would ask stays read-only for them.
 */
export function writableRoots(rules: readonly Rule[], places: PolicyPlaces, task: TaskPermissions = {}): string[] {
  const patterns = task.write ?? rules.filter((rule) => rule.kind === "write" && rule.action === "allow").map((rule) => rule.pattern);
  const bases = new Set(patterns.map((pattern) => globBase(expand(pattern, places))));
  return [...bases].filter((base) => base !== places.workdir && base.startsWith("/") && decide({ kind: "write", path: `${base}/.nightshift-probe` }, rules, places, task).action === "allow");
}

/** `~`, `{workdir}` and `{home}` in path patterns. */
export function expand(pattern: string, places: PolicyPlaces): string {
  return pattern
    .replace(/^~(?=\/|$)/, places.userHome)
    .replaceAll("{workdir}", places.workdir)
    .replaceAll("{home}", places.home);
}

export function describe(rule: Rule): string {
  return `rule "${rule.action} ${rule.kind} ${rule.pattern}" (${rule.origin})`;
}

/** Rules from config: deny, ask and allow lists of `{ read | write | command | network: pattern }`, then the defaults. */
export function rulesFromConfig(permissions: { deny: RuleEntry[]; ask: RuleEntry[]; allow: RuleEntry[]; defaults: boolean }): Rule[] {
  const fromList = (action: Action) =>
    permissions[action].map((entry, index): Rule => {
      const [kind, pattern] = Object.entries(entry).find(([, value]) => value !== undefined) as [RuleKind, string];
      return { action, kind, pattern, origin: `config permissions.${action}[${index}]` };
    });
  return [...fromList("deny"), ...fromList("ask"), ...fromList("allow"), ...(permissions.defaults ? DEFAULT_RULES : [])];
}

export type RuleEntry = Partial<Record<RuleKind, string>>;

/**
 * What is wrong with a config rule's pattern, as one sentence for the user, or undefined when it is
 * fine. Path patterns must be anchored (a relative one would match nothing: requests are absolute);
 * network patterns are host names, `*.host` or `*`.
 */
export function validatePattern(kind: RuleKind, pattern: string): string | undefined {
  const trimmed = pattern.trim();
  const shown = JSON.stringify(pattern);
  if (trimmed === "") return `${kind} pattern ${shown} is empty`;
  if (kind === "command") return undefined;
  if (kind === "network") return hostPatternProblem(trimmed, shown);
  if (kind === "tool") return /^[A-Za-z0-9_*-]+$/.test(trimmed) ? undefined : `tool pattern ${shown} may hold only letters, digits, _, - and * (e.g. "mcp__github__*")`;
  if (!/^(?:\/|~(?:\/|$)|\*\*|\{workdir\}|\{home\})/.test(trimmed)) return `${kind} pattern ${shown} is relative; start it with /, ~, ** or {workdir}`;
  const problem = globProblem(trimmed);
  return problem === undefined ? undefined : `${kind} pattern ${shown} ${problem}`;
}

/** A tool pattern: the name, with * matching any run of characters (`mcp__github__*`). */
function toolPattern(pattern: string): RegExp {
  return new RegExp(`^${pattern.trim().split("*").map((part) => part.replace(/[-]/g, "\\-")).join(".*")}$`);
}

function hostPatternProblem(pattern: string, shown: string): string | undefined {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(pattern);
  if (scheme) return `network pattern ${shown} has a scheme (${scheme[0]}); write the host name only`;
  if (pattern.includes("/")) return `network pattern ${shown} has a path; write the host name only`;
  if (pattern === "*") return undefined;
  const host = normalizeDomain(pattern.startsWith("*.") ? pattern.slice(2) : pattern);
  if (host.includes(":") && !isValidHost(host)) return `network pattern ${shown} has a port; write the host name only`;
  if (host.includes("*")) return `network pattern ${shown} may use * only as a whole first label (*.example.com) or alone`;
  if (!isValidHost(host)) return `network pattern ${shown} is not a valid host name`;
  return undefined;
}
