import type { SkillSpec } from "./skill-file.ts";

/** Something in a skill that a person should read before trusting it. */
export interface RedFlag {
  /** `SKILL.md:12`, or the file alone. */
  where: string;
  what: string;
  /** The line as written, clipped. */
  excerpt?: string;
  /** Shown, but not enough on its own to hold a new skill back until approved (allowed-tools). */
  note?: true;
}

interface Pattern {
  test: RegExp;
  what: string;
}

const DOWNLOAD = String.raw`(?:curl|wget|iwr|irm|invoke-webrequest|invoke-restmethod|fetch)\b`;
const SHELL = String.raw`(?:sudo\s+)?(?:ba|z|da|k|fi)?sh|python[0-9.]*|node|perl|ruby|php|iex|invoke-expression|powershell|pwsh`;

/**
 * Patterns seen in malicious skills: they get a command run that nobody read, hide what they run,
 * or talk the agent out of its limits. They flag text for a person to read; they block nothing
 * and prove nothing (a skill can be harmful without them, and flagged text can be harmless).
 */
const PATTERNS: Pattern[] = [
  { test: new RegExp(String.raw`${DOWNLOAD}[^|\n]*\|\s*(?:${SHELL})\b`, "i"), what: "pipes a download into a shell or interpreter (it runs code nobody read)" },
  { test: new RegExp(String.raw`(?:${SHELL})\s+(?:-c\s+["']?)?<?\(\s*\$?\(?\s*${DOWNLOAD}`, "i"), what: "runs a download in a shell (it runs code nobody read)" },
  { test: /base64\s+(?:-d|--decode|-D)\b[^\n]*\|\s*(?:sudo\s+)?(?:ba|z)?sh\b|\bfrom_?base64\b|\batob\s*\(|b64decode\s*\(/i, what: "decodes hidden text (often to run it)" },
  { test: /[A-Za-z0-9+/]{200,}={0,2}/, what: "holds a long base64 blob (hidden content)" },
  { test: /(?:[0-9a-fA-F]{2}){100,}|(?:\\x[0-9a-fA-F]{2}){40,}/, what: "holds a long hex blob (hidden content)" },
  { test: /\bprerequisite|\b(?:install|download|run|execute)\b[^.\n]{0,60}\b(?:first|before (?:you |using|running|continuing|anything))\b/i, what: "asks to install or run something first (a usual way to get a payload run)" },
  { test: /sandbox[^.\n]{0,30}\b(?:off|disable|false|none)\b|\b(?:disable|turn off|bypass|escape|get around|avoid)\b[^.\n]{0,30}\bsandbox|dangerously|--no-sandbox|skip[-_ ]permissions/i, what: "talks about turning off or getting around the sandbox" },
  { test: /config\.ya?ml|\.nightshift\b|allow_private_network|\b(?:add|widen|loosen|change|edit)\b[^.\n]{0,40}\b(?:rules?|permissions?|policy|allow ?list)\b/i, what: "talks about changing Nightshift's settings or widening its rules" },
  { test: /\bignore (?:all |any )?(?:previous|prior|earlier|above|your) (?:instructions|rules)|do not (?:tell|inform|mention)[^.\n]{0,20}\b(?:user|person|human)/i, what: "tells the agent to ignore its instructions or hide something from the person" },
  { test: /~\/\.ssh|~\/\.aws|\bid_rsa\b|\bid_ed25519\b|ANTHROPIC_API_KEY|TELEGRAM_BOT_TOKEN|\.env\b|\bkeychain\b/i, what: "mentions secrets (keys, tokens, .env files)" },
];

const MAX_SCANNED_BYTES = 1024 * 1024;

/** Red flags in a skill's files (text files line by line; binaries as a whole) and its allowed-tools. */
export function redFlags(contents: ReadonlyMap<string, Buffer>, spec?: SkillSpec): RedFlag[] {
  const flags: RedFlag[] = [];
  if (spec?.allowedTools.length) flags.push({ where: "SKILL.md", what: `lists allowed-tools (${spec.allowedTools.join(" ")}); shown only: Nightshift never widens its rules for a skill`, note: true });
  for (const [path, content] of contents) {
    if (content.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])) || [0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe].includes(content.length >= 4 ? content.readUInt32BE(0) : 0)) {
      flags.push({ where: path, what: "is a compiled program (it cannot be read to see what it does)" });
      continue;
    }
    if (content.subarray(0, 8192).includes(0) || content.length > MAX_SCANNED_BYTES) continue;
    const lines = content.toString("utf8").split(/\r?\n/);
    lines.forEach((line, index) => {
      for (const pattern of PATTERNS) {
        if (pattern.test.test(line)) flags.push({ where: `${path}:${index + 1}`, what: pattern.what, excerpt: clip(line.trim()) });
      }
    });
  }
  return flags;
}

export function formatFlags(flags: readonly RedFlag[]): string[] {
  return flags.map((flag) => `  ! ${flag.where}: ${flag.what}${flag.excerpt ? `\n      ${flag.excerpt}` : ""}`);
}

function clip(line: string): string {
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}
