import { html } from "hono/html";
import { taskPath } from "./task-page.ts";

/** A staged task's copy, as the daemon reads it (runtime/stage/), and what the two buttons do. */
export interface StagedSources {
  /** True when the task has a staged copy not yet applied or discarded. */
  has(id: string): boolean;
  /** The copy's changes and unified diff (mounted for the reading). */
  view(id: string): Promise<{ original: string; changes: string[]; diff: string } | undefined>;
  apply(id: string): Promise<{ ok: boolean; message: string }>;
  discard(id: string): Promise<{ ok: boolean; message: string }>;
}

/** The Changes page: what the task changed in its copy, the full diff (escaped, never rendered), Apply and Discard. */
export function changesBody(id: string, title: string, view: { original: string; changes: string[]; diff: string }, csrf: string) {
  const base = taskPath(id);
  const form = (action: string, label: string, cls: string) => html`<form method="post" action="${base}/${action}" class="inline"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit" class="${cls}">${label}</button></form>`;
  return html`<h1>Changes · ${title || "Task"}</h1>
<p class="quiet"><code>${id}</code> · made on a copy of <code>${view.original}</code>; nothing reached the folder yet · <a class="more" href="${base}">Back to the task</a></p>
${view.changes.length ? html`<ul class="changes">${view.changes.map((line) => html`<li><code>${line}</code></li>`)}</ul>` : html`<p>The task changed nothing.</p>`}
<p>${view.changes.length ? form("apply", "Apply to the folder", "allow") : ""} ${form("discard", "Discard the copy", "deny")}</p>
${view.diff ? html`<pre class="diff">${view.diff}</pre>` : ""}`;
}

/** The line on the Task page that leads to the changes. */
export function changesLink(id: string) {
  return html`<p class="staged">📝 This task worked on a staged copy: <a href="${taskPath(id)}/changes">review its changes, then apply or discard them</a>.</p>`;
}
