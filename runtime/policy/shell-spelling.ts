/**
 * Subcommands a tool runs under another name: npm and gem take any unique prefix (`npm pub` is
 * `npm publish`) and npm has aliases; `docker image push` is `docker push`; `git subtree push`,
 * `git send-pack` and `git http-push` update a remote's branches, so a `git push` rule counts for
 * them. The splitter checks the command in this spelling too. Git has no built-in abbreviations;
 * aliases from git's config files are not read (one given with `git -c alias.…` asks).
 */

/** npm 11's commands and aliases (lib/utils/cmd-list.js). */
const NPM_COMMANDS = [
  "access", "adduser", "approve-scripts", "audit", "bugs", "cache", "ci", "completion", "config", "dedupe", "deny-scripts", "deprecate", "diff", "dist-tag", "docs", "doctor", "edit", "exec", "explain", "explore", "find-dupes", "fund", "get", "help", "help-search", "init", "install", "install-ci-test", "install-scripts", "install-test", "link", "ll", "login", "logout", "ls", "org", "outdated", "owner", "pack", "ping", "pkg", "prefix", "profile", "prune", "publish", "query", "rebuild", "repo", "restart", "root", "run", "sbom", "search", "set", "shrinkwrap", "stage", "star", "stars", "start", "stop", "team", "test", "token", "trust", "undeprecate", "uninstall", "unpublish", "unstar", "update", "version", "view", "whoami",
];
const NPM_ALIASES: Record<string, string> = {
  author: "owner", home: "docs", issues: "bugs", info: "view", show: "view", find: "search", add: "install", unlink: "uninstall", remove: "uninstall", rm: "uninstall", r: "uninstall",
  un: "uninstall", rb: "rebuild", list: "ls", ln: "link", create: "init", i: "install", it: "install-test", cit: "install-ci-test", u: "update", up: "update", c: "config", s: "search", se: "search", tst: "test", t: "test", ddp: "dedupe", v: "view", "run-script": "run", "clean-install": "ci", "clean-install-test": "install-ci-test", x: "exec", why: "explain", la: "ll", verison: "version", ic: "ci",
  innit: "init", in: "install", ins: "install", inst: "install", insta: "install", instal: "install", isnt: "install", isnta: "install", isntal: "install", isntall: "install", "install-clean": "ci", "isntall-clean": "ci", hlep: "help", "dist-tags": "dist-tag", upgrade: "update", udpate: "update", rum: "run", sit: "install-ci-test", urn: "run", ogr: "org", "add-user": "adduser",
};
const NPM_NAMES = [...NPM_COMMANDS, ...Object.keys(NPM_ALIASES)];

/** RubyGems' commands; `gem` runs the one a unique prefix names. */
const GEM_COMMANDS = [
  "build", "cert", "check", "cleanup", "contents", "dependency", "environment", "exec", "fetch", "generate_index", "help", "info", "install", "list", "lock", "mirror", "open", "outdated", "owner", "pristine", "push", "query", "rdoc", "rebuild", "search", "server", "signin", "signout", "sources", "specification", "stale", "uninstall", "unpack", "update", "which", "yank",
];

/** Subcommands of one or two words that another spelling means, per tool. */
const SAME_AS: Record<string, Record<string, string>> = {
  docker: { "image push": "push", "compose push": "push" },
  podman: { "image push": "push" },
  git: { "subtree push": "push", "send-pack": "push", "http-push": "push" },
  gh: { "release new": "release create" },
};

/**
 * The subcommand words that `words` (a tool's subcommand and what follows) means when spelled
 * differently, with how many words it replaces; undefined when it is already spelled as rules are.
 */
export function respelledSubcommand(tool: string, words: readonly string[]): { words: string[]; replaces: number } | undefined {
  const first = words[0];
  if (first === undefined || first.startsWith("-")) return undefined;
  if (tool === "npm") {
    const command = npmCommand(first);
    return command !== undefined && command !== first ? { words: [command], replaces: 1 } : undefined;
  }
  if (tool === "gem") {
    const command = uniquePrefix(first, GEM_COMMANDS);
    return command !== undefined && command !== first ? { words: [command], replaces: 1 } : undefined;
  }
  const table = SAME_AS[tool];
  if (table === undefined) return undefined;
  const two = `${first} ${words[1] ?? ""}`;
  const same = table[two] ?? table[first];
  if (same === undefined) return undefined;
  return { words: same.split(" "), replaces: table[two] !== undefined ? 2 : 1 };
}

/** npm's own reading (`deref`): camelCase as kebab-case, a command, an alias, or a unique prefix of either. */
function npmCommand(given: string): string | undefined {
  const word = /[A-Z]/.test(given) ? given.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`) : given;
  if (NPM_COMMANDS.includes(word)) return word;
  let command = NPM_ALIASES[word] ?? uniquePrefix(word, NPM_NAMES);
  while (command !== undefined && NPM_ALIASES[command] !== undefined) command = NPM_ALIASES[command];
  return command;
}

/** The name `word` is, or is the only name to start with. */
function uniquePrefix(word: string, names: readonly string[]): string | undefined {
  if (names.includes(word)) return word;
  const found = names.filter((name) => name.startsWith(word));
  return found.length === 1 ? found[0] : undefined;
}
