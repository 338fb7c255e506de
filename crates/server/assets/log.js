// The job log page: live lines over Server-Sent Events (from the byte offset the page was
// rendered at, so nothing is shown twice), follow/unfollow, search (in the shown lines as
// you type; in the whole log on the server with "Search whole log"), and timestamps.
(function () {
  "use strict";
  var log = document.getElementById("log");
  if (!log) { return; }
  var header = document.getElementById("log-header");

  // --- ANSI colours (the same classes the server renders) ---
  function esc(s) {
    return s.replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function ansi(text) {
    var out = "", st = { fg: null, bg: null, b: false, u: false, i: false }, open = false;
    var re = /\x1b\[([0-9;:]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b./g, last = 0, m;
    function flush(s) {
      if (!s) { return; }
      s = s.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
      var cls = [];
      if (st.fg !== null) { cls.push("fg-" + st.fg); }
      if (st.bg !== null) { cls.push("bg-" + st.bg); }
      if (st.b) { cls.push("b"); } if (st.i) { cls.push("i"); } if (st.u) { cls.push("u"); }
      out += cls.length ? '<span class="' + cls.join(" ") + '">' + esc(s) + "</span>" : esc(s);
    }
    while ((m = re.exec(text)) !== null) {
      flush(text.slice(last, m.index));
      last = re.lastIndex;
      if (m[2] !== "m") { continue; }
      var ps = (m[1] || "0").split(/[;:]/).map(function (p) { return Number(p || 0); });
      for (var k = 0; k < ps.length; k++) {
        var p = ps[k];
        if (p === 0) { st = { fg: null, bg: null, b: false, u: false, i: false }; }
        else if (p === 1) { st.b = true; } else if (p === 3) { st.i = true; } else if (p === 4) { st.u = true; }
        else if (p === 22) { st.b = false; } else if (p === 23) { st.i = false; } else if (p === 24) { st.u = false; }
        else if (p >= 30 && p <= 37) { st.fg = p - 30; } else if (p === 39) { st.fg = null; }
        else if (p >= 40 && p <= 47) { st.bg = p - 40; } else if (p === 49) { st.bg = null; }
        else if (p >= 90 && p <= 97) { st.fg = p - 82; } else if (p >= 100 && p <= 107) { st.bg = p - 92; }
        else if (p === 38 || p === 48) { k += ps[k + 1] === 5 ? 2 : ps[k + 1] === 2 ? 4 : 0; }
      }
    }
    flush(text.slice(last));
    return out;
  }
  function pad(n, w) { n = String(n); while (n.length < w) { n = "0" + n; } return n; }
  function clock(ms) {
    var d = ((ms % 86400000) + 86400000) % 86400000;
    return pad(Math.floor(d / 3600000), 2) + ":" + pad(Math.floor(d / 60000) % 60, 2) + ":" +
      pad(Math.floor(d / 1000) % 60, 2) + "." + pad(d % 1000, 3);
  }

  // --- follow ---
  var followBtn = document.getElementById("follow-toggle");
  var following = !!followBtn;
  function setFollow(on) {
    following = on;
    if (followBtn) {
      followBtn.setAttribute("aria-pressed", on ? "true" : "false");
      followBtn.textContent = on ? "Following" : "Follow";
    }
    if (on) { window.scrollTo(0, document.body.scrollHeight); }
  }
  if (followBtn) {
    followBtn.addEventListener("click", function () { setFollow(!following); });
    window.addEventListener("wheel", function (e) { if (e.deltaY < 0 && following) { setFollow(false); } }, { passive: true });
    window.addEventListener("keydown", function (e) {
      if ((e.key === "PageUp" || e.key === "ArrowUp" || e.key === "Home") && following) { setFollow(false); }
    });
  }

  // --- live lines ---
  var next = Number(log.getAttribute("data-next-line") || 1);
  if (log.getAttribute("data-live") === "1" && window.EventSource) {
    var url = log.getAttribute("data-stream") + "?from=" + encodeURIComponent(log.getAttribute("data-offset") || "0");
    var es = new EventSource(url, { withCredentials: true });
    var empty = document.getElementById("log-empty");
    es.addEventListener("line", function (ev) {
      var raw = ev.data, ms = 0, stream = "o", text = raw;
      var m = /^(\d+) (\S+) ?([\s\S]*)$/.exec(raw);
      if (m) { ms = Number(m[1]); stream = m[2]; text = m[3]; }
      var cls = stream === "e" ? "stream-e" : stream === "s" ? "stream-s" : stream.indexOf("v:") === 0 ? "stream-v" : "stream-o";
      var n = next++;
      var div = document.createElement("div");
      div.className = "line " + cls;
      div.id = "L" + n;
      div.setAttribute("data-n", n);
      div.innerHTML = '<a class="ln" href="#L' + n + '" aria-label="line ' + n + '">' + n + '</a><span class="ts">' + clock(ms) +
        "</span>" + (stream.indexOf("v:") === 0 ? '<span class="svc">[' + esc(stream.slice(2)) + "]</span> " : "") +
        '<span class="txt">' + ansi(text) + "</span>";
      log.appendChild(div);
      if (empty) { empty.remove(); empty = null; }
      if (query) { mark(div); updateCount(); }
      if (following) { window.scrollTo(0, document.body.scrollHeight); }
    });
    es.addEventListener("end", function (ev) {
      es.close();
      if (header) { header.setAttribute("data-state", ev.data); }
      // The final page highlights the failing command and shows the end state.
      window.location.reload();
    });
  }

  // --- search ---
  var search = document.getElementById("log-search"), count = document.getElementById("search-count");
  var query = "", matches = [], current = -1, timer = null;
  function mark(div) {
    var t = div.querySelector(".txt");
    var hit = query && t && t.textContent.toLowerCase().indexOf(query) >= 0;
    div.classList.toggle("match", !!hit);
    if (hit) { matches.push(div); }
  }
  function updateCount() {
    if (count) { count.textContent = query ? (matches.length + " match" + (matches.length === 1 ? "" : "es") + " on this page") : ""; }
  }
  function run() {
    query = search.value.trim().toLowerCase();
    matches = []; current = -1;
    var lines = log.querySelectorAll(".line");
    for (var i = 0; i < lines.length; i++) { lines[i].classList.remove("current"); mark(lines[i]); }
    updateCount();
  }
  // --- search in the whole log (the server reads the file; hits link to windows) ---
  var form = document.getElementById("log-search-form");
  var panel = document.getElementById("search-panel");
  var summary = document.getElementById("search-summary");
  var results = document.getElementById("search-results");
  function searchAll() {
    var q = search.value.trim();
    if (!q) { panel.hidden = true; return; }
    summary.textContent = "Searching…";
    panel.hidden = false;
    fetch(form.getAttribute("action") + "?format=json&q=" + encodeURIComponent(q),
      { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (f) {
        results.textContent = "";
        summary.textContent = f.count === 0
          ? "No line of " + f.lines + " contains “" + f.q + "”."
          : f.count + " of " + f.lines + " lines contain “" + f.q + "”" +
            (f.truncated ? "; the first " + f.hits.length + " are listed." : ".");
        f.hits.forEach(function (h) {
          var li = document.createElement("li");
          li.className = "search-hit";
          li.setAttribute("data-n", h.n);
          var a = document.createElement("a");
          a.href = h.href;
          a.textContent = "line " + h.n;
          var code = document.createElement("code");
          code.className = "hit-text";
          code.textContent = h.text;
          li.appendChild(a);
          li.appendChild(document.createTextNode(" "));
          li.appendChild(code);
          results.appendChild(li);
        });
      })
      .catch(function () { summary.textContent = "The search failed; try again."; });
  }
  if (form && panel) {
    form.addEventListener("submit", function (e) { e.preventDefault(); setFollow(false); searchAll(); });
  }
  if (search) {
    search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(run, 150); });
    search.addEventListener("keydown", function (e) {
      if (e.key !== "Enter" || !matches.length) { return; }
      e.preventDefault();
      if (current >= 0) { matches[current].classList.remove("current"); }
      current = (current + (e.shiftKey ? matches.length - 1 : 1)) % matches.length;
      matches[current].classList.add("current");
      setFollow(false);
      matches[current].scrollIntoView({ block: "center" });
      if (count) { count.textContent = (current + 1) + " / " + matches.length; }
    });
  }
})();
