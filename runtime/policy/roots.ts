import { sep } from "node:path";
import { globBase } from "./patterns.ts";
import { expand, type PolicyPlaces, type Rule } from "./policy.ts";

/**
 * Folders inside the writable ones (the workdir, allow-write roots) that a deny or ask write rule
 * covers. Commands cannot ask per file, so these are mounted read-only for them: a rule the file
 * tools obey must not be sidestepped with `echo > file`.
 */
export function writeProtected(rules: readonly Rule[], places: PolicyPlaces, roots: readonly string[]): string[] {
  const bases = rules
    .filter((rule) => rule.kind === "write" && rule.action !== "allow")
    .map((rule) => globBase(expand(rule.pattern, places)))
    .filter((base) => base.startsWith("/") && base !== "/");
  return [...new Set(bases)].filter((base) => roots.some((root) => base !== root && base.startsWith(root.endsWith(sep) ? root : root + sep)));
}
