/** What the shell splitter's parts share: a word as read, standard input, and the refusal. */

/** The splitter cannot read a line safely; the policy asks a human. Its message is the reason shown. */
export class Unparseable extends Error {
  override name = "Unparseable";
}

/** One word as bash would see it before expansion; `value` keeps `$x` and `$(…)` as written. */
export interface Word {
  value: string;
  raw: string;
  /** Contains an expansion whose result is unknown until run time ($x, $(…), `…`, <(…)). */
  dynamic: boolean;
  /** Contains an unquoted glob or brace character. */
  glob: boolean;
  /** `value` with each quoted expansion replaced by ONE_WORD. */
  template: string;
  /** An unquoted expansion, glob or brace expansion (or a quoted "$@"): at run time any number of words, or none. */
  loose: boolean;
}

/** What a command reads on standard input: known text (heredoc, here-string) or a file (text null). */
export type Stdin = { text: string | null; dynamic: boolean };
