// Rayon console: the live map, the rules page's reload status and the KPI charts.
// Vanilla JS, no build step. Never innerHTML with data: every text goes through textContent.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const TICKER_MAX = 200;
  const body = document.body;
  const canTrace = body.dataset.canTrace === "1";
  const lang = document.documentElement.lang || "en";

  // The page's words in its language, rendered by the server (the #i18n JSON block).
  const i18nBlock = document.getElementById("i18n");
  const words = i18nBlock ? JSON.parse(i18nBlock.textContent) : {};
  function word(key, values, fallback) {
    let text = typeof words[key] === "string" ? words[key] : fallback;
    for (const [k, v] of Object.entries(values || {})) text = text.split("{" + k + "}").join(String(v));
    return text;
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svgEl(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  // --- live ------------------------------------------------------------------------------

  function setCount(zone, count) {
    document.querySelectorAll("[data-count-for]").forEach((n) => {
      if (n.getAttribute("data-count-for") === zone) n.textContent = String(count);
    });
    document.querySelectorAll("[data-occupancy-for]").forEach((n) => {
      if (n.getAttribute("data-occupancy-for") === zone) n.textContent = String(count);
    });
  }

  function drawDots(positions) {
    const layer = document.getElementById("dots");
    if (!layer) return;
    const devices = (positions && positions.devices) || [];
    const group = document.createDocumentFragment();
    for (const d of devices) {
      const g = svgEl("g", { class: "dot", "data-visit": d.visit, tabindex: canTrace ? 0 : -1 });
      if (d.zone) g.setAttribute("data-in-zone", d.zone);
      g.appendChild(svgEl("circle", { class: "accuracy", cx: d.x, cy: -d.y, r: Math.max(d.accuracy_m, 0.1) }));
      g.appendChild(svgEl("circle", { class: "dot-core", cx: d.x, cy: -d.y, r: 0.3 }));
      const title = svgEl("title", {});
      title.textContent = d.visit + (d.zone ? " · " + d.zone : "") + " · ±" + d.accuracy_m.toFixed(1) + " m";
      g.appendChild(title);
      if (canTrace) g.addEventListener("click", () => { window.location.href = "/visits/" + encodeURIComponent(d.visit); });
      group.appendChild(g);
    }
    layer.replaceChildren(group);
    const count = document.getElementById("dot-count");
    if (count) count.textContent = String(devices.length);
  }

  function tickerItem(line) {
    const li = el("li", { class: "tick tick-" + line.type, "data-visit": line.visit, "data-at": line.at });
    li.appendChild(el("time", {}, (line.at || "").slice(11, 19)));
    li.appendChild(document.createTextNode(" "));
    const kinds = words.kinds || {}, states = words.states || {};
    const what = line.type === "zone_event" && typeof kinds[line.what] === "string" ? kinds[line.what] : line.what;
    li.appendChild(el("span", { class: "what" }, what));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("span", { class: "zone" }, line.zone || ""));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("span", { class: "state" }, (line.state && typeof states[line.state] === "string" ? states[line.state] : line.state) || ""));
    li.appendChild(document.createTextNode(" "));
    if (canTrace) li.appendChild(el("a", { class: "visit", href: "/visits/" + encodeURIComponent(line.visit) }, line.visit));
    else li.appendChild(el("span", { class: "visit" }, line.visit));
    return li;
  }

  function addTick(line) {
    const list = document.getElementById("ticker");
    if (!list) return;
    list.insertBefore(tickerItem(line), list.firstChild);
    while (list.children.length > TICKER_MAX) list.removeChild(list.lastChild);
  }

  function setTicker(lines) {
    const list = document.getElementById("ticker");
    if (!list) return;
    list.replaceChildren(...lines.slice(0, TICKER_MAX).map(tickerItem));
  }

  function setStatus(status) {
    if (!status) return;
    for (const [anchor, health] of Object.entries(status.anchors || {})) {
      document.querySelectorAll("[data-anchor]").forEach((n) => {
        if (n.getAttribute("data-anchor") !== anchor) return;
        n.classList.remove("anchor-ok", "anchor-silent", "anchor-unknown");
        n.classList.add("anchor-" + health);
      });
    }
    const box = document.getElementById("reload-status");
    if (box && status.rules) {
      const r = status.rules;
      const p = r.error
        ? el("p", { class: "rule-error", id: "reload-error" }, word("reload_refused", {}, "The gateway refused its last rule reload (the previous set keeps running): "))
        : el("p", { id: "reload-ok" }, word("reload_ok", { count: Number(r.count).toLocaleString(lang), loaded_at: r.loaded_at }, "The gateway runs {count} rule(s), loaded {loaded_at}."));
      if (r.error) p.appendChild(el("code", {}, r.error));
      box.replaceChildren(p);
    }
  }

  function setBroker(connected) {
    const n = document.getElementById("broker-state");
    if (n) n.textContent = connected ? word("connected", {}, "connected") : word("not_connected", {}, "not connected");
    body.dataset.broker = connected ? "up" : "down";
  }

  function setStream(text) {
    const n = document.getElementById("stream-state");
    if (n) n.textContent = text;
  }

  function startLive() {
    const source = new EventSource("/live");
    source.addEventListener("open", () => setStream(word("live", {}, "live")));
    source.addEventListener("error", () => {
      setStream(word("reconnecting", {}, "reconnecting"));
      if (source.readyState === EventSource.CLOSED) {
        // the stream refused us (session over): log in again
        fetch("/state.json", { credentials: "same-origin" }).then((r) => {
          if (r.status === 401) window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname);
        });
      }
    });
    const on = (name, fn) => source.addEventListener(name, (e) => fn(JSON.parse(e.data)));
    on("snapshot", (s) => {
      for (const [zone, count] of Object.entries(s.occupancy || {})) setCount(zone, count);
      drawDots(s.positions);
      if (document.getElementById("ticker")) setTicker(s.ticker || []);
      setStatus(s.status);
      setBroker(s.broker);
      body.dataset.live = "ready";
    });
    on("positions", drawDots);
    on("ticker", addTick);
    on("occupancy", (o) => setCount(o.zone, o.count));
    on("status", setStatus);
    on("broker", (b) => setBroker(b.connected));
  }

  // --- KPIs ------------------------------------------------------------------------------

  function numberKey(row, names) {
    for (const n of names) if (typeof row[n] === "number") return n;
    return Object.keys(row).find((k) => typeof row[k] === "number");
  }

  function labelKey(row, names) {
    for (const n of names) if (n in row) return n;
    return Object.keys(row)[0];
  }

  // "2026-03-03T09:00+01:00" → "09:00"; "2026-03-03" → "03-03"; anything else as it is
  function shortLabel(text) {
    if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(text)) return text.slice(11, 16);
    if (/^\d{4}-\d{2}-\d{2}$/.test(text)) return text.slice(5);
    return text.length > 12 ? text.slice(0, 11) + "…" : text;
  }

  // Which bars get a label: hours on round hours (a day's date past two days), other series
  // every n-th bar, at most about 12 labels; categories all, slanted when there are many.
  function labeller(rows, lk) {
    const n = rows.length, first = String(rows[0][lk]);
    if (/^\d{4}-\d{2}-\d{2}T\d{2}:/.test(first)) {
      const step = [1, 2, 3, 6, 12, 24, 48, 72, 168].find((h) => n / h <= 12) || 168;
      return (r) => {
        const t = String(r[lk]), hour = Number(t.slice(11, 13));
        const day = Math.floor(Date.parse(t.slice(0, 10) + "T00:00:00Z") / 86400000);
        if (step < 24) return hour % step === 0 ? t.slice(11, 16) : null;
        return hour === 0 && day % (step / 24) === 0 ? t.slice(5, 10) : null;
      };
    }
    if (/^\d{4}-\d{2}-\d{2}$/.test(first)) {
      const step = Math.ceil(n / 12);
      return (r, i) => (i % step === 0 ? String(r[lk]).slice(5) : null);
    }
    return (r) => shortLabel(String(r[lk]));
  }

  function barChart(target, rows, labels, values) {
    if (!target) return;
    if (!rows || rows.length === 0) { target.replaceChildren(el("p", { class: "empty" }, word("no_data", {}, "No data in this period."))); return; }
    const lk = labelKey(rows[0], labels), vk = numberKey(rows[0], values);
    const max = Math.max(1, ...rows.map((r) => Number(r[vk]) || 0));
    const label = labeller(rows, lk);
    const slanted = rows.length > 6 && !/^\d{4}-/.test(String(rows[0][lk]));
    const w = 100, h = 50, bw = w / rows.length, foot = slanted ? 18 : 8;
    const svg = svgEl("svg", { viewBox: "0 0 " + w + " " + (h + foot), class: "bar-chart", role: "img" });
    rows.forEach((r, i) => {
      const v = Number(r[vk]) || 0, bh = (v / max) * h;
      const bar = svgEl("rect", { x: i * bw + bw * 0.1, y: h - bh, width: bw * 0.8, height: bh, class: "bar", "data-label": String(r[lk]), "data-value": v });
      const title = svgEl("title", {});
      title.textContent = r[lk] + ": " + v;
      bar.appendChild(title);
      svg.appendChild(bar);
      const text = label(r, i);
      if (text !== null) {
        const x = i * bw + bw / 2, y = h + 4;
        const attrs = slanted
          ? { x: x, y: y, class: "bar-label", "text-anchor": "end", transform: "rotate(-40 " + x + " " + y + ")" }
          : { x: x, y: y + 2, class: "bar-label", "text-anchor": "middle" };
        const t = svgEl("text", attrs);
        t.textContent = text;
        svg.appendChild(t);
      }
    });
    target.replaceChildren(svg);
  }

  // The rules' funnel on the page: the columns a marketer reads first (rules.csv has them all).
  const RULE_COLUMNS = ["rule", "offers", "holdout", "sent", "delivered", "opened", "redeemed",
    "conversion", "control_conversion", "uplift", "ci_low", "ci_high"];

  function table(target, rows, columns) {
    if (!target) return;
    if (!rows || rows.length === 0) { target.replaceChildren(el("p", { class: "empty" }, word("no_data", {}, "No data in this period."))); return; }
    const keys = columns ? columns.filter((k) => k in rows[0]) : Object.keys(rows[0]);
    const t = el("table", {});
    const head = el("tr", {});
    const names = words.columns || {};
    keys.forEach((k) => head.appendChild(el("th", { "data-column": k }, typeof names[k] === "string" ? names[k] : k)));
    t.appendChild(el("thead", {})).appendChild(head);
    const tb = el("tbody", {});
    rows.forEach((r) => {
      const tr = el("tr", {});
      keys.forEach((k) => {
        const v = r[k];
        tr.appendChild(el("td", {}, typeof v === "number" && !Number.isInteger(v) ? v.toLocaleString(lang, { minimumFractionDigits: 3, maximumFractionDigits: 3, useGrouping: false }) : v === null ? "—" : v));
      });
      tb.appendChild(tr);
    });
    t.appendChild(tb);
    target.replaceChildren(t);
  }

  function startKpis() {
    const status = document.getElementById("kpis-status");
    fetch(status.dataset.src, { credentials: "same-origin" })
      .then((r) => r.json().then((data) => ({ ok: r.ok, data })))
      .then(({ ok, data }) => {
        if (!ok) { status.textContent = data.error || word("kpis_unreadable", {}, "The KPIs cannot be read."); status.className = "error"; return; }
        barChart(document.getElementById("chart-footfall-day"), data.footfall_day, ["day", "date"], ["visits", "count"]);
        barChart(document.getElementById("chart-footfall-hour"), data.footfall_hour, ["hour"], ["visits", "count"]);
        barChart(document.getElementById("chart-dwell"), data.dwell, ["zone"], ["median_s", "mean_s"]);
        table(document.getElementById("table-rules"), data.rules, RULE_COLUMNS);
        table(document.getElementById("table-codes"), data.codes);
        status.textContent = word("period", { since: data.since, until: data.until }, "Period {since} – {until}.");
        body.dataset.kpis = "ready";
      })
      .catch((e) => { status.textContent = word("kpis_failed", { error: e }, "The KPIs cannot be read: {error}"); status.className = "error"; });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = body.dataset.page;
    if (page === "map" || page === "rules") startLive();
    if (page === "kpis") startKpis();
  });
})();
