/**
 * What the shell splitter knows about particular commands: wrappers that run another command,
 * shells, global options that come before a subcommand, variables and settings that hold code; and
 * how some commands read their words (options, xargs's replace string, /dev/stdin, $'…').
 */

import { posix } from "node:path";

export interface WrapperSpec {
  /** Short options that take a value. */
  short: string;
  /** Long options that take a value (when not written --name=value). */
  long?: string[];
  /** Operands before the command (timeout's duration, chroot's directory). */
  operands?: number;
  /** NAME=value words may precede the command. */
  assignments?: boolean;
  /** Options may follow the operands too (`setarch ARCH -R cmd`). */
  optionsAfterOperands?: boolean;
}

export const WRAPPERS = new Map<string, WrapperSpec>([
  ["sudo", { short: "CDgpRrTtUu", long: ["chdir", "chroot", "close-from", "command-timeout", "group", "host", "other-user", "prompt", "role", "type", "user"], assignments: true }],
  ["doas", { short: "Cu" }],
  ["env", { short: "uC", long: ["unset", "chdir"], assignments: true }],
  ["nohup", { short: "" }],
  ["nice", { short: "n", long: ["adjustment"] }],
  ["time", { short: "fo", long: ["format", "output"] }],
  ["timeout", { short: "ks", long: ["kill-after", "signal"], operands: 1 }],
  ["xargs", { short: "adEILnPs", long: ["arg-file", "delimiter", "max-args", "max-chars", "max-procs", "process-slot-var"] }],
  ["command", { short: "" }],
  ["builtin", { short: "" }],
  ["exec", { short: "a" }],
  ["stdbuf", { short: "eio", long: ["error", "input", "output"] }],
  ["setsid", { short: "" }],
  ["ionice", { short: "cnp", long: ["class", "classdata", "pid"] }],
  ["chroot", { short: "", long: ["groups", "userspec"], operands: 1 }],
  ["flock", { short: "wE", long: ["timeout", "wait", "conflict-exit-code"], operands: 1 }],
  ["taskset", { short: "", operands: 1 }],
  ["chrt", { short: "TPD", long: ["sched-runtime", "sched-period", "sched-deadline"], operands: 1 }],
  ["setarch", { short: "", operands: 1, optionsAfterOperands: true }],
  ["unshare", { short: "SGRw", long: ["setuid", "setgid", "root", "wd", "propagation", "setgroups", "map-user", "map-group", "map-users", "map-groups"] }],
  ["nsenter", { short: "tSGrw", long: ["target", "setuid", "setgid", "root", "wd"] }],
  ["prlimit", { short: "p", long: ["pid", "output"] }],
  ["strace", { short: "abeEIoOpPsSuX", long: ["output", "attach", "user", "env", "trace", "signal", "string-limit", "summary-sort", "trace-path"] }],
  ["ltrace", { short: "aAeEfnoOsuxXL", long: ["output", "library"] }],
  ["runuser", { short: "ugGsw", long: ["user", "group", "supp-group", "shell", "whitelist-environment"] }],
  ["firejail", { short: "" }],
  ["torsocks", { short: "upaP", long: ["user", "pass", "address", "port"] }],
  ["proxychains", { short: "f" }],
  ["proxychains4", { short: "f" }],
  ["fakeroot", { short: "lsi", long: ["lib", "faked"] }],
  ["busybox", { short: "" }],
  ["unbuffer", { short: "" }],
]);

/** Commands whose option gives a script for a shell (`su -c`, `flock FILE -c`, `script -c`): the option letter, long names, and short options that take a value. */
export const SCRIPT_OPTIONS = new Map<string, { short: string; long: string[]; valued: string }>([
  ["su", { short: "c", long: ["command", "session-command"], valued: "gGsw" }],
  ["runuser", { short: "c", long: ["command", "session-command"], valued: "ugGsw" }],
  ["flock", { short: "c", long: ["command"], valued: "wE" }],
  ["script", { short: "c", long: ["command"], valued: "EIOBTm" }],
  ["npx", { short: "c", long: ["call"], valued: "pw" }],
]);

/** Commands that never run their arguments as a command, so a word such as `git push` after them is text (`echo git push`, `grep -rn git push`). */
export const NEVER_RUNS = new Set(["echo", "printf", "grep", "egrep", "fgrep", "rg", "ag", "ack", "man", "info", "help", "whatis", "apropos", "which", "whereis", "type", "compgen", "complete", "history"]);

export const SHELLS = new Set(["bash", "sh", "zsh", "dash", "ksh", "ksh93", "mksh", "pdksh", "oksh", "rbash", "ash", "yash", "posh", "fish", "csh", "tcsh"]);
export const FIND_EXEC = new Set(["-exec", "-execdir", "-ok", "-okdir"]);
/** Builtins whose NAME=value arguments are assignments. */
export const DECLARATIONS = new Set(["export", "declare", "typeset", "local", "readonly"]);

export interface GlobalOptions {
  /** Options that take the next word as their value (unless written --name=value). */
  valued: string[];
  /** Options known to take no value. Any other option might take the next word, so both readings are checked. */
  flags?: string[];
}

/**
 * Options a tool accepts before its subcommand (`git -C dir push`, `npm --registry=x publish`).
 * The policy also checks the command with them removed, so they cannot hide the subcommand.
 */
export const GLOBAL_OPTIONS = new Map<string, GlobalOptions>([
  [
    "git",
    {
      valued: ["-C", "-c", "--git-dir", "--work-tree", "--namespace", "--super-prefix", "--config-env", "--attr-source", "--list-cmds"],
      flags: ["-p", "-P", "--paginate", "--no-pager", "--bare", "--no-replace-objects", "--literal-pathspecs", "--glob-pathspecs", "--noglob-pathspecs", "--icase-pathspecs", "--no-optional-locks", "--no-advice", "--no-lazy-fetch", "--exec-path", "--html-path", "--man-path", "--info-path", "-v", "--version", "-h", "--help"],
    },
  ],
  ["npm", { valued: ["--registry", "--prefix", "-C", "--cwd", "--userconfig", "--globalconfig", "--cache", "--loglevel", "--log-level", "-w", "--workspace", "--otp", "--tag", "--access", "--scope"] }],
  ["pnpm", { valued: ["--filter", "-F", "-C", "--dir", "--cwd", "--registry", "--loglevel", "--log-level", "--config", "--workspace-dir", "--reporter"] }],
  ["yarn", { valued: ["--cwd", "--registry", "--cache-folder", "--modules-folder", "--global-folder", "--use-yarnrc", "--mutex", "--network-timeout", "--config"] }],
  ["cargo", { valued: ["-C", "--config", "-Z", "--color", "--log-level"] }],
  ["docker", { valued: ["--context", "-c", "-H", "--host", "--config", "-l", "--log-level", "--tlscacert", "--tlscert", "--tlskey"] }],
  ["podman", { valued: ["--context", "-c", "-H", "--host", "--config", "-l", "--log-level", "--connection", "--url", "--root", "--runroot"] }],
  ["gh", { valued: ["-R", "--repo", "--hostname"] }],
  ["gem", { valued: ["--config-file"] }],
  ["twine", { valued: [] }],
]);

/** `git -c KEY=VALUE` settings that cannot run anything: kept without asking. Any other setting asks. */
const GIT_SAFE_SECTIONS = ["user", "author", "committer", "color", "advice", "i18n", "status", "log", "column", "blame", "grep", "rerere", "safe", "pull", "rebase", "fetch", "format", "gc", "maintenance", "branch"];
const GIT_SAFE_KEYS = [
  "init.defaultbranch",
  "commit.(?:gpgsign|verbose|cleanup|status)",
  "tag.gpgsign",
  "merge.(?:ff|conflictstyle|log)",
  "diff.(?:renames|noprefix|algorithm|colormoved|mnemonicprefix|relative)",
  "core.(?:quotepath|autocrlf|safecrlf|filemode|ignorecase|abbrev|whitespace|eol|longpaths|precomposeunicode|untrackedcache|preloadindex|compression|bare)",
];
export const GIT_SAFE_CONFIG = new RegExp(`^(?:${GIT_SAFE_SECTIONS.join("|")})\\.|^(?:${GIT_SAFE_KEYS.join("|").replaceAll(".", "\\.")})$`, "i");
/** `git -c KEY=VALUE` settings whose value git runs through the shell: read as a script. */
export const GIT_SCRIPT_CONFIG = /^(?:core\.(?:pager|editor|sshcommand)|pager\.[^.]+|sequence\.editor)$/i;

/** Variables whose value is code that bash or another program runs later, out of sight. */
export const CODE_VARIABLES = /^(?:BASH_ENV|ENV|PROMPT_COMMAND|GIT_CONFIG_PARAMETERS|GIT_CONFIG_COUNT|GIT_CONFIG_KEY_\d+|BASH_FUNC_.*)$/;
/** Variables whose value is a command line that a program runs (pagers, editors, ssh for git). */
export const SCRIPT_VARIABLES = new Set(["PAGER", "MANPAGER", "GIT_PAGER", "EDITOR", "VISUAL", "GIT_EDITOR", "GIT_SEQUENCE_EDITOR", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_ASKPASS", "SSH_ASKPASS", "GIT_EXTERNAL_DIFF", "LESSOPEN", "LESSCLOSE"]);

/**
 * Whether `--opt` or `--opt=value` names the long option `name`: getopt takes any prefix of at
 * least `min` letters (`env --chd`, `timeout --sig`); when it is not unique getopt refuses the
 * line, so reading it as this option is safe.
 */
export function abbreviates(word: string, name: string, min: number): boolean {
  if (!word.startsWith("--")) return false;
  const given = word.slice(2).split("=", 1)[0]!;
  return given.length >= Math.min(min, name.length) && name.startsWith(given);
}

/** Index of the first operand after the options starting at values[1]. A long option that abbreviates a valued one takes a value. */
export function skipOptions(values: string[], short: string, long: string[]): number {
  let i = 1;
  while (i < values.length) {
    const word = values[i]!;
    if (word === "--") return i + 1;
    if (!word.startsWith("-") || word === "-") return i;
    if (word.startsWith("--")) {
      i += !word.includes("=") && long.some((option) => abbreviates(word, option, 1)) ? 2 : 1;
      continue;
    }
    const valueAt = [...word.slice(1)].findIndex((flag) => short.includes(flag));
    i += valueAt === word.length - 2 ? 2 : 1; // the value is the next word only when not attached
  }
  return i;
}

/**
 * Where the subcommand may start after a tool's global options (`git -C dir push`: 3), besides 1;
 * `words.length` when the options take every word (xargs may add the subcommand). An option not
 * known to take no value may take the next word, so both readings count.
 */
export function subcommandStarts(name: string, words: readonly string[]): number[] {
  const spec = GLOBAL_OPTIONS.get(name);
  if (spec === undefined) return [];
  const starts = new Set<number>();
  const seen = new Set<number>();
  const queue = [1];
  while (queue.length > 0) {
    const at = queue.pop()!;
    if (at > words.length || seen.has(at)) continue;
    seen.add(at);
    if (at === words.length) {
      starts.add(at);
      continue;
    }
    const word = words[at]!;
    if (word === "--") starts.add(at + 1);
    else if (name === "cargo" && at === 1 && word.startsWith("+")) queue.push(2); // cargo +nightly
    else if (!word.startsWith("-") || word === "-") starts.add(at);
    else if (word.includes("=") || spec.flags?.includes(word)) queue.push(at + 1);
    else if (spec.valued.includes(word)) queue.push(at + 2);
    else queue.push(at + 1, at + 2);
  }
  return [...starts].filter((start) => start > 1).sort((a, b) => a - b);
}

/** The string xargs -I / -i / --replace replaces with input, if any. */
export function xargsReplace(options: string[]): string | undefined {
  let replace: string | undefined;
  options.forEach((option, index) => {
    if (abbreviates(option, "replace", 3)) replace = option.includes("=") ? option.slice(option.indexOf("=") + 1) : "{}";
    else if (/^-[^-]/.test(option)) {
      for (let at = 1; at < option.length; at++) {
        const rest = option.slice(at + 1);
        if (option[at] === "I") replace = rest || options[index + 1] || "{}";
        if (option[at] === "i") replace = rest || "{}";
        if ("IiadELnPs".includes(option[at]!)) break;
      }
    }
  });
  return replace;
}

/** The file descriptor a path such as /dev/stdin, /dev/fd/3 or /proc/self/fd/0 opens, if it is one. */
export function descriptorOf(path: string): number | undefined {
  const normal = posix.normalize(path);
  const named = /(?:^|\/)dev\/std(in|out|err)$/.exec(normal)?.[1];
  if (named !== undefined) return ["in", "out", "err"].indexOf(named);
  const fd = /(?:^|\/)(?:dev|proc\/[^/]+(?:\/task\/[^/]+)?)\/fd\/(\d+)$/.exec(normal)?.[1];
  return fd === undefined ? undefined : Number(fd);
}

const ANSI_ESCAPES: Record<string, string> = { n: "\n", t: "\t", r: "\r", a: "\x07", b: "\b", e: "\x1b", E: "\x1b", f: "\f", v: "\v", "\\": "\\", "'": "'", '"': '"', "?": "?" };

/** Bash truncates a `$'…'` string at a NUL byte, so `$'git\x00x'` is `git`. */
export function decodeAnsiC(body: string): string {
  const decoded = body.replace(/\\(x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{1,4}|U[0-9A-Fa-f]{1,8}|[0-7]{1,3}|c[\s\S]|[\s\S])/g, (all, esc: string) => {
    const kind = esc[0]!;
    const code = "xuU".includes(kind) ? parseInt(esc.slice(1), 16) : /[0-7]/.test(kind) ? parseInt(esc, 8) & 0xff : -1;
    if (code >= 0) return code <= 0x10ffff ? String.fromCodePoint(code) : all;
    if (kind === "c" && esc.length === 2) return String.fromCharCode(esc.charCodeAt(1) & 0x1f);
    return Object.hasOwn(ANSI_ESCAPES, esc) ? ANSI_ESCAPES[esc]! : all;
  });
  const nul = decoded.indexOf("\0");
  return nul < 0 ? decoded : decoded.slice(0, nul);
}
