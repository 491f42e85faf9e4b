/**
 * The pages' one script, served as /assets/live.js (the CSP allows no inline script). Without it
 * every page still works (forms post, links load); with it, a page marked `data-live` follows
 * `/live`:
 *
 * - a Task page adds each event where the server would have drawn it (`log`), redraws a tool call
 *   as its decision, approval and output arrive (`tool`), and its header (`head`). A dropped stream
 *   reconnects by itself and resumes after the last event id it had (EventSource's Last-Event-ID).
 * - the Now page fetches itself again on `changed`, at most once a second.
 * - after 40 s without a word (pings come every 15 s), when the browser gives a stream up, or when
 *   the tab is shown again, the page fetches itself whole (a snapshot) and opens a fresh stream from
 *   there. A hidden tab closes its stream: nobody watches, so nothing is sent. `gone` ends a
 *   stream for good: the task ended, or the session did (the page reloads to say so).
 */
export const LIVE_SCRIPT = `"use strict";
(() => {
  const SILENCE_MS = 40000;
  let root = document.getElementById("live");
  if (!root || !root.dataset.live) return;
  let source = null;
  let heard = Date.now();
  let fetching = null;
  let lastFetch = 0;
  let trailing = null;

  const streamUrl = () => root.dataset.live === "task"
    ? "/live?task=" + encodeURIComponent(root.dataset.task) + "&after=" + encodeURIComponent(root.dataset.after || "0")
    : "/live";

  const open = () => {
    close();
    heard = Date.now();
    source = new EventSource(streamUrl());
    const hear = () => { heard = Date.now(); };
    let readies = 0;
    source.addEventListener("ping", hear);
    // The Now page has no ids to resume from: after a reconnect it fetches itself.
    source.addEventListener("ready", () => { hear(); if (readies++ > 0 && root.dataset.live === "now") snapshot(); });
    // A stream the browser gave up on (a tunnel's 502, a 401): fetch the page, which opens a new one.
    source.addEventListener("error", () => { if (source && source.readyState === EventSource.CLOSED) { close(); snapshot(); } });
    source.addEventListener("log", (message) => {
      hear();
      root.dataset.after = message.lastEventId;
      apply(JSON.parse(message.data));
    });
    source.addEventListener("head", (message) => {
      hear();
      const head = document.getElementById("head");
      if (head) head.innerHTML = JSON.parse(message.data).html;
    });
    source.addEventListener("changed", () => { hear(); snapshot(); });
    // The task ended, or the session did (then the reload shows why).
    source.addEventListener("gone", (message) => { close(); if (message.data === "Signed out.") location.reload(); });
  };
  const close = () => {
    if (source) source.close();
    source = null;
  };

  // The server's fragments are drawn by the same escaping templates as the page itself.
  const apply = (fragment) => {
    const log = document.getElementById("log");
    if (!log) return;
    if (fragment.append) log.insertAdjacentHTML("beforeend", fragment.append);
    if (fragment.tool) {
      const existing = document.getElementById(fragment.tool);
      if (!existing) return log.insertAdjacentHTML("beforeend", '<article class="turn">' + fragment.html + "</article>");
      // Redrawn in place; an output the reader opened stays open.
      const opened = [...existing.querySelectorAll("details")].map((details) => details.open);
      existing.outerHTML = fragment.html;
      const redrawn = document.getElementById(fragment.tool);
      if (redrawn) [...redrawn.querySelectorAll("details")].forEach((details, index) => { if (opened[index]) details.open = true; });
    }
  };

  // The page fetched again, its live part swapped in; open <details> stay open. A Task page's
  // stream is closed first and opened after, from the snapshot's place in the log: an event is
  // then either in the snapshot or sent after it, never both.
  const snapshot = () => {
    const wait = 1000 - (Date.now() - lastFetch);
    if (fetching || wait > 0) {
      if (!trailing) trailing = setTimeout(() => { trailing = null; snapshot(); }, Math.max(wait, 100));
      return;
    }
    lastFetch = Date.now();
    const task = root.dataset.live === "task";
    if (task) close();
    fetching = fetch(location.href, { credentials: "same-origin" })
      .then((response) => response.ok ? response.text() : Promise.reject(new Error("status " + response.status)))
      .then((text) => {
        const next = new DOMParser().parseFromString(text, "text/html").getElementById("live");
        if (!next) return;
        const openIds = [...root.querySelectorAll("details[open][id]")].map((element) => element.id);
        root.replaceWith(next);
        root = next;
        for (const id of openIds) document.getElementById(id)?.setAttribute("open", "");
        if (!root.dataset.live) close();
        else if (!source) open();
      })
      // The daemon is away (a restart): try again while someone watches.
      .catch(() => { if (!source && !document.hidden && !trailing) trailing = setTimeout(() => { trailing = null; snapshot(); }, 5000); })
      .finally(() => { fetching = null; });
  };

  setInterval(() => {
    if (source && Date.now() - heard > SILENCE_MS) { close(); snapshot(); }
  }, 5000);
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) close();
    else snapshot();
  });
  open();
})();
`;
