/* Airlock inbox: live updates over server-sent events, one-click decisions, and ticking times.
 *
 * No framework, no build step, no external resources: this file ships in the package and is loaded
 * with `defer`. The pages' Content-Security-Policy forbids inline scripts, so every behaviour is
 * attached here. Without this script the inbox still works (forms post, the server redirects);
 * only the live updates are lost.
 *
 * The only markup inserted here is what the server rendered with the same autoescaping templates
 * as the page itself (the `html` of a feed event, or the refreshed detail page); text the agent
 * wrote is never turned into markup in the browser.
 */
"use strict";

(function () {
  const body = document.body;
  const main = document.getElementById("main");
  const prefix = body.dataset.prefix;
  const skewMs = Number(body.dataset.now) * 1000 - Date.now();

  function serverNow() {
    return (Date.now() + skewMs) / 1000;
  }

  /* Mirrors app/approvals/outcomes.py::human_duration. */
  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 90) return seconds + " s";
    let minutes = Math.floor(seconds / 60);
    if (minutes < 90) return minutes + " min";
    const hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    return minutes ? hours + " h " + minutes + " min" : hours + " h";
  }

  function tick() {
    const now = serverNow();
    for (const el of document.querySelectorAll("[data-since]")) {
      el.textContent = duration(now - Number(el.dataset.since)) + " ago";
    }
    for (const el of document.querySelectorAll("[data-until]")) {
      const left = Number(el.dataset.until) - now;
      el.textContent = left > 0 ? "in " + duration(left) : "now";
    }
  }

  function announce(text) {
    const announcer = document.getElementById("announcer");
    if (announcer && text) announcer.textContent = text;
  }

  function show(id, text) {
    const el = document.getElementById(id);
    if (!el) return;
    el.textContent = text || "";
    el.hidden = !text;
  }

  function element(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  /* ------------------------------------------------------------------ the pending page */

  function insertNewestFirst(list, card) {
    const created = Number(card.dataset.created);
    for (const other of list.children) {
      if (Number(other.dataset.created) < created) {
        list.insertBefore(card, other);
        return;
      }
    }
    list.append(card);
  }

  function countPending() {
    const list = document.getElementById("pending");
    const count = list.children.length;
    show("pending-count", String(count));
    document.getElementById("empty").hidden = count > 0;
    document.title = (count ? "(" + count + ") " : "") + "Pending · Airlock inbox";
  }

  function applyToPendingPage(approval, focus) {
    const pending = document.getElementById("pending");
    const recent = document.getElementById("recent");
    const existing = document.getElementById("approval-" + approval.id);
    if (approval.pending) {
      if (existing) {
        updateQuorum(existing, element(approval.html));
        return;
      }
      insertNewestFirst(pending, element(approval.html));
      announce(approval.message);
    } else {
      if (!existing) return;
      const card = element(approval.html);
      // A decision's reply can arrive after the feed already showed what came next (the call ran):
      // never let an older card replace a newer one, or "It is about to run." would stay up.
      if (Number(card.dataset.updated) < Number(existing.dataset.updated)) return;
      const hadFocus = focus || existing.contains(document.activeElement);
      if (existing.parentElement === pending) {
        existing.remove();
        recent.prepend(card);
        document.getElementById("recent-section").hidden = false;
        announce(approval.message);
      } else {
        existing.replaceWith(card);
      }
      if (hadFocus) card.focus();
    }
    countPending();
    tick();
  }

  // A quorum vote leaves the call pending: only its progress ("1 of 2 approvals, by alice") changes.
  // Swap just that line, so a reason the reviewer is typing into the card is kept.
  function updateQuorum(existing, card) {
    const shown = existing.querySelector(".quorum");
    const fresh = card.querySelector(".quorum");
    if (!shown || !fresh || Number(card.dataset.updated) < Number(existing.dataset.updated)) return;
    shown.replaceWith(fresh);
    existing.dataset.updated = card.dataset.updated;
  }

  /* ------------------------------------------------------------------ the detail page */

  let refreshes = 0;

  async function refreshDetail(focus) {
    const current = document.getElementById("approval");
    const hadFocus = focus || current.contains(document.activeElement);
    const mine = ++refreshes;
    const response = await fetch(location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("approval");
    if (!fresh || mine !== refreshes) return;  // a newer refresh is on its way; let it win
    document.getElementById("approval").replaceWith(document.adoptNode(fresh));
    document.title = page.title;
    if (hadFocus) document.getElementById("approval-title").focus();
    tick();
  }

  function apply(approval, focus) {
    if (main.dataset.live === "pending") {
      applyToPendingPage(approval, focus);
    } else if (main.dataset.live === "detail" && approval.id === main.dataset.approval) {
      announce(approval.message);
      refreshDetail(focus);
    }
  }

  /* ------------------------------------------------------------------ the live feed */

  function connect() {
    if (!main.dataset.live || !window.EventSource) return;
    const source = new EventSource(prefix + "/-/events?since=" + encodeURIComponent(main.dataset.rendered));
    source.addEventListener("open", function () {
      main.dataset.feed = "open";
      show("feed-status", "");
    });
    source.addEventListener("approval", function (event) {
      apply(JSON.parse(event.data), false);
    });
    source.addEventListener("reload", function () {
      source.close();
      location.reload();
    });
    source.addEventListener("signed-out", function () {
      source.close();
      main.dataset.feed = "closed";
      show("feed-status", "Your session has ended, so live updates stopped. Sign in again to keep reviewing.");
    });
    source.addEventListener("error", function () {
      main.dataset.feed = source.readyState === EventSource.CLOSED ? "closed" : "reconnecting";
      show("feed-status", source.readyState === EventSource.CLOSED
        ? "Live updates stopped. Reload the page to see new calls."
        : "Live updates were interrupted; reconnecting…");
    });
  }

  /* ------------------------------------------------------------------ decisions */

  async function submitDecision(form) {
    const container = form.closest(".card, #approval");
    const focus = container !== null && container.contains(document.activeElement);
    const data = new URLSearchParams(new FormData(form));
    let response = null;
    let reply;
    try {
      response = await fetch(form.action, {
        method: "POST", body: data, credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": data.get("csrf_token") || "" },
      });
      reply = await response.json();
    } catch (error) {
      reply = { error: "Airlock did not answer, so nothing was decided. Check your connection and try again." };
    }
    if (reply.approval) apply(reply.approval, focus);
    if (response !== null && response.ok) {
      show("error", "");
      show("notice", reply.message);
      announce(reply.message);
      return;
    }
    const message = reply.error || "Airlock refused this request.";
    const inCard = container !== null && container.isConnected ? container.querySelector(".card-message") : null;
    show("notice", "");
    if (inCard && !reply.approval) {
      inCard.textContent = message;
      inCard.hidden = false;
    } else {
      show("error", message);
    }
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("decide")) return;
    event.preventDefault();
    if (form.dataset.busy) return;
    form.dataset.busy = "1";
    submitDecision(form).finally(function () {
      delete form.dataset.busy;
    });
  });

  tick();
  setInterval(tick, 1000);
  connect();
})();
