import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ANY_TEXT, ONE_WORD } from "../runtime/policy/patterns.ts";
import { expandBraces } from "../runtime/policy/shell-braces.ts";
import { splitCommands } from "../runtime/policy/shell.ts";

/** The text of every command the policy would check, in order. */
function texts(line: string): string[] {
  const result = splitCommands(line);
  if (!result.ok) assert.fail(`expected ${JSON.stringify(line)} to split, got: ${result.reason}`);
  return result.commands.map((command) => command.text);
}

function refusal(line: string): string {
  const result = splitCommands(line);
  if (result.ok) assert.fail(`expected ${JSON.stringify(line)} to be refused, got ${JSON.stringify(result.commands)}`);
  return result.reason;
}

describe("splitCommands: chaining cannot hide a command", () => {
  it("splits on &&, ||, ;, |, |&, & and newlines", () => {
    assert.deepEqual(texts("ls && git push"), ["ls", "git push"]);
    assert.deepEqual(texts("ls; git push"), ["ls", "git push"]);
    assert.deepEqual(texts("ls | git push"), ["ls", "git push"]);
    assert.deepEqual(texts("ls || git push"), ["ls", "git push"]);
    assert.deepEqual(texts("ls |& git push"), ["ls", "git push"]);
    assert.deepEqual(texts("sleep 1 & git push"), ["sleep 1", "git push"]);
    assert.deepEqual(texts("ls\ngit push\n"), ["ls", "git push"]);
    assert.deepEqual(texts("ls;git push&&rm -rf /"), ["ls", "git push", "rm -rf /"]);
  });

  it("returns the unquoted words of each command beside its text", () => {
    const result = splitCommands(`git commit -m "a message" && git push origin main`);
    assert.deepEqual(result, {
      ok: true,
      commands: [
        { text: "git commit -m a message", words: ["git", "commit", "-m", "a message"], dynamic: false },
        { text: "git push origin main", words: ["git", "push", "origin", "main"], dynamic: false },
      ],
      redirects: [],
    });
  });

  it("gives no commands for an empty line, blanks or a comment", () => {
    assert.deepEqual(texts(""), []);
    assert.deepEqual(texts("  \n\t "), []);
    assert.deepEqual(texts("# git push"), []);
  });

  it("ignores comments at a word start but keeps # inside a word", () => {
    assert.deepEqual(texts("echo $HOME # && git push"), ["echo $HOME"]);
    assert.deepEqual(texts("echo a#b; git push # done\nls"), ["echo a#b", "git push", "ls"]);
  });
});

describe("splitCommands: substitutions and groups", () => {
  it("finds commands in $( … ), backticks and double-quoted substitutions", () => {
    assert.deepEqual(texts("echo $(git push)"), ["git push", "echo $(git push)"]);
    assert.deepEqual(texts('echo "$(git push)"'), ["git push", "echo $(git push)"]);
    assert.deepEqual(texts("echo `git push`"), ["git push", "echo `git push`"]);
    assert.deepEqual(texts('echo "`git push`"'), ["git push", "echo `git push`"]);
    assert.deepEqual(texts('echo "$(curl evil)"'), ["curl evil", "echo $(curl evil)"]);
  });

  it("finds commands in nested substitutions and parameter defaults", () => {
    assert.deepEqual(texts("echo $(echo $(git push))"), ["git push", "echo $(git push)", "echo $(echo $(git push))"]);
    assert.deepEqual(texts("echo `echo \\`git push\\``"), ["git push", "echo `git push`", "echo `echo \\`git push\\``"]);
    assert.deepEqual(texts('echo "${x:-$(git push)}"'), ["git push", "echo ${x:-$(git push)}"]);
    assert.deepEqual(texts("echo $(( $(git push) + 1 ))"), ["git push", "echo $(( $(git push) + 1 ))"]);
  });

  it("reads (( … )) as arithmetic, without redirections or heredocs, unless it is a subshell in a subshell", () => {
    assert.deepEqual(texts("(( x << EOF ))\ngit push\nEOF"), ["git push", "EOF"]);
    assert.deepEqual(texts("((i++)); (( '$(git push)' ))"), ["git push"]);
    assert.deepEqual(texts("((git push) )"), ["git push"]);
    assert.deepEqual(texts("for x do git push; done"), ["git push"]);
  });

  it("ends a parameter expansion at its first }, and reads ' inside a double-quoted one as a character", () => {
    assert.deepEqual(texts("{ echo ${x:-{}; git push; }"), ["echo ${x:-{}", "git push"]);
    assert.deepEqual(texts(`echo "\${x:-'$(git push)'}"`), ["git push", "echo ${x:-'$(git push)'}"]);
  });

  it("treats $(( … )) as arithmetic unless bash would read a command substitution", () => {
    assert.deepEqual(texts("echo $((1 + (2 * 3)))"), ["echo $((1 + (2 * 3)))"]);
    assert.deepEqual(texts("echo $((git push) )"), ["git push", "echo $((git push) )"]);
  });

  it("finds commands in process substitutions", () => {
    assert.deepEqual(texts("diff <(git push) >(ls)"), ["git push", "ls", "diff <(git push) >(ls)"]);
    assert.deepEqual(texts("echo hi > >(git push)"), ["git push", "echo hi"]);
  });

  it("finds commands in ( … ) subshells and { …; } groups", () => {
    assert.deepEqual(texts("(git push)"), ["git push"]);
    assert.deepEqual(texts("{ git push; }"), ["git push"]);
    assert.deepEqual(texts("(cd x && { ls; git push; }) > log"), ["cd x", "ls", "git push"]);
  });

  it("finds commands inside if, while, for and function bodies", () => {
    assert.deepEqual(texts("if true; then git push; else rm -rf /; fi"), ["true", "git push", "rm -rf /"]);
    assert.deepEqual(texts("while read l; do git push; done < <(ls)"), ["read l", "git push", "ls"]);
    assert.deepEqual(texts("for f in $(ls); do rm $f; done"), ["ls", "rm $f"]);
    assert.deepEqual(texts("f() { git push; }; f"), ["git push", "f"]);
    assert.deepEqual(texts("! git push"), ["git push"]);
    assert.deepEqual(texts("time { git push; }"), ["git push"]);
  });

  it("scans assignments for substitutions but emits no command for them", () => {
    assert.deepEqual(texts("a=$(curl x) ; echo"), ["curl x", "echo"]);
    assert.deepEqual(texts("FOO=1 BAR=x"), []);
    assert.deepEqual(texts("x=(a $(git push) b); echo"), ["git push", "echo"]);
  });

  it("names the variables the line sets for what follows, but not a prefix its command only carries", () => {
    assert.deepEqual(splitCommands("HOME=x; for G in a; do :; done; bash -c 'S=1'").assigns, ["HOME", "G", "S"]);
    assert.equal(splitCommands("HOME=x cat ~/f; A=1 npm test").assigns, undefined);
    // A prefix counts where its command may expand it: cd, a nested shell, a function of the line.
    assert.deepEqual(splitCommands("HOME=x cd; B=1 bash -c ls").assigns, ["HOME", "B"]);
    assert.deepEqual(splitCommands("f() { ls; }; C=1 f").assigns, ["C"]);
  });
});

describe("splitCommands: nested shells", () => {
  it("parses the argument of bash -c, sh -c, zsh -c and dash -c", () => {
    assert.deepEqual(texts("bash -c 'git push'"), ["bash -c git push", "git push"]);
    assert.deepEqual(texts(`sh -c "ls && git push origin"`), ["sh -c ls && git push origin", "ls", "git push origin"]);
    assert.deepEqual(texts("zsh -c 'git push'"), ["zsh -c git push", "git push"]);
    assert.deepEqual(texts("dash -c 'git push'"), ["dash -c git push", "git push"]);
    assert.deepEqual(texts("bash -o pipefail -ec 'git push' arg0"), ["bash -o pipefail -ec git push arg0", "git push"]);
    assert.deepEqual(texts(`bash -c 'bash -c "git push"'`), ["bash -c bash -c \"git push\"", "bash -c git push", "git push"]);
  });

  it("parses eval's arguments joined, and the scripts of watch and su -c", () => {
    assert.deepEqual(texts("eval git push"), ["eval git push", "git push"]);
    assert.deepEqual(texts(`eval "git push; rm -rf /"`), ["eval git push; rm -rf /", "git push", "rm -rf /"]);
    assert.deepEqual(texts(`watch -n 5 "git push && ls"`), ["watch -n 5 git push && ls", "git push", "ls"]);
    assert.deepEqual(texts(`su -c "git push" root`), ["su -c git push root", "git push"]);
  });

  it("parses a heredoc or here-string fed to a shell, but not one fed to another command", () => {
    assert.deepEqual(texts("bash <<EOF\ngit push\nEOF"), ["bash", "git push"]);
    assert.deepEqual(texts("sh <<-'END'\n\tgit push\n\tEND\nls"), ["sh", "git push", "ls"]);
    assert.deepEqual(texts(`bash <<< "git push"`), ["bash", "git push"]);
    assert.deepEqual(texts("cat <<EOF\ngit push\nEOF"), ["cat"]);
    assert.deepEqual(texts("cat <<'EOF' > notes.md\n$(git push)\nEOF\nls"), ["cat", "ls"]);
  });

  it("finds substitutions in an unquoted heredoc body, which run even for cat", () => {
    assert.deepEqual(texts("cat <<EOF\nhello $(git push)\nEOF"), ["cat", "git push"]);
  });

  it("reads a quoted heredoc inside $( … ) as text, as in a commit message", () => {
    const line = "git commit -m \"$(cat <<'EOF'\nFix (parens) and `ticks` $(not run)\nEOF\n)\" && git push";
    assert.deepEqual(texts(line), ["cat", "git commit -m $(cat <<'EOF'\nFix (parens) and `ticks` $(not run)\nEOF\n)", "git push"]);
  });

  it("reads several heredocs opened on one line in order", () => {
    assert.deepEqual(texts("cat <<A; bash <<B\ngit push\nA\nrm -rf /\nB\nls"), ["cat", "bash", "rm -rf /", "ls"]);
  });

  it("does not treat a single-quoted string as commands, except as a shell's script", () => {
    assert.deepEqual(texts("echo 'git push'"), ["echo git push"]);
    assert.deepEqual(texts("echo '$(rm -rf /)'"), ["echo $(rm -rf /)"]);
    assert.match(refusal("bash -c '$(rm -rf /)'"), /command name \$\(rm -rf \/\) comes from a variable or substitution/);
    assert.deepEqual(texts("sh -c 'echo $(rm -rf /)'"), ["sh -c echo $(rm -rf /)", "rm -rf /", "echo $(rm -rf /)"]);
  });
});

describe("splitCommands: wrappers", () => {
  it("emits both the wrapped command and the command it runs", () => {
    assert.deepEqual(texts("sudo -u x git push"), ["sudo -u x git push", "git push"]);
    assert.deepEqual(texts("env -i git push"), ["env -i git push", "git push"]);
    assert.deepEqual(texts("env -u HOME A=1 git push"), ["env -u HOME A=1 git push", "git push"]);
    assert.deepEqual(texts("xargs -n1 git push"), ["xargs -n1 git push", "git push"]);
    assert.deepEqual(texts("xargs -I {} git push {}"), ["xargs -I {} git push {}", "git push {}"]);
    assert.deepEqual(texts("timeout 5 git push"), ["timeout 5 git push", "git push"]);
    assert.deepEqual(texts("timeout -k 5 --signal=KILL 10 git push"), ["timeout -k 5 --signal=KILL 10 git push", "git push"]);
    assert.deepEqual(texts("nohup git push &"), ["nohup git push", "git push"]);
    assert.deepEqual(texts("nice -n 5 git push"), ["nice -n 5 git push", "git push"]);
    assert.deepEqual(texts("time git push"), ["time git push", "git push"]);
  });

  it("unwraps command, builtin, exec, stdbuf, setsid, ionice, doas and chroot", () => {
    for (const wrapper of ["command", "builtin", "exec", "stdbuf -oL", "setsid", "ionice -c3", "doas", "chroot /srv"]) {
      assert.deepEqual(texts(`${wrapper} git push`), [`${wrapper} git push`, "git push"]);
    }
  });

  it("unwraps flock, taskset, chrt, setarch, unshare, prlimit, strace, runuser -u, firejail, torsocks and busybox", () => {
    for (const wrapper of ["flock -w 5 /tmp/x", "taskset -c 0", "chrt -f 10", "setarch x86_64 -R", "unshare -r", "prlimit --nofile=10", "strace -f -o log", "runuser -u me --", "firejail --quiet", "torsocks -i", "busybox"]) {
      assert.deepEqual(texts(`${wrapper} git push`), [`${wrapper} git push`, "git push"], wrapper);
    }
  });

  it("reads a long option by any unique prefix, as getopt does", () => {
    assert.deepEqual(texts("timeout --sig KILL 5 git push"), ["timeout --sig KILL 5 git push", "git push"]);
    assert.deepEqual(texts("env --chd /tmp git push"), ["env --chd /tmp git push", "git push"]);
    assert.match(refusal("env --split 'git push'"), /env -S/);
  });

  it("reads the scripts of su -c, flock -c, script -c, sg and parallel", () => {
    assert.deepEqual(texts("su -lc 'git push' me"), ["su -lc git push me", "git push"]);
    assert.deepEqual(texts("flock /tmp/x -c 'git push'"), ["flock /tmp/x -c git push", "git push"]);
    assert.deepEqual(texts("script -qc 'git push' /dev/null"), ["script -qc git push /dev/null", "git push"]);
    assert.deepEqual(texts("sg wheel 'git push'"), ["sg wheel git push", "git push"]);
    assert.deepEqual(texts("parallel 'gzip -9 {}' ::: a b"), ["parallel gzip -9 {} ::: a b", "gzip -9 $PARALLEL_ARGUMENT"]);
    assert.match(refusal("parallel < jobs.txt"), /parallel runs the commands it reads from its input/);
  });

  it("reads a shell's options as bash does: each o in a cluster takes a word", () => {
    assert.deepEqual(texts("bash -oc pipefail 'git push'"), ["bash -oc pipefail git push", "git push"]);
    assert.deepEqual(texts("eval -- 'git push'"), ["eval -- git push", "git push"]);
  });

  it("reads what git and package runners run: submodule foreach, rebase -x, bisect run, npx, npm exec", () => {
    assert.deepEqual(texts("git submodule foreach 'git push'"), ["git submodule foreach git push", "git push"]);
    assert.deepEqual(texts("git -C x rebase --exec='make test' main"), ["git -C x rebase --exec=make test main", "git rebase --exec=make test main", "make test"]);
    assert.deepEqual(texts("git bisect run make test"), ["git bisect run make test", "make test"]);
    assert.deepEqual(texts("npx -y tsc --noEmit"), ["npx -y tsc --noEmit", "tsc --noEmit"]);
    assert.deepEqual(texts("npm exec -c 'git push'"), ["npm exec -c git push", "git push"]);
  });

  it("refuses builtins that evaluate a subscript or a name holding code", () => {
    assert.match(refusal("test -v 'a[$(git push)]'"), /test evaluates an array subscript/);
    assert.match(refusal("x='a[`id`]'"), /x holds an array subscript that runs a command/);
    assert.match(refusal("printf -v PS4 x"), /printf sets PS4/);
    assert.match(refusal("hash -p /bin/sh ls"), /hash -p/);
    assert.match(refusal("echo ${x@P}"), /expands a prompt/);
    assert.match(refusal("echo ${!x}"), /reads a variable named at run time/);
    assert.deepEqual(texts('echo "${!arr[@]}" ${!pre*} ${a[$i]}'), ['echo ${!arr[@]} ${!pre*} ${a[$i]}']);
  });

  it("refuses a wrapper or a shell's -c that xargs completes from its input", () => {
    assert.match(refusal("xargs sh -c"), /xargs gives sh -c its script/);
    assert.match(refusal("xargs sudo"), /xargs gives sudo the command it runs/);
    assert.match(refusal("xargs -I{} bash -c {}"), /runs code built from a variable/);
  });

  it("unwraps wrappers inside wrappers, down to a nested shell", () => {
    assert.deepEqual(texts("sudo FOO=1 nice -n 5 git push"), ["sudo FOO=1 nice -n 5 git push", "nice -n 5 git push", "git push"]);
    assert.deepEqual(texts(`nohup sh -c "git push" >/dev/null 2>&1 &`), ["nohup sh -c git push", "sh -c git push", "git push"]);
    assert.deepEqual(texts("builtin eval git push"), ["builtin eval git push", "eval git push", "git push"]);
  });

  it("finds the command of find -exec, -execdir and -ok", () => {
    assert.deepEqual(texts("find . -exec rm -rf {} \\;"), ["find . -exec rm -rf {} ;", "rm -rf {}"]);
    assert.deepEqual(texts("find . -name x -execdir sh -c 'git push' ';' -ok rm {} +"), [
      "find . -name x -execdir sh -c git push ; -ok rm {} +",
      "sh -c git push",
      "git push",
      "rm {}",
    ]);
  });

  it("reads a known wrapper or a shell's script that an unknown command runs", () => {
    assert.deepEqual(texts("flock /tmp/x bash -c 'git push'"), ["flock /tmp/x bash -c git push", "bash -c git push", "git push"]);
    assert.deepEqual(texts("flock x sudo git push"), ["flock x sudo git push", "sudo git push", "git push"]);
    assert.deepEqual(texts("docker exec -it web bash"), ["docker exec -it web bash"], "exec is a builtin; a shell without a script reads nothing here");
  });

  it("does not unwrap command -v, which only looks a name up", () => {
    assert.deepEqual(texts("command -v git"), ["command -v git"]);
  });
});

describe("splitCommands: words, quotes and names", () => {
  it("strips leading assignments", () => {
    assert.deepEqual(texts("FOO=1 git push"), ["git push"]);
    assert.deepEqual(texts("FOO=1 BAR='x y' git push"), ["git push"]);
  });

  it("removes quote obfuscation from command names", () => {
    assert.deepEqual(texts("g''it push"), ["git push"]);
    assert.deepEqual(texts('"git" push'), ["git push"]);
    assert.deepEqual(texts("\\git push"), ["git push"]);
    assert.deepEqual(texts("g\\\nit push"), ["git push"]);
  });

  it("decodes $'…' ANSI-C quoting", () => {
    assert.deepEqual(texts("$'\\x67it' push"), ["git push"]);
    assert.deepEqual(texts("$'\\147it' push"), ["git push"]);
    assert.deepEqual(texts("$'git\\x00junk' push"), ["git push"]);
    assert.deepEqual(splitCommands("printf $'a\\tb\\n\\'\\\\'"), { ok: true, commands: [{ text: "printf a\tb\n'\\", words: ["printf", "a\tb\n'\\"], dynamic: false }], redirects: [] });
  });

  it("handles escapes inside double quotes and line continuations", () => {
    assert.deepEqual(splitCommands(`echo "a \\"b\\" \\$HOME \\\\ \\x"`), { ok: true, commands: [{ text: 'echo a "b" $HOME \\ \\x', words: ["echo", 'a "b" $HOME \\ \\x'], dynamic: false }], redirects: [] });
    assert.deepEqual(texts("git \\\n  push"), ["git push"]);
  });

  it("also emits the basename of a command written with a path", () => {
    assert.deepEqual(texts("/usr/bin/git push"), ["/usr/bin/git push", "git push"]);
    assert.deepEqual(texts("/usr/bin/sudo /usr/bin/git push"), ["/usr/bin/sudo /usr/bin/git push", "sudo /usr/bin/git push", "/usr/bin/git push", "git push"]);
  });

  it("drops redirections from the words", () => {
    assert.deepEqual(texts("git push > out.log 2>&1"), ["git push"]);
    assert.deepEqual(texts("git push &>/dev/null <in 3>>x"), ["git push"]);
    assert.deepEqual(texts(">log git push"), ["git push"]);
    assert.deepEqual(texts("git push >| f 2> err"), ["git push"]);
  });

  it("keeps a variable or glob as an argument", () => {
    assert.deepEqual(texts("echo $HOME ${USER} *.ts"), ["echo $HOME ${USER} *.ts"]);
    assert.deepEqual(texts("[ -f x ] && ls"), ["[ -f x ]", "ls"]);
  });
});

describe("splitCommands: arguments computed at run time", () => {
  /** The template of each command, with ANY_TEXT shown as «*» and ONE_WORD as «w»; the text when static. */
  function templates(line: string): string[] {
    const result = splitCommands(line);
    if (!result.ok) assert.fail(`expected ${JSON.stringify(line)} to split, got: ${result.reason}`);
    return result.commands.map((command) => {
      assert.equal(command.dynamic, command.template !== undefined);
      return command.template === undefined ? command.text : command.template.replaceAll(ANY_TEXT, "«*»").replaceAll(ONE_WORD, "«w»");
    });
  }

  it("marks unquoted expansions, globs and brace expansions as any words, or none", () => {
    assert.deepEqual(templates("git $x push"), ["git«*» push"]);
    assert.deepEqual(templates("git {push,} a{b,c} {1..3}"), ["git«*»«*»«*»"]);
    assert.deepEqual(templates("ls src/*.ts p?q [ab]"), ["ls«*»«*»«*»"]);
    assert.deepEqual(templates("git pu$(echo sh)"), ["echo sh", "git«*»"]);
  });

  it("marks a quoted expansion as text within one word, except \"$@\"", () => {
    assert.deepEqual(templates('git commit -m "$msg" "a $b c"'), ["git commit -m «w» a «w» c"]);
    assert.deepEqual(templates('git "$@" "${args[@]}"'), ["git«*»«*»"]);
  });

  it("keeps static words static: quotes, escapes, $'…', stash@{0}", () => {
    const result = splitCommands("git show 'x*' \\* $'\\x41' stash@{0}");
    assert.deepEqual(result, { ok: true, commands: [{ text: "git show x* * A stash@{0}", words: ["git", "show", "x*", "*", "A", "stash@{0}"], dynamic: false }], redirects: [] });
  });

  it("adds the arguments xargs and find -exec supply", () => {
    assert.deepEqual(templates("xargs git"), ["xargs git", "git«*»"]);
    assert.deepEqual(templates("xargs -I R git R x"), ["xargs -I R git R x", "git«*» x"]);
    assert.deepEqual(templates("find . -exec git {} \\;"), ["find . -exec git {} ;", "git «w»"], "one file name per run");
    assert.deepEqual(templates("find . -exec git {} +"), ["find . -exec git {} +", "git«*»"], "as many as fit");
    assert.match(refusal("xargs -I CMD CMD push"), /xargs builds the command name/);
  });
});

describe("splitCommands: global options before a subcommand", () => {
  it("also emits the command without git's global options", () => {
    assert.deepEqual(texts("git -C . push"), ["git -C . push", "git push"]);
    assert.deepEqual(texts("git -c user.name=x --no-pager -P --git-dir=.git push"), ["git -c user.name=x --no-pager -P --git-dir=.git push", "git push"]);
    assert.deepEqual(texts("/usr/bin/git --work-tree . status"), ["/usr/bin/git --work-tree . status", "git --work-tree . status", "git status"]);
  });

  it("also emits a subcommand spelled another way as rules spell it", () => {
    assert.deepEqual(texts("npm pub --tag x"), ["npm pub --tag x", "npm publish --tag x"]);
    assert.deepEqual(texts("npm i"), ["npm i", "npm install"]);
    assert.deepEqual(texts("npm p"), ["npm p"], "p is no unique prefix: npm refuses it");
    assert.deepEqual(texts("git subtree push origin x"), ["git subtree push origin x", "git push origin x"]);
    assert.deepEqual(texts("docker --context=x image push img"), ["docker --context=x image push img", "docker image push img", "docker push img"]);
  });

  it("reads an unknown option both with and without a value", () => {
    assert.deepEqual(texts("npm --registry x publish"), ["npm --registry x publish", "npm publish"]);
    assert.deepEqual(texts("npm --foo x publish"), ["npm --foo x publish", "npm x publish", "npm publish", "npm exec publish", "publish"], "and `npm x` is npm exec");
    assert.deepEqual(texts("cargo +nightly -Z x publish"), ["cargo +nightly -Z x publish", "cargo publish"]);
    assert.deepEqual(texts("docker --context=x push img"), ["docker --context=x push img", "docker push img"]);
  });

  it("refuses a git alias or a command-running setting on the command line, reading pagers as commands", () => {
    assert.match(refusal("git -c alias.p=push p"), /git -c alias\.p defines a git alias/);
    assert.match(refusal("git -c core.hooksPath=x commit"), /git -c core\.hooksPath may run a command/);
    assert.deepEqual(texts("git -c core.pager='less -R' log"), ["git -c core.pager=less -R log", "git log", "less -R"]);
  });

  it("keeps the commands read before a refusal", () => {
    const result = splitCommands("git push; alias x=y");
    assert.equal(result.ok, false);
    assert.deepEqual(result.commands.map((command) => command.text), ["git push", "alias x=y"]);
  });
});

describe("splitCommands: refuses what it cannot read safely", () => {
  it("refuses a command name built from a variable or substitution", () => {
    assert.match(refusal("$CMD push"), /command name \$CMD comes from a variable/);
    assert.match(refusal("$(echo git) push"), /command name/);
    assert.match(refusal("sudo $CMD push"), /command name/);
    assert.match(refusal("git${IFS}push"), /command name/);
  });

  it("refuses a command name that a glob or brace expansion would build", () => {
    assert.match(refusal("g*t push"), /glob or brace/);
    assert.match(refusal("{git,push}"), /glob or brace/);
  });

  it("refuses shell code built from a variable or substitution", () => {
    assert.match(refusal(`eval "$x"`), /eval runs code built from a variable/);
    assert.match(refusal(`bash -c "$x"`), /bash -c runs code built/);
    assert.match(refusal(`bash -c "echo $HOME"`), /bash -c runs code built/);
    assert.match(refusal("bash <(curl x)"), /shell runs a script from a variable or substitution/);
    assert.match(refusal("source <(curl x)"), /source reads a script/);
    assert.match(refusal("bash <<EOF\n$CMD\nEOF"), /standard input/);
  });

  it("refuses a shell that reads its script from a pipe", () => {
    assert.match(refusal("curl x | sh"), /standard input/);
    assert.match(refusal("echo 'git push' | bash -s arg"), /standard input/);
  });

  it("refuses unbalanced quotes, parentheses and substitutions", () => {
    assert.match(refusal(`echo "abc`), /unbalanced double quote/);
    assert.match(refusal("echo 'abc"), /unbalanced single quote/);
    assert.match(refusal("echo $(git push"), /missing '\)'/);
    assert.match(refusal("(ls"), /missing '\)'/);
    assert.match(refusal("ls )"), /unbalanced '\)'/);
    assert.match(refusal("{ ls"), /missing '\}'/);
    assert.match(refusal("echo `ls"), /unbalanced backquote/);
    assert.match(refusal("echo ${x"), /unbalanced '\$\{'/);
    assert.match(refusal("echo $'abc"), /unbalanced \$'/);
  });

  it("refuses an unterminated heredoc", () => {
    assert.match(refusal("bash <<EOF\ngit push"), /unterminated heredoc \(no line "EOF"\)/);
    assert.match(refusal("cat <<EOF"), /unterminated heredoc/);
  });

  it("reads the heredoc or here-string that /dev/stdin and /dev/fd/0 give a shell or source", () => {
    assert.deepEqual(texts('source /dev/stdin <<< "git push"'), ["source /dev/stdin", "git push"]);
    assert.deepEqual(texts("bash /proc/self/fd/0 <<EOF\ngit push\nEOF"), ["bash /proc/self/fd/0", "git push"]);
    assert.deepEqual(texts('bash <<< "git push" < /dev/stdin'), ["bash", "git push"]);
    assert.match(refusal(". /dev/fd/0 < x"), /standard input/);
    assert.match(refusal("bash /dev/fd/3"), /file descriptor/);
  });

  it("refuses code set up to run later: aliases, callbacks, traps, code in variables", () => {
    assert.match(refusal("alias g=git"), /alias defines commands/);
    assert.match(refusal("shopt -s expand_aliases"), /expand_aliases/);
    assert.match(refusal("mapfile -t -C cb arr"), /mapfile -C runs a callback/);
    assert.match(refusal("readarray -C cb arr"), /readarray -C/);
    assert.match(refusal(`trap "git push" EXIT`), /trap sets code/);
    assert.match(refusal("BASH_ENV=x bash -c ls"), /setting BASH_ENV/);
    assert.match(refusal("export ENV=x"), /setting ENV/);
    assert.match(refusal("PROMPT_COMMAND=x"), /setting PROMPT_COMMAND/);
    assert.match(refusal("PS4='`git push`' bash -x"), /PS4/);
    assert.deepEqual(texts("trap - EXIT; trap '' INT; trap -p"), ["trap - EXIT", "trap  INT", "trap -p"]);
    assert.deepEqual(texts("EDITOR='vim -n' git commit"), ["vim -n", "git commit"]);
  });

  it("refuses constructs it does not model", () => {
    assert.match(refusal("case $x in a) git push;; esac"), /case statements/);
    assert.match(refusal("for ((i=0; i<3; i++)); do ls; done"), /arithmetic for loops/);
    assert.match(refusal(`env -S "git push"`), /env -S/);
    assert.match(refusal("ls !(x)"), /unexpected '\('/);
  });

  it("refuses nesting deep enough to exhaust the stack, quickly", () => {
    assert.match(refusal("(".repeat(10_000)), /nested too deeply/);
    assert.match(refusal("$(".repeat(10_000)), /nested too deeply/);
    assert.match(refusal("eval ".repeat(100) + "git push"), /nested too deeply/);
    assert.equal(splitCommands("echo " + "$((a ".repeat(30) + ") )".repeat(30)).ok, true);
  });

  it("never throws on fragments of shell syntax", () => {
    const pieces = ["git", " ", "\n", ";", "&", "|", "(", ")", "{ ", "}", "<", ">", "'", '"', "$", "`", "\\", "#", "$(", "${", "$((", "<<E", "E", "<<<", "x=", "bash -c ", "eval ", "sudo ", "*", "$'", "if ", "then ", "<("];
    let seed = 7;
    for (let i = 0; i < 3000; i++) {
      let line = "";
      for (let j = 0; j < 10; j++) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        line += pieces[seed % pieces.length];
      }
      const result = splitCommands(line);
      assert.equal(typeof result.ok, "boolean");
    }
  });
});

describe("splitCommands: redirections", () => {
  const targets = (line: string) => splitCommands(line).redirects.map(({ reads, writes, target }) => `${reads ? "r" : ""}${writes ? "w" : ""} ${target}`);

  it("lists the files redirections open, on commands, groups and loops, nested shells too", () => {
    assert.deepEqual(targets("sort < in.txt > out.txt 2>> err.log"), ["r in.txt", "w out.txt", "w err.log"]);
    assert.deepEqual(targets("ls &> all.log; ls &>> all.log; ls >| x; ls >& y; exec 3<> z"), ["w all.log", "w all.log", "w x", "w y", "rw z"]);
    assert.deepEqual(targets("{ cat; } < a; while read l; do :; done < b"), ["r a", "r b"]);
    assert.deepEqual(targets("bash -c 'cat < ~/.netrc'"), ["r ~/.netrc"]);
  });

  it("leaves out heredocs, here-strings and descriptor copies", () => {
    assert.deepEqual(targets("cat <<EOF 2>&1 >&- <&0 <<< x\nbody\nEOF"), []);
  });
});

describe("expandBraces", () => {
  it("expands lists and sequences as bash does", () => {
    assert.deepEqual(expandBraces("~/.ssh/{id_rsa,config}"), ["~/.ssh/id_rsa", "~/.ssh/config"]);
    assert.deepEqual(expandBraces("{a,b}{1,2}"), ["a1", "a2", "b1", "b2"]);
    assert.deepEqual(expandBraces("x{a,{b,c}}"), ["xa", "xb", "xc"]);
    assert.deepEqual(expandBraces("f{08..10}"), ["f08", "f09", "f10"]);
    assert.deepEqual(expandBraces("{c..a}"), ["c", "b", "a"]);
    assert.deepEqual(expandBraces("{1..7..3}"), ["1", "4", "7"]);
  });

  it("keeps braces that are no expansion", () => {
    assert.deepEqual(expandBraces("stash@{0}"), ["stash@{0}"]);
    assert.deepEqual(expandBraces("{}"), ["{}"]);
    assert.deepEqual(expandBraces("{x}{a,b}"), ["{x}a", "{x}b"]);
  });

  it("gives up on more words than it can check, quickly", () => {
    assert.equal(expandBraces("{1..100000}"), undefined);
    assert.equal(expandBraces("{a,b}".repeat(40)), undefined);
  });
});
