// The dashboard's only script: it refreshes the live part of the page, and asks before a
// destructive form is sent. The HTML it swaps in is rendered and escaped by the server (Jinja2);
// this script never builds markup from data.
"use strict";

(function () {
  const live = document.getElementById("live");
  const updated = document.getElementById("updated");
  const every = Number(live.dataset.refreshMs) || 2000;
  let inFlight = false;

  async function refresh() {
    if (inFlight || document.hidden) {
      return;
    }
    inFlight = true;
    try {
      // Resolved against the origin, not the page's URL: a page opened as
      // http://user:password@host/... keeps those credentials in its URL, and fetch refuses a
      // URL that carries credentials (the browser sends the ones it has all the same).
      const response = await fetch(new URL(live.dataset.src, location.origin), {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      live.replaceChildren(...fresh.body.childNodes);
      // The server's clock, in UTC, as the tables show times: not the browser's.
      const takenAt = live.querySelector("#taken-at");
      updated.textContent = "updated " + (takenAt ? takenAt.textContent : "just now");
      updated.classList.remove("stale");
    } catch (error) {
      updated.textContent = "not updated (" + error.message + "): retrying";
      updated.classList.add("stale");
    } finally {
      inFlight = false;
    }
  }

  setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);

  // Forms marked data-confirm (purge, abort) ask first.
  document.addEventListener("submit", function (event) {
    const question = event.target.dataset.confirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
})();
