// Live updates for the pipeline view and the run page: polls /ui/runs/ID/status for every
// element marked data-live="1" and updates the status cells in place; the first page of a
// pipeline reloads when a newer run appears. Without JavaScript the pages are complete, just
// not live.
(function () {
  "use strict";
  var PERIOD = 2000;

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); });
  }

  function setStatus(el, job) {
    if (!el) { return; }
    el.setAttribute("data-state", job.state);
    el.className = el.className.replace(/\bstatus-[a-z_]+\b/g, "").trim() + " status-" + job.state;
    var span = el.querySelector(".status");
    if (span) { span.outerHTML = job.html; }
    var d = el.querySelector(".duration");
    if (d) { d.textContent = job.duration; }
  }

  function updateSvgNode(node, job) {
    node.setAttribute("data-state", job.state);
    node.setAttribute("class", "node status-" + job.state);
    var tmp = document.createElement("div");
    tmp.innerHTML = job.html;
    var icon = tmp.querySelector(".icon"), word = tmp.querySelector(".word");
    var ti = node.querySelector(".node-icon"), tw = node.querySelector(".node-word"), td = node.querySelector(".node-duration");
    if (ti && icon) { ti.textContent = icon.textContent; }
    if (tw && word) { tw.textContent = word.textContent; }
    if (td) { td.textContent = job.duration; }
  }

  function pollRun(id, scope, onFinal) {
    getJSON("/ui/runs/" + id + "/status").then(function (s) {
      s.jobs.forEach(function (job) {
        var sel = '[data-job="' + CSS.escape(job.key) + '"]';
        scope.querySelectorAll("td.job-cell" + sel + ", tr.job-row" + sel).forEach(function (el) {
          if (el.tagName === "TR") {
            el.setAttribute("data-state", job.state);
            var st = el.querySelector(".job-status .status");
            if (st) { st.outerHTML = job.html; }
            var d = el.querySelector(".duration");
            if (d) { d.textContent = job.duration; }
          } else {
            setStatus(el, job);
          }
        });
        scope.querySelectorAll("g.node" + sel).forEach(function (n) { updateSvgNode(n, job); });
      });
      onFinal(s);
      if (!s.final) { setTimeout(function () { pollRun(id, scope, onFinal); }, PERIOD); }
    }).catch(function () { setTimeout(function () { pollRun(id, scope, onFinal); }, PERIOD * 3); });
  }

  // Pipeline view rows.
  document.querySelectorAll("tr.run-row[data-live='1']").forEach(function (row) {
    pollRun(row.getAttribute("data-run-id"), row, function (s) {
      row.setAttribute("data-state", s.state);
      var st = row.querySelector(".run-status .status");
      if (st) { st.outerHTML = s.html; }
      var d = row.querySelector(".run-duration");
      if (d) { d.textContent = s.duration; }
      if (s.final) { row.removeAttribute("data-live"); }
    });
  });

  // Run page.
  var header = document.getElementById("run-header");
  // Jobs waiting for approval when the page was made: their Approve/Reject forms are on
  // the page; when that set changes, the page is reloaded to show the right forms.
  function waitingKeys(keys) { return keys.sort().join(" "); }
  var waitingAtLoad = waitingKeys(Array.prototype.map.call(
    document.querySelectorAll("tr.job-row[data-state='waiting']"),
    function (tr) { return tr.getAttribute("data-job"); }));
  if (header && header.getAttribute("data-live") === "1") {
    pollRun(header.getAttribute("data-run-id"), document, function (s) {
      var waitingNow = waitingKeys(s.jobs.filter(function (j) { return j.state === "waiting"; })
        .map(function (j) { return j.key; }));
      if (waitingNow !== waitingAtLoad) { window.location.reload(); return; }
      header.setAttribute("data-state", s.state);
      var st = document.querySelector("#run-status .status");
      if (st) { st.outerHTML = s.html; }
      var d = document.getElementById("run-duration");
      if (d) { d.textContent = s.duration; }
      // Artifacts and buttons depend on the end state: show them by reloading once.
      if (s.final) { window.location.reload(); }
    });
  }

  // First page of a pipeline: reload when a newer run appears.
  var table = document.querySelector("[data-watch]");
  if (table) {
    var known = Number(table.getAttribute("data-latest") || 0);
    var watch = function () {
      getJSON(table.getAttribute("data-watch")).then(function (s) {
        if (s.latest && s.latest > known) { window.location.reload(); return; }
        setTimeout(watch, PERIOD * 2);
      }).catch(function () { setTimeout(watch, PERIOD * 5); });
    };
    setTimeout(watch, PERIOD * 2);
  }
})();
