/**
 * The dashboard's stylesheet, served as /assets/app.css (the CSP allows no inline style). Made for a
 * phone first: nothing is wider than the screen at 390 px (long commands and ids wrap), and every
 * button is at least 44 px high and wide.
 */
export const APP_CSS = `:root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.4; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 48rem; padding: 0.75rem; overflow-wrap: anywhere; }
h1 { font-size: 1.4rem; margin: 0.5rem 0; }
h2 { font-size: 1.1rem; margin: 1.25rem 0 0.5rem; }
p { margin: 0.35rem 0; }
code { font-family: ui-monospace, monospace; word-break: break-all; }
code.exact { display: block; white-space: pre-wrap; padding: 0.4rem; border: 1px solid #8886; border-radius: 4px; }
.cards { list-style: none; margin: 0; padding: 0; }
.card { border: 1px solid #8886; border-radius: 6px; padding: 0.6rem; margin: 0 0 0.6rem; }
.quiet { opacity: 0.75; font-size: 0.9rem; }
.warn { font-weight: bold; color: #c0392b; }
.answers { display: flex; flex-wrap: wrap; gap: 0.5rem; margin-top: 0.5rem; }
.answers form { flex: 1 1 7rem; margin: 0; }
button { min-height: 44px; min-width: 44px; width: 100%; padding: 0.5rem 0.75rem; font: inherit; border-radius: 6px; border: 1px solid #8888; cursor: pointer; }
form[action="/logout"] button { width: auto; }
button.deny { border-color: #c0392b; }
`;
