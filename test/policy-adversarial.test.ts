import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { decide, DEFAULT_RULES, type Action, type Rule } from "../runtime/policy/policy.ts";
import { pathArguments } from "../runtime/tools/bash.ts";
import { ORDINARY_COMMANDS } from "./support/ordinary-commands.ts";

// Lines that make bash run a denied or asked-for command, or read or write a secret, named by the
// trick they use. Checked as the bash tool is (the command, then the paths it names, through
// decide()) with the defaults (publishing and `rm -rf /` ask, secrets denied, writes outside the
// workdir ask) and a config deny rule for `git push`: none may be allowed. "deny" where the
// splitter can read what runs, "ask" where it cannot be sure and a human decides.

const places = { workdir: "/work/app", home: "/home/u/.nightshift", userHome: "/home/u" };
const RULES: Rule[] = [{ action: "deny", kind: "command", pattern: "git push", origin: "config permissions.deny[0]" }, ...DEFAULT_RULES];
const ORDER: Action[] = ["deny", "ask", "allow"];
const run = (command: string) => {
  const requests = [{ kind: "command" as const, command }, ...pathArguments(command, places.workdir, places.userHome)];
  const decisions = requests.map((request) => decide(request, RULES, places));
  return decisions.sort((a, b) => ORDER.indexOf(a.action) - ORDER.indexOf(b.action))[0]!;
};

interface Trick {
  trick: string;
  line: string;
  expected: Exclude<Action, "allow">;
}

const TRICKS: Trick[] = [
  // A `~` bash expands (unquoted at the start of a word) is the home folder, however the rest is quoted.
  { trick: "tilde before a quoted path", line: "cat ~/'.ssh/id_rsa'", expected: "deny" },
  { trick: "tilde in an assignment", line: "f=~/.ssh/id_rsa; cat ~/.ssh/id_rsa", expected: "deny" },
  // Unknown wrappers: the rules match every suffix of a command's words.
  { trick: "unknown wrapper", line: "flock /tmp/x git push", expected: "deny" },
  { trick: "unknown wrapper", line: "taskset 1 rm -rf /", expected: "ask" },
  { trick: "unknown wrapper", line: "ltrace -f git push origin", expected: "deny" },
  { trick: "unknown wrapper with a path", line: "catchsegv /usr/bin/git push", expected: "deny" },
  { trick: "unknown wrapper running a wrapper", line: "flock x sudo -u me git push", expected: "deny" },
  { trick: "unknown wrapper running a shell", line: "flock /tmp/x bash -c 'git push'", expected: "deny" },
  { trick: "unknown wrapper running a shell", line: "faketime 2020-01-01 sh -ec 'npm publish'", expected: "ask" },
  { trick: "unknown wrapper, computed name", line: "flock /tmp/x $(echo git) push", expected: "ask" },
  { trick: "unknown wrapper, computed argument", line: "flock /tmp/x git $(echo push)", expected: "ask" },
  // Wrappers and script options in the tables.
  { trick: "flock -c", line: "flock /tmp/x -c 'git push'", expected: "deny" },
  { trick: "flock's script in a nested shell", line: "flock -w 5 /tmp/x --command 'sh -c \"git push\"'", expected: "deny" },
  { trick: "taskset running a shell", line: "taskset -c 0 bash -c 'git push'", expected: "deny" },
  { trick: "chrt", line: "chrt -f 10 sh -c 'git push'", expected: "deny" },
  { trick: "setarch with options after the arch", line: "setarch x86_64 -R bash -c 'git push'", expected: "deny" },
  { trick: "unshare", line: "unshare -r --wd /tmp sh -c 'git push'", expected: "deny" },
  { trick: "prlimit", line: "prlimit --nofile=1024 bash -c 'git push'", expected: "deny" },
  { trick: "strace", line: "strace -f -o /dev/null bash -c 'git push'", expected: "deny" },
  { trick: "runuser -u", line: "runuser -u me -- bash -c 'git push'", expected: "deny" },
  { trick: "su -c in a cluster", line: "su -lc 'git push' me", expected: "deny" },
  { trick: "su --command=", line: "su --command='git push' me", expected: "deny" },
  { trick: "su --comm abbreviated", line: "su --comm 'git push' me", expected: "deny" },
  { trick: "sg", line: "sg wheel 'git push'", expected: "deny" },
  { trick: "script -c", line: "script -qc 'git push' /dev/null", expected: "deny" },
  { trick: "firejail", line: "firejail --quiet --noprofile sh -c 'git push'", expected: "deny" },
  { trick: "torsocks", line: "torsocks -i sh -c 'git push'", expected: "deny" },
  { trick: "parallel's command", line: "parallel 'git push' ::: origin", expected: "deny" },
  { trick: "parallel's argument", line: "parallel git ::: push", expected: "ask" },
  { trick: "parallel's arguments as commands", line: "parallel ::: 'git push' ls", expected: "deny" },
  { trick: "parallel reading commands", line: "echo 'git push' | parallel", expected: "ask" },
  { trick: "busybox", line: "busybox sh -c 'git push'", expected: "deny" },
  { trick: "rbash", line: "rbash -c 'git push'", expected: "deny" },
  { trick: "other shells", line: "yash -c 'git push'", expected: "deny" },
  { trick: "fish --command=", line: "fish --command='git push'", expected: "deny" },
  { trick: "env --chd abbreviated", line: "env --chd /tmp bash -c 'git push'", expected: "deny" },
  { trick: "timeout --sig abbreviated", line: "timeout --sig KILL 5 sh -c 'git push'", expected: "deny" },
  { trick: "nice --adj abbreviated", line: "nice --adj 5 bash -c 'git push'", expected: "deny" },
  { trick: "env --split-string abbreviated", line: "env --sp 'git push'", expected: "ask" },
  { trick: "shell -o in a cluster", line: "bash -oc pipefail 'git push'", expected: "deny" },
  { trick: "shell -O in a cluster", line: "bash -Oec extglob 'git push'", expected: "deny" },
  { trick: "eval --", line: "eval -- 'git push'", expected: "deny" },
  { trick: "xargs feeding sh -c", line: "echo 'git push' | xargs sh -c", expected: "ask" },
  { trick: "xargs feeding sh -c its script", line: "echo 'git push' | xargs -I{} sh -c {}", expected: "ask" },
  { trick: "xargs --repl abbreviated", line: "echo 'git push' | xargs --repl=Q sh -c Q", expected: "ask" },
  { trick: "xargs feeding a wrapper", line: "echo git push | xargs sudo", expected: "ask" },
  { trick: "xargs feeding a wrapper the name", line: "echo git | xargs timeout 5", expected: "ask" },
  // Strings bash evaluates out of the splitter's sight.
  { trick: "test -v with a subscript", line: "test -v 'a[$(git push)]'", expected: "ask" },
  { trick: "[[ -v with a subscript", line: "[[ -v 'a[$(git push)]' ]]", expected: "ask" },
  { trick: "[ -v with a subscript", line: "[ -v 'a[`git push`]' ]", expected: "ask" },
  { trick: "unset with a subscript", line: "unset 'a[$(git push)]'", expected: "ask" },
  { trick: "printf -v with a subscript", line: "printf -v 'a[$(git push)]' %s x", expected: "ask" },
  { trick: "read into a subscript", line: "read 'a[$(git push)]' <<< 1", expected: "ask" },
  { trick: "declare with a subscript", line: "declare 'a[$(git push)]=1'", expected: "ask" },
  { trick: "declare -n to a subscript", line: "declare -n r='a[$(git push)]'; echo $r", expected: "ask" },
  { trick: "arithmetic on a variable holding a subscript", line: "x='a[$(git push)]'; (( x ))", expected: "ask" },
  { trick: "arithmetic expansion of such a variable", line: "x='a[$(git push)]'; echo $((x))", expected: "ask" },
  { trick: "let on such a variable", line: "x='a[$(git push)]' && let x", expected: "ask" },
  { trick: "prompt expansion", line: "x='$(git push)'; echo ${x@P}", expected: "ask" },
  { trick: "indirection", line: "x='a[$(git push)]'; echo ${!x}", expected: "ask" },
  { trick: "PS4 through printf -v", line: "printf -v PS4 '$(git push)'; set -x; ls", expected: "ask" },
  { trick: "PS4 through read", line: "read PS4 <<< '$(git push)'; set -x; ls", expected: "ask" },
  { trick: "PS4 through declare", line: "declare PS4='$(git push)'; set -x; ls", expected: "ask" },
  { trick: "hash -p", line: "hash -p /usr/bin/git ls; ls push", expected: "ask" },
  { trick: "BASH_CMDS", line: "BASH_CMDS[ls]=/usr/bin/git; ls push", expected: "ask" },
  { trick: "BASH_ALIASES", line: "BASH_ALIASES[ls]='git push'; ls", expected: "ask" },
  { trick: "git submodule foreach", line: "git submodule foreach 'git push'", expected: "deny" },
  { trick: "git submodule foreach, computed", line: "git submodule foreach \"$cmd\"", expected: "ask" },
  { trick: "git rebase -x", line: "git rebase -x 'git push' main", expected: "deny" },
  { trick: "git rebase -x in a cluster", line: "git rebase -ix 'git push' main", expected: "deny" },
  { trick: "git rebase --exec abbreviated", line: "git rebase --ex='git push' main", expected: "deny" },
  { trick: "git bisect run", line: "git bisect run sh -c 'git push'", expected: "deny" },
  { trick: "npm exec", line: "npm exec -- git push", expected: "deny" },
  { trick: "npm exec --call", line: "npm exec --call 'git push'", expected: "deny" },
  { trick: "npx -c", line: "npx -c 'rm -rf /'", expected: "ask" },
  { trick: "npx", line: "npx -y git push", expected: "deny" },
  { trick: "pnpm dlx", line: "pnpm dlx sh -c 'git push'", expected: "deny" },
  // Grammar the splitter once read differently from bash.
  { trick: "<< inside (( )) is a shift, not a heredoc", line: "x=0; (( x << EOF ))\ngit push\nEOF", expected: "deny" },
  { trick: "heredoc delimiter split by a line continuation", line: "cat <<E\\\nOF\n$(git push)\nEOF", expected: "deny" },
  { trick: "${x:-{} ends at the first }", line: "{ echo ${x:-{}; git push; }", expected: "deny" },
  { trick: "' inside a double-quoted ${x:-…}", line: "echo \"${x:-'$(git push)'}\"", expected: "deny" },
  { trick: "' inside (( ))", line: "(( '$(git push)' ))", expected: "deny" },
  { trick: "' inside $(( ))", line: "echo $(( '$(git push)' ))", expected: "deny" },
  { trick: "subscript in (( ))", line: "(( a['$(git push)'] ))", expected: "ask" },
  { trick: "for x do", line: "for x do git push; done", expected: "deny" },
  // Code read at run time: input evaluated as arithmetic runs the $(…) in a subscript.
  { trick: "read, then (( ))", line: "read x < payload; (( x ))", expected: "ask" },
  { trick: "read, then $(( ))", line: "read -r x <<< \"$(cat payload)\"; echo $((x + 1))", expected: "ask" },
  { trick: "read, then let", line: "read n < payload && let n++", expected: "ask" },
  { trick: "read, then [[ -eq ]]", line: "read a b < payload; [[ $b -eq 1 ]]", expected: "ask" },
  { trick: "read, then a subscript", line: "read i < payload; echo ${list[i]}", expected: "ask" },
  { trick: "read, then a substring offset", line: "read i < payload; echo ${s:i}", expected: "ask" },
  { trick: "read into REPLY", line: "read < payload; (( REPLY ))", expected: "ask" },
  { trick: "mapfile, then (( ))", line: "mapfile -t lines < payload; (( lines ))", expected: "ask" },
  { trick: "read into an integer variable", line: "declare -i n; read n < payload", expected: "ask" },
  // Rule spelling: single-letter flags are a set.
  { trick: "flags in another order", line: "rm -fr /", expected: "ask" },
  { trick: "flags apart", line: "rm -r -f /", expected: "ask" },
  { trick: "more flags", line: "rm -rfv ~", expected: "ask" },
  { trick: "-R for -r", line: "rm -Rf /", expected: "ask" },
  // Rule spelling: long options, `--`, extra slashes; subcommands by another name.
  { trick: "long options", line: "rm --recursive --force /", expected: "ask" },
  { trick: "long options abbreviated", line: "rm --rec --fo /", expected: "ask" },
  { trick: "long and short options mixed", line: "rm -r --verbose -f ~", expected: "ask" },
  { trick: "-- before the operand", line: "rm -rf -- /", expected: "ask" },
  { trick: "an option before the operand", line: "rm -rf --no-preserve-root /", expected: "ask" },
  { trick: "a trailing slash", line: "rm -rf ~/", expected: "ask" },
  { trick: "doubled slashes", line: "rm -r -f //", expected: "ask" },
  { trick: "long options, computed operand", line: "rm --recursive --force $dir", expected: "ask" },
  { trick: "an extra option, computed operand", line: "rm -rfv $dir", expected: "ask" },
  { trick: "npm's unique prefix", line: "npm pub", expected: "ask" },
  { trick: "npm's unique prefix after options", line: "npm --registry https://r.example publ --tag next", expected: "ask" },
  { trick: "npm's unique prefix through a wrapper", line: "sudo npm pu", expected: "ask" },
  { trick: "gem's unique prefix", line: "gem pu x.gem", expected: "ask" },
  { trick: "docker image push", line: "docker image push me/app", expected: "ask" },
  { trick: "docker compose push", line: "docker compose push", expected: "ask" },
  { trick: "gh release new", line: "gh release new v1.0", expected: "ask" },
  { trick: "git subtree push", line: "git subtree push --prefix=docs origin gh-pages", expected: "deny" },
  { trick: "git send-pack", line: "git send-pack origin main", expected: "deny" },
  { trick: "git http-push", line: "git http-push https://example.com/repo.git main", expected: "deny" },
  // Paths in redirections: read and write targets are checked like arguments.
  { trick: "redirected input", line: "cat < ~/.ssh/id_rsa", expected: "deny" },
  { trick: "redirected input with a descriptor", line: "wc -l 0< ~/.aws/credentials", expected: "deny" },
  { trick: "descriptor opened by exec", line: "exec 3< ~/.ssh/id_rsa; cat <&3", expected: "deny" },
  { trick: "redirected input through $HOME", line: 'cat < "$HOME/.netrc"', expected: "deny" },
  { trick: "redirected input, a glob", line: "cat < ~/.ssh/id_*", expected: "deny" },
  { trick: "redirected input of a group", line: "{ cat; } < ~/.ssh/id_rsa", expected: "deny" },
  { trick: "redirected input of a loop", line: "while read l; do echo $l; done < ~/.netrc", expected: "deny" },
  { trick: "redirection in a nested shell", line: "bash -c 'cat < ~/.ssh/id_rsa'", expected: "deny" },
  { trick: "redirection in a substitution", line: "echo $(cat < ~/.docker/config.json)", expected: "deny" },
  { trick: "read and write redirection", line: "cat <> ~/.ssh/config", expected: "deny" },
  { trick: "output to a secret", line: "echo KEY=1 > .env", expected: "deny" },
  { trick: "appended to a secret", line: "printf 'k=v' >> .env.local", expected: "deny" },
  { trick: "output to git's config", line: "printf '[core]\\n\\tfsmonitor = x' >> .git/config", expected: "deny" },
  { trick: "output to a git hook", line: "echo 'git push' > .git/hooks/pre-commit", expected: "deny" },
  { trick: "stderr outside the workdir", line: "echo x 2> ~/.bashrc", expected: "ask" },
  { trick: "both streams outside the workdir", line: "ls &> ~/.profile", expected: "ask" },
  { trick: "both streams appended", line: "ls &>> ~/.profile", expected: "ask" },
  { trick: "clobbering output", line: "ls >| ~/.profile", expected: "ask" },
  { trick: ">& to a file", line: "ls >& ~/.profile", expected: "ask" },
  // Tilde forms and brace expansion in paths.
  { trick: "another user's home", line: "cat ~root/.ssh/id_rsa", expected: "ask" },
  { trick: "~+ is the working folder", line: "cat ~+/.env", expected: "deny" },
  { trick: "~- is the previous folder", line: "cat ~-/id_rsa", expected: "ask" },
  { trick: "~N is the folder stack", line: "cat ~1/id_rsa", expected: "ask" },
  { trick: "$PWD", line: "cat $PWD/.env", expected: "deny" },
  { trick: "braces in a secret folder", line: "cat ~/.ssh/{id_rsa,config}", expected: "deny" },
  { trick: "braces around a secret folder", line: "cat ~/.{bashrc,ssh/id_rsa}", expected: "deny" },
  { trick: "braces before a tilde", line: "cat {~/.ssh/id_rsa,notes.txt}", expected: "deny" },
  { trick: "braces spelling .env", line: "cat .e{n,x}v", expected: "deny" },
  { trick: "a brace sequence", line: "cat ~/.ssh/id_rsa{0..2}", expected: "deny" },
  // Relative paths after cd.
  { trick: "cd to home, then a relative path", line: "cd ~ && cat .ssh/id_rsa", expected: "deny" },
  { trick: "cd, then a bare name", line: "cd ~/.config && cat gh/hosts.yml", expected: "deny" },
  { trick: "cd in steps", line: "cd; cd .aws; cat credentials", expected: "deny" },
  { trick: "cd with no argument", line: "cd && cat .netrc", expected: "deny" },
  { trick: "pushd", line: "pushd /home/u && cat .netrc", expected: "deny" },
  { trick: "cd, then a redirection", line: "cd ~ && cat < .netrc", expected: "deny" },
  { trick: "cd, then a write", line: "cd ~ && echo x > .bashrc", expected: "ask" },
  { trick: "cd written after the read", line: "f() { cat .ssh/id_rsa; }; cd ~; f", expected: "deny" },
  { trick: "cd in a subshell", line: "(cd ~ && cat .netrc)", expected: "deny" },
  { trick: "cd through builtin", line: "builtin cd ~ && cat .netrc", expected: "deny" },
  { trick: "env -C", line: "env -C ~ cat .netrc", expected: "deny" },
  { trick: "env --chdir=", line: "env --chdir=/home/u cat .netrc", expected: "deny" },
  { trick: "cd to a computed folder", line: 'cd "$d" && cat ./id_rsa', expected: "ask" },
  { trick: "cd to a computed folder, a dotfile", line: "cd $(dirname $f) && cat .netrc", expected: "ask" },
  { trick: "cd -", line: "cd - && cat .netrc", expected: "ask" },
  { trick: "CDPATH", line: "CDPATH=~ cd .ssh && cat ./id_rsa", expected: "ask" },
  { trick: "cd to another user's home", line: "cd ~root && cat .ssh/id_rsa", expected: "ask" },
  // HOME set earlier in the line: `~`, `$HOME` and a bare `cd` go where it says.
  { trick: "HOME assigned", line: "HOME=~/.ssh; cat ~/id_rsa", expected: "ask" },
  { trick: "HOME as a loop variable", line: "for HOME in ~/.ssh; do cat ~/id_rsa; done", expected: "ask" },
  { trick: "HOME read from a here-string", line: "read HOME <<< ~/.ssh; cat ~/id_rsa", expected: "ask" },
  { trick: "HOME read, its name quoted", line: 'read H""OME <<< ~/.ssh; cat ~/id_rsa', expected: "ask" },
  { trick: "HOME assigned, then cd alone", line: "HOME=~/.ssh; cd; cat id_rsa", expected: "ask" },
  { trick: "HOME assigned, then $HOME", line: "HOME=~/.ssh; cat $HOME/id_rsa", expected: "ask" },
  { trick: "HOME exported", line: "export HOME=~/.ssh; cat ~/id_rsa", expected: "ask" },
  { trick: "HOME declared", line: "declare HOME=~/.ssh; cat ~/id_rsa", expected: "ask" },
  { trick: "HOME through a nameref", line: "declare -n h=HOME; h=~/.ssh; cat ~/id_rsa", expected: "ask" },
  { trick: "HOME through a computed name", line: "v=HOME; read $v <<< ~/.ssh; cat ~/id_rsa", expected: "ask" },
  { trick: "HOME by printf -v", line: "printf -v HOME %s ~/.ssh; cat ~/id_rsa", expected: "ask" },
  { trick: "HOME assigned in a nested shell", line: "bash -c 'HOME=~/.ssh; cat ~/id_rsa'", expected: "ask" },
  { trick: "HOME prefixed to a nested shell", line: "HOME=~/.ssh bash -c 'cat ~/id_rsa'", expected: "ask" },
  { trick: "HOME prefixed to env's shell", line: "env HOME=/home/u/.config sh -c 'cat ~/gh/hosts.yml'", expected: "ask" },
  { trick: "cd -P through a link, then a bare name", line: "cd -P sshlink/../.ssh; cat id_rsa", expected: "ask" },
  { trick: "HOME prefixed to cd", line: "HOME=~/.ssh cd; cat id_rsa", expected: "ask" },
  { trick: "HOME prefixed to a function", line: "f() { cat ~/id_rsa; }; HOME=~/.ssh f", expected: "ask" },
  // Glob options that make a glob match dot-files or ignore case, which Node's globSync does not.
  { trick: "dotglob", line: "shopt -s dotglob; cat ~/*/id_rsa", expected: "ask" },
  { trick: "GLOBIGNORE turns on dot-files", line: "GLOBIGNORE=x; cat ~/*/id_rsa", expected: "ask" },
  { trick: "nocaseglob", line: "shopt -s nocaseglob; cat ~/.SS[H]/id_rs?", expected: "ask" },
  { trick: "globstar with dotglob", line: "shopt -s globstar dotglob; cat ~/**/id_rsa", expected: "ask" },
  { trick: "dotglob in a redirection", line: "shopt -s dotglob; cat < ~/*/id_rsa", expected: "ask" },
  { trick: "bash -O dotglob", line: "bash -O dotglob -c 'cat ~/*/id_rsa'", expected: "ask" },
  { trick: "BASHOPTS for a nested shell", line: "BASHOPTS=dotglob bash -c 'cat ~/*/id_rsa'", expected: "ask" },
  // Following a link before `..` (sshlink in the workdir points to ~/.ssh).
  { trick: "cd -P through a link", line: "cd -P sshlink/..; cat .ssh/id_rsa", expected: "ask" },
  { trick: "set -P, then cd through a link", line: "set -P; cd sshlink/..; cat .ssh/id_rsa", expected: "ask" },
  { trick: "set -o physical, then cd through a link", line: "set -o physical; cd sshlink/..; cat .ssh/id_rsa", expected: "ask" },
  { trick: "env -C follows links", line: "env -C sshlink/.. cat .ssh/id_rsa", expected: "ask" },
  // Computed from HOME or the previous folder.
  { trick: "${HOME:-…}", line: 'cat "${HOME:-/}/.ssh/id_rsa"', expected: "ask" },
  { trick: "${HOME%…}", line: "cat ${HOME%/}/.ssh/id_rsa", expected: "ask" },
  { trick: "$OLDPWD", line: "cd ~; cd /work/app; cat $OLDPWD/.ssh/id_rsa", expected: "ask" },
];

describe("policy: adversarial lines are never allowed", () => {
  for (const { trick, line, expected } of TRICKS) {
    it(`${trick}: ${JSON.stringify(line)} → ${expected}`, () => {
      const decision = run(line);
      assert.equal(decision.action, expected, decision.reason);
    });
  }
});

/** Lines of the ordinary corpus that really push or publish, or that the design always asks about. */
const EXPECTED_NOT_ALLOWED = new Map<string, Action>([
  ["npm publish --dry-run", "ask"],
  ["git push --dry-run", "deny"],
  ["alias ll='ls -la'", "ask"], // aliases are never read
  ['eval "$(ssh-agent -s)"', "ask"], // code from a substitution
  // `.env.*` files are secrets by convention; a template (`.env.example`) is not, but its copy under another name may be filled in.
  ["cp .env.example .env.example.bak", "deny"],
]);

describe("policy: ordinary commands are allowed", () => {
  it("allows every line of the ordinary corpus but the ones that push, publish, define code or name a .env file", () => {
    const surprises = ORDINARY_COMMANDS.map((line) => ({ line, decision: run(line) })).filter(({ line, decision }) => decision.action !== (EXPECTED_NOT_ALLOWED.get(line) ?? "allow"));
    assert.deepEqual(
      surprises.map(({ line, decision }) => `${line} → ${decision.action}: ${decision.reason}`),
      [],
    );
  });
});

describe("policy: globs in path arguments", () => {
  const workdir = mkdtempSync(join(tmpdir(), "nightshift-globs-"));
  writeFileSync(join(workdir, ".env"), "SECRET=1\n");
  writeFileSync(join(workdir, "notes.txt"), "");
  mkdirSync(join(workdir, ".git"));
  after(() => rmSync(workdir, { recursive: true, force: true }));
  const reads = (line: string) => pathArguments(line, workdir, "/home/u").map((request) => decide(request, RULES, { ...places, workdir }).action);

  it("does not read a quoted '.*' as a glob, nor a broad listing as naming .env", () => {
    assert.deepEqual(reads("grep -o '.*' notes.txt"), []);
    assert.deepEqual(reads("du -ah .[^.]* * | sort -h"), []);
    assert.deepEqual(reads("echo .*"), []);
  });

  it("reads a glob as before when the line changes no glob option", () => {
    assert.deepEqual(reads("set -euo pipefail; cat *.txt"), ["allow"]);
  });

  it("denies a glob aimed at a secret's name, and one inside a secret folder", () => {
    assert.deepEqual(reads("cat .e*"), ["deny"]);
    assert.deepEqual(reads("cat .en?"), ["deny"]);
    assert.deepEqual(reads("cat ~/.ssh/*"), ["deny"]);
  });
});

describe("policy: links before .. and a HOME the line sets", () => {
  const home = mkdtempSync(join(tmpdir(), "nightshift-home-"));
  const workdir = join(home, "app");
  mkdirSync(join(home, ".ssh", "sub"), { recursive: true });
  mkdirSync(join(home, ".ssh", "keys"));
  mkdirSync(workdir);
  symlinkSync(join(home, ".ssh"), join(workdir, "sshlink"));
  symlinkSync(join(home, ".ssh", "sub"), join(workdir, "deep"));
  after(() => rmSync(home, { recursive: true, force: true }));
  const decisions = (line: string) => pathArguments(line, workdir, home).map((request) => decide(request, RULES, { ...places, workdir, userHome: home }).action);

  it("denies a path through a link and .. as the kernel opens it", () => {
    assert.ok(decisions("cat sshlink/../.ssh/id_rsa").includes("deny"));
  });

  it("denies a name after a cd through a link whose text path does not exist (bash then goes by the physical path)", () => {
    assert.ok(decisions("cd deep/../keys && cat id_rsa").includes("deny"));
  });

  it("keeps the old home for a command's own words when HOME is only its prefix", () => {
    assert.deepEqual(decisions("HOME=/tmp cat ~/notes.txt"), ["allow"]);
  });
});
