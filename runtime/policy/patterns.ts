/**
 * The three pattern languages of permission rules. Hand-written because the built-in
 * `path.matchesGlob` skips dotfiles under `**`, which would let `.env` slip past a deny rule.
 */

/** Path globs: `**` any depth (dotfiles included), `*` and `?` within one segment, `{a,b}` either. `dir/**` also matches `dir`. */
export function globToRegExp(glob: string): RegExp {
  let source = "";
  for (let index = 0; index < glob.length; index++) {
    const char = glob[index]!;
    if (char === "*" && glob[index + 1] === "*") {
      const slashBefore = source.endsWith("/");
      const slashAfter = glob[index + 2] === "/";
      if (slashBefore && (slashAfter || index + 2 === glob.length)) {
        // "a/**/b" matches "a/b"; "a/**" matches "a" itself
        source = source.slice(0, -1) + (slashAfter ? "(?:/.*)?/" : "(?:/.*)?");
        index += slashAfter ? 2 : 1;
      } else {
        source += ".*";
        index += 1;
      }
    } else if (char === "*") source += "[^/]*";
    else if (char === "?") source += "[^/]";
    else if (char === "{") {
      const close = glob.indexOf("}", index);
      if (close < 0) source += "\\{";
      else {
        source += `(?:${glob.slice(index + 1, close).split(",").map(escape).join("|")})`;
        index = close;
      }
    } else source += escape(char);
  }
  return new RegExp(`^${source}$`);
}

export function matchesPath(path: string, glob: string): boolean {
  return globToRegExp(glob).test(path);
}

/** The folder a glob starts from: its part before the first wildcard, e.g. `~/code/app` for `~/code/app/**`. */
export function globBase(glob: string): string {
  const wildcard = glob.search(/[*?{]/);
  const prefix = wildcard < 0 ? glob : glob.slice(0, wildcard);
  return wildcard < 0 ? prefix : prefix.slice(0, prefix.lastIndexOf("/")) || "/";
}

/**
 * Command patterns, matched against one simple command such as `git push origin main`. `*` matches
 * anything (spaces too). A pattern without `*` matches the command itself or the command followed by
 * more words: `git push` matches `git push --force`, not `git pushy`.
 */
export function matchesCommand(command: string, pattern: string): boolean {
  const trimmed = pattern.trim();
  if (!trimmed.includes("*")) return command === trimmed || command.startsWith(trimmed + " ");
  return wildcard(command, trimmed);
}

/**
 * `*` matches any run of characters. Greedy with one backtrack point, so time stays linear-ish in
 * the text (a regular expression with several `.*` can take seconds on a long command line).
 */
function wildcard(text: string, pattern: string): boolean {
  let t = 0;
  let p = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== "*" && pattern[p] === text[t]) {
      t++;
      p++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      resume = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else return false;
  }
  while (pattern[p] === "*") p++;
  return p === pattern.length;
}

/** Domain patterns: `example.com` exactly, `*.example.com` its subdomains (not itself), `*` any host. */
export function matchesDomain(host: string, pattern: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, "");
  const p = pattern.toLowerCase().trim();
  if (p === "*") return true;
  if (p.startsWith("*.")) return h.endsWith(p.slice(1));
  return h === p;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
