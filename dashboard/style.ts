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
nav.top { display: flex; gap: 0.5rem; border-bottom: 1px solid #8886; margin-bottom: 0.5rem; }
nav.top a, a.more, a.task { display: inline-flex; align-items: center; min-height: 44px; min-width: 44px; padding: 0 0.5rem; }
.filters { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: end; }
.filters label { flex: 1 1 8rem; }
.filters select { display: block; width: 100%; min-height: 44px; font: inherit; }
.filters button { flex: 1 1 6rem; }
.facts { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; margin: 0.5rem 0; }
.facts dt { font-size: 0.8rem; opacity: 0.75; }
.facts dd { margin: 0; }
.turn { border: 1px solid #8886; border-radius: 6px; padding: 0.6rem; margin: 0 0 0.6rem; }
.turn h3 { font-size: 1rem; margin: 0 0 0.35rem; }
.text { white-space: pre-wrap; }
.tool { border-top: 1px dashed #8886; margin-top: 0.5rem; padding-top: 0.35rem; }
.line { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.line code { word-break: normal; }
.chip { display: inline-block; padding: 0 0.4rem; border-radius: 999px; border: 1px solid currentColor; font-size: 0.85rem; }
.chip.allow { color: #1e8449; }
.chip.ask { color: #b9770e; }
.chip.deny, .outcome.error { color: #c0392b; }
details summary { min-height: 44px; display: flex; align-items: center; cursor: pointer; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0.25rem 0; font-size: 0.85rem; }
form.inline { display: inline; }
ul.changes { padding-left: 1.2rem; }
.event { margin: 0.35rem 0 0.6rem; }
.sources { list-style: none; margin: 0.35rem 0 0; padding: 0; }
.chip.trusted { color: #1e8449; }
.chip.untrusted { color: #c0392b; }
.card:target { border: 2px solid #2e86c1; }
.diff span { display: block; }
.diff .add { color: #1e8449; }
.diff .remove { color: #c0392b; }
svg.chart { display: block; width: 100%; height: auto; border-bottom: 1px solid #8886; }
svg.chart .bar { fill: #2e86c1; }
svg.chart .bar.over { fill: #c0392b; }
svg.chart .budget { stroke: #b9770e; stroke-width: 1.5; stroke-dasharray: 4 3; }
.lanes { list-style: none; margin: 0; padding: 0; display: grid; gap: 0.6rem; grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr)); }
.lane { border: 1px solid #8886; border-radius: 6px; padding: 0.6rem; min-width: 0; }
.chip.done { color: #1e8449; }
.chip.running { color: #2e86c1; }
.chip.failed, .chip.unavailable { color: #c0392b; }
.chip.cancelled, .chip.interrupted { color: #b9770e; }
.waterfall { list-style: none; margin: 0; padding: 0; }
.waterfall .call { margin: 0 0 0.5rem; }
.waterfall .call p { margin: 0 0 0.15rem; font-size: 0.9rem; }
.waterfall .who { font-style: italic; }
svg.span { display: block; width: 100%; height: 0.6rem; }
svg.span .track { fill: #8882; }
svg.span .bar.model { fill: #2e86c1; }
svg.span .bar.tool { fill: #1e8449; }
svg.span .bar.specialist { fill-opacity: 0.6; }
svg.span .bar.error, svg.span .bar.interrupted { fill: #c0392b; }
svg.span .bar.running, svg.span .bar.unfinished { fill: #b9770e; }
table.spend { width: 100%; border-collapse: collapse; margin-top: 0.5rem; }
.checks .mark { display: inline-block; min-width: 1.2rem; font-weight: bold; }
.checks .ok .mark { color: #1e8449; }
.checks .warning .mark { color: #b9770e; }
.checks .problem .mark { color: #c0392b; }
table.spend th, table.spend td { text-align: left; padding: 0.25rem 0.4rem; border-bottom: 1px solid #8884; }
`;
