import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decide, DEFAULT_RULES, type Action, type Rule } from "../runtime/policy/policy.ts";
import { ORDINARY_COMMANDS } from "./support/ordinary-commands.ts";

// Lines that make bash run a denied or asked-for command, named by the trick they use. Checked
// through decide() with the defaults (publishing and `rm -rf /` ask) and a config deny rule for
// `git push`: none may be allowed. "deny" where the splitter can read what runs, "ask" where it
// cannot be sure and a human decides.

const places = { workdir: "/work/app", home: "/home/u/.nightshift", userHome: "/home/u" };
const RULES: Rule[] = [{ action: "deny", kind: "command", pattern: "git push", origin: "config permissions.deny[0]" }, ...DEFAULT_RULES];
const run = (command: string) => decide({ kind: "command", command }, RULES, places);

interface Trick {
  trick: string;
  line: string;
  expected: Exclude<Action, "allow">;
}

const TRICKS: Trick[] = [
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
]);

describe("policy: ordinary commands are allowed", () => {
  it("allows every line of the ordinary corpus but the ones that push, publish or define code", () => {
    const surprises = ORDINARY_COMMANDS.map((line) => ({ line, decision: run(line) })).filter(({ line, decision }) => decision.action !== (EXPECTED_NOT_ALLOWED.get(line) ?? "allow"));
    assert.deepEqual(
      surprises.map(({ line, decision }) => `${line} → ${decision.action}: ${decision.reason}`),
      [],
    );
  });
});
