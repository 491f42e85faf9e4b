import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decide, DEFAULT_RULES, normalizeDomain, validatePattern, type Decision, type Grant, type PermissionRequest, type Rule } from "../runtime/policy/policy.ts";
import { isSecretFileName } from "../runtime/tools/paths.ts";
import { canonicalJson } from "../runtime/mcp/pins.ts";

// Bypasses of command rules found in review, checked through decide() with the defaults and a
// config deny rule for `git push`: each must come out denied, or asked when it cannot be checked.

const places = { workdir: "/work/app", home: "/home/u/.nightshift", userHome: "/home/u" };
const deny = (kind: Rule["kind"], pattern: string): Rule => ({ action: "deny", kind, pattern, origin: "config permissions.deny[0]" });
const RULES: Rule[] = [deny("command", "git push"), ...DEFAULT_RULES];

function check(request: PermissionRequest, rules: readonly Rule[] = RULES, grants: Grant[] = []): Decision {
  return decide(request, rules, places, {}, grants);
}
const run = (command: string, rules?: readonly Rule[]) => check({ kind: "command", command }, rules);

function assertCannotCheck(command: string, reason: RegExp = /cannot be checked safely/): void {
  const decision = run(command);
  assert.equal(decision.action, "ask", `${JSON.stringify(command)}: ${decision.action} (${decision.reason})`);
  assert.match(decision.reason, reason);
}

describe("policy: arguments computed at run time", () => {
  it("asks for a command a deny rule could match once its arguments are expanded", () => {
    for (const command of ["git {push,}", "git $(echo push)", "git `echo push`", "x=push; git $x", "git ${x:-push}", 'git "$(echo push)"', 'git "$@"', "git pu*", "git p[u]sh", "git {p..q}ush", "git $opt push"]) {
      assertCannotCheck(command, /cannot be checked safely \(its arguments are computed at run time\) and could match rule "deny command git push"/);
    }
  });

  it("still denies what is static after quote removal", () => {
    for (const command of ["git pu\\sh", 'git "p"ush', "git 'push'", "git $'push'", "git push $(date)", "git push *"]) {
      assert.equal(run(command).action, "deny", command);
    }
  });

  it("asks for arguments that xargs and find -exec add", () => {
    assertCannotCheck("echo push | xargs git");
    assertCannotCheck("xargs -I R git R < names");
    assertCannotCheck("find push -maxdepth 0 -exec git {} \\;");
    assert.equal(run("echo origin | xargs -n1 git push").action, "deny");
  });

  it("does not ask when no value of the computed part could match a rule", () => {
    for (const command of ['git commit -m "$(cat <<\'EOF\'\nFix: $(not run)\nEOF\n)"', "git add src/*.ts", "git log --author=$USER", 'git commit -m "$msg"', "echo $HOME *.ts", 'cp "$a" "$b"', 'rm -f "$tmp.lock"']) {
      assert.equal(run(command).action, "allow", command);
    }
  });

  it("allows a dynamic command once it is granted for the task", () => {
    const first = run("git $sub");
    assert.equal(first.action, "ask");
    assert.equal(check({ kind: "command", command: "git $sub" }, RULES, [first.grant]).action, "allow");
  });
});

describe("policy: commands an unknown wrapper runs", () => {
  it("matches deny and ask rules against every suffix of a command's words", () => {
    assert.equal(run("flock /tmp/x git push").action, "deny");
    assert.match(run("flock /tmp/x git push").reason, /for `git push` that `flock` may run/);
    assert.equal(run("taskset 1 rm -rf /").action, "ask");
  });

  it("does not read the words of commands that never run them, nor text within one word", () => {
    for (const command of ["echo git push", "printf '%s' git push", "grep -rn git push docs", "git commit -m 'git push'", "man git push", "docker run --rm node:22 node --version"]) {
      assert.equal(run(command).action, "allow", command);
    }
  });
});

describe("policy: global options before the subcommand", () => {
  it("denies git push behind git's global options", () => {
    for (const command of ["git -C . push", "git -C /tmp/repo push origin main", "git -c x=y push", "git -c user.name=me push", "git --git-dir=. push", "git --git-dir .git push", "git --work-tree=. push", "git --no-pager push", "git -P push", "git --paginate push", "git --bare push", "git --no-replace-objects push", "git --literal-pathspecs push", "git --exec-path=/x push", "git --namespace=n push", "git --some-new-flag push", "/usr/bin/git -C . push", "sudo git -C . push"]) {
      assert.equal(run(command).action, "deny", command);
    }
  });

  it("asks for publishing commands behind their global options", () => {
    for (const command of ["npm --registry=x publish", "npm --registry x publish", "npm -g publish", "npm --prefix dir publish", "npm --unknown value publish", "pnpm --filter x publish", "pnpm -C dir publish", "yarn --cwd x publish", "cargo +nightly publish", "cargo -Z flag publish", "docker --context x push img", "docker -H tcp://h push img", "docker --config dir push img"]) {
      const decision = run(command);
      assert.equal(decision.action, "ask", command);
      assert.match(decision.reason, /asks first/, command);
    }
  });

  it("keeps other git commands with global options allowed", () => {
    for (const command of ["git -C . status", "git --no-pager log --oneline", "git -c user.email=a@b commit -m x", "git -c color.ui=always diff"]) {
      assert.equal(run(command).action, "allow", command);
    }
  });

  it("cannot check a git alias or a command-running setting given on the command line", () => {
    assertCannotCheck("git -c alias.p=push p", /git -c alias\.p defines a git alias/);
    assertCannotCheck("git -c alias.p='!git push' p");
    assertCannotCheck('git -c "$setting" status');
    assertCannotCheck("git -c core.fsmonitor=./x status", /may run a command/);
    assertCannotCheck("git --config-env=alias.p=ENVVAR p");
    assert.equal(run("git -c core.pager='git push' log").action, "deny");
    assert.equal(run("git -c core.pager=cat log").action, "allow");
  });

  it("denies what it can read even when the rest of the line cannot be checked", () => {
    assert.equal(run("git push; alias x=y").action, "deny");
    assert.equal(run("git -c core.sshCommand=x push").action, "deny");
  });
});

describe("policy: scripts fed through standard input paths", () => {
  it("reads the here-string or heredoc that /dev/stdin, /dev/fd/0 or /proc/*/fd/0 opens", () => {
    for (const command of ['source /dev/stdin <<< "git push"', '. /dev/stdin <<< "git push"', "source /dev/fd/0 <<EOF\ngit push\nEOF", 'bash /dev/stdin <<< "git push"', 'sh /proc/self/fd/0 <<< "git push"', 'zsh /dev/fd/../fd/0 <<< "git push"', 'bash <<< "git push" < /dev/stdin']) {
      assert.equal(run(command).action, "deny", command);
    }
  });

  it("cannot check a script read from a file, a pipe or another descriptor that way", () => {
    assertCannotCheck(". /dev/fd/0 < x", /standard input/);
    assertCannotCheck("bash /proc/self/fd/0", /standard input/);
    assertCannotCheck("echo 'git push' | bash /dev/stdin", /standard input/);
    assertCannotCheck('bash /dev/fd/3 3<<< "git push"', /file descriptor/);
    assertCannotCheck('dash /dev/stdin <<< "$script"', /standard input/);
  });
});

describe("policy: code set up to run later", () => {
  it("cannot check callbacks, aliases, traps and code in variables", () => {
    for (const command of [
      "mapfile -C cb -c 1 arr < list",
      "readarray -t -C 'git push' x",
      "alias p='git push'",
      "alias",
      "shopt -s expand_aliases",
      "BASH_ENV=./x bash -c ls",
      "export BASH_ENV=./x",
      "ENV=./x sh -i",
      "PROMPT_COMMAND='git push'",
      "declare -x PROMPT_COMMAND='git push'",
      "PS4='$(git push)' bash -xc ls",
      "env 'BASH_FUNC_ls%%=() { git push; }' bash -c ls",
      "GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=alias.p GIT_CONFIG_VALUE_0=push git p",
      "trap 'git push' EXIT",
      "trap -- 'ls' INT",
      'GIT_PAGER="$x" git log',
    ]) {
      assertCannotCheck(command);
    }
  });

  it("reads pager and editor variables as commands, and allows harmless ones", () => {
    assert.equal(run("GIT_PAGER='git push' git log").action, "deny");
    assert.equal(run("env EDITOR='git push' git commit").action, "deny");
    assert.equal(run("GIT_PAGER=cat git log").action, "allow");
    assert.equal(run("PS4='+ ' bash -xc ls").action, "allow");
    assert.equal(run("trap - EXIT; trap -p").action, "allow");
  });
});

describe("policy: MCP tools", () => {
  it("a tool rule denies, asks or allows by name, a deny is final, and no rule asks", () => {
    const tool = (name: string, rules: readonly Rule[]) => check({ kind: "tool", name }, rules).action;
    const rules: Rule[] = [deny("tool", "mcp__github__*"), { action: "allow", kind: "tool", pattern: "mcp__github__*", origin: "config permissions.allow[0]" }, { action: "allow", kind: "tool", pattern: "mcp__memory__*", origin: "config permissions.allow[1]" }, ...DEFAULT_RULES];
    assert.equal(tool("mcp__github__create_issue", rules), "deny");
    assert.equal(tool("mcp__memory__read_graph", rules), "allow");
    assert.equal(tool("mcp__everything__echo", rules), "ask", "no rule: MCP tools ask by default");
  });

  it("a task's permissions.tools narrows: a tool config allows but the list leaves out asks, a denied one stays denied", () => {
    const rules: Rule[] = [deny("tool", "mcp__github__delete_*"), { action: "allow", kind: "tool", pattern: "mcp__*", origin: "config permissions.allow[0]" }, ...DEFAULT_RULES];
    const task = { tools: ["mcp__github__list_*", "mcp__github__delete_repo"] };
    const tool = (name: string) => decide({ kind: "tool", name }, rules, places, task);
    assert.equal(tool("mcp__github__list_issues").action, "allow");
    assert.equal(tool("mcp__memory__read_graph").action, "ask");
    assert.equal(tool("mcp__memory__read_graph").reason, "outside the task's permissions.tools");
    assert.equal(tool("mcp__github__delete_repo").action, "deny", "a task's list never widens");
  });

  it("\"allow for this task\" covers a tool with exactly the arguments approved, not the tool", () => {
    const call = (args: unknown) => ({ kind: "tool" as const, name: "mcp__mail__send", arguments: canonicalJson(args) });
    const asked = check(call({ to: "ann@example.com", body: "hi" }), DEFAULT_RULES);
    assert.equal(asked.action, "ask");
    assert.equal(asked.grant.target, 'mcp__mail__send {"body":"hi","to":"ann@example.com"}');
    const grants: Grant[] = [asked.grant];
    assert.equal(check(call({ body: "hi", to: "ann@example.com" }), DEFAULT_RULES, grants).action, "allow", "the same call, keys in another order");
    assert.equal(check(call({ to: "ann@example.com", bcc: "eve@example.com", body: "hi" }), DEFAULT_RULES, grants).action, "ask", "other arguments ask again");
  });
});

describe("policy: path patterns", () => {
  const read = (path: string, rules: readonly Rule[]) => check({ kind: "read", path }, rules).action;

  it("keeps .env files secret but not the templates committed beside them, for the policy and the file tools alike", () => {
    for (const name of [".env", ".env.local", ".env.production", ".env.example.bak"]) {
      assert.equal(read(`/work/app/${name}`, DEFAULT_RULES), "deny", name);
      assert.equal(isSecretFileName(name), true, name);
    }
    // On macOS the real path of `.ENV` is the stored name (native realpath); the file tools refuse either.
    assert.equal(isSecretFileName(".ENV"), true);
    for (const name of [".env.example", ".env.local.sample", ".env.template", ".env.dist", ".envrc"]) {
      assert.equal(read(`/work/app/${name}`, DEFAULT_RULES), "allow", name);
      assert.equal(isSecretFileName(name), false, name);
    }
  });

  it("reads wildcards inside braces", () => {
    const rules = [deny("read", "**/{id_rsa,*.pem}"), ...DEFAULT_RULES];
    assert.equal(read("/home/u/keys/server.pem", rules), "deny");
    assert.equal(read("/work/app/id_rsa", rules), "deny");
    assert.equal(read("/work/app/id_rsa.pub", rules), "allow");
    assert.equal(read("/work/app/pem", rules), "allow");
  });

  it("reads bracket classes, negated ones too, never across a slash", () => {
    const rules = [deny("read", "/data/[rd]*.txt"), deny("read", "/logs/[!a]"), ...DEFAULT_RULES];
    assert.equal(read("/data/report.txt", rules), "deny");
    assert.equal(read("/data/draft.txt", rules), "deny");
    assert.equal(read("/data/notes.txt", rules), "allow");
    assert.equal(read("/logs/b", rules), "deny");
    assert.equal(read("/logs/a", rules), "allow");
    assert.equal(read("/logs//", rules), "allow");
    const odd = [deny("read", "/x/[z-a]"), deny("read", "/y/[]^\\\\]"), ...DEFAULT_RULES];
    assert.equal(read("/x/[z-a]", odd), "deny", "an invalid class is literal text");
    assert.equal(read("/y/^", odd), "deny");
  });

  it("normalizes .., duplicate and trailing slashes; a trailing slash covers the folder and its contents", () => {
    const rules = [deny("read", "~/.kube/"), deny("write", "/srv//app/../secrets/**"), ...DEFAULT_RULES];
    assert.equal(read("/home/u/.kube", rules), "deny");
    assert.equal(read("/home/u/.kube/config", rules), "deny");
    assert.equal(read("/home/u/.kubeconfig", rules), "allow");
    assert.equal(check({ kind: "write", path: "/srv/secrets/key" }, rules).action, "deny");
  });

  it("keeps a grant to the exact path it was given for", () => {
    const grant: Grant = { kind: "write", target: "/x" };
    assert.equal(check({ kind: "write", path: "/x" }, DEFAULT_RULES, [grant]).action, "allow");
    assert.equal(check({ kind: "write", path: "/x/y" }, DEFAULT_RULES, [grant]).action, "ask");
    assert.equal(check({ kind: "write", path: "/xy" }, DEFAULT_RULES, [grant]).action, "ask");
    assert.equal(check({ kind: "write", path: "//x" }, DEFAULT_RULES, [grant]).action, "ask");
  });

  it("asks for a path it cannot be sure of, unless a rule denies it or it was granted", () => {
    const unsure = (path: string, grants: Grant[] = []) => check({ kind: "read", path, unsure: "why" }, DEFAULT_RULES, grants);
    assert.equal(unsure("~bob/notes").action, "ask");
    assert.match(unsure("~bob/notes").reason, /cannot be checked safely: why/);
    assert.equal(unsure("x/.env").action, "deny");
    assert.equal(unsure("~bob/notes", [{ kind: "read", target: "~bob/notes" }]).action, "allow");
  });
});

describe("policy: options are a set", () => {
  const force = [deny("command", "git push --force"), ...DEFAULT_RULES];

  it("matches a rule's options wherever and however the command writes them", () => {
    assert.equal(run("git push origin main --force", force).action, "deny");
    assert.equal(run("git push -uf origin main", force).action, "deny");
    // Not denied: they only ask, as every push does by default.
    assert.equal(run("git push -- origin --force", force).action, "ask", "after --, --force is a branch name");
    assert.equal(run("git push --force-with-lease origin", force).action, "ask");
    assert.equal(run("git push origin main", force).action, "ask");
  });

  it("keeps operands in order and whole", () => {
    assert.equal(run("rm -rf build/").action, "allow");
    assert.equal(run("rm -rf ./dist /").action, "allow", "the rule names / as the first operand");
    assert.equal(run("rm -f $tmp").action, "allow", "a computed word does not supply the -r the rule needs");
  });
});

describe("policy: validatePattern and host names", () => {
  it("accepts anchored path patterns and explains a relative one", () => {
    for (const pattern of ["/etc/**", "~/.ssh/**", "~", "**/.env", "{workdir}/out/**", "{home}/state/**"]) assert.equal(validatePattern("read", pattern), undefined, pattern);
    assert.equal(validatePattern("write", "secrets/**"), 'write pattern "secrets/**" is relative; start it with /, ~, ** or {workdir}');
    assert.match(validatePattern("read", "~user/x") ?? "", /is relative/);
    assert.match(validatePattern("read", "/x/{a,b") ?? "", /without its '\}'/);
    assert.match(validatePattern("read", "/x/[z-a]") ?? "", /invalid \[\.\.\.\] character class/);
    assert.match(validatePattern("read", "  ") ?? "", /is empty/);
    assert.equal(validatePattern("command", "git push"), undefined);
  });

  it("accepts host names, *.host and *, and explains a scheme, port or path", () => {
    for (const pattern of ["example.com", "*.example.com", "*", "registry.npmjs.org", "bücher.de", "*.bücher.de", "127.0.0.1", "::1", "localhost"]) assert.equal(validatePattern("network", pattern), undefined, pattern);
    assert.match(validatePattern("network", "https://example.com") ?? "", /has a scheme/);
    assert.match(validatePattern("network", "example.com:443") ?? "", /has a port/);
    assert.match(validatePattern("network", "example.com/path") ?? "", /has a path/);
    assert.match(validatePattern("network", "ex*ample.com") ?? "", /\* only as a whole first label/);
    assert.match(validatePattern("network", "a b.com") ?? "", /not a valid host name/);
  });

  it("normalizes host names to lower-case punycode without a trailing dot", () => {
    assert.equal(normalizeDomain("Bücher.DE."), "xn--bcher-kva.de");
    assert.equal(normalizeDomain("*.bücher.de"), "*.xn--bcher-kva.de");
    assert.equal(normalizeDomain("Example.COM"), "example.com");
  });

  it("matches international names either way and denies hosts that are no host names", () => {
    const rules: Rule[] = [{ action: "allow", kind: "network", pattern: "bücher.de", origin: "config permissions.allow[0]" }, { action: "allow", kind: "network", pattern: "*.example.com", origin: "config permissions.allow[1]" }, ...DEFAULT_RULES];
    const connect = (host: string) => check({ kind: "network", host }, rules);
    assert.equal(connect("xn--bcher-kva.de").action, "allow");
    assert.equal(connect("BÜCHER.de.").action, "allow");
    assert.equal(connect("api.Example.com.").action, "allow");
    assert.equal(connect("evil.com").action, "ask");
    for (const host of ["*", "*.example.com", "a b.example.com", "x.example.com/", "", "a..example.com"]) {
      const decision = connect(host);
      assert.equal(decision.action, "deny", JSON.stringify(host));
      assert.match(decision.reason, /is not a valid host name/);
    }
  });
});
