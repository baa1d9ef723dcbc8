"use strict";
(function () {
  // All text goes through textContent: model output is never parsed as HTML.
  const DATA = JSON.parse(document.getElementById("torl-data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const PAGE = 50;
  const MULTI = new Set(DATA.trajectories.map(t => t.source)).size > 1;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v; else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmt(x) {
    if (x === null || x === undefined || !isFinite(x)) return "-";
    const a = Math.abs(x);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return x.toExponential(2);
    return Number.isInteger(x) ? String(x) : String(+x.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 3));
  }

  // ---------- charts ----------
  function niceTicks(lo, hi, n) {
    if (lo === hi) { lo -= 1; hi += 1; }
    const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }
  const COLORS = ["#2f6fdb", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#5c940d"];
  function drawChart(title, lines) {
    const W = 400, H = 220, L = 48, R = 12, T = 10, B = 28;
    const box = el("div", { class: "chart" }, el("h3", {}, title));
    const legend = el("div", { class: "sub" });
    lines.forEach((ln, i) => {
      legend.appendChild(el("span", { class: "key", style: `color: ${COLORS[i % COLORS.length]}` }, "\u25cf "));
      legend.appendChild(document.createTextNode(ln.label + (i + 1 < lines.length ? "   " : "")));
    });
    box.appendChild(legend);
    const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
    const all = lines.flatMap(ln => ln.points);
    const xs = all.map(p => p[0]), ys = all.map(p => p[1]);
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
    const X = x => L + (x - x0) / (x1 - x0) * (W - L - R), Y = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
    for (const t of niceTicks(y0, y1, 4)) {
      if (t < y0 || t > y1) continue;
      s.appendChild(svg("line", { class: "grid", x1: L, x2: W - R, y1: Y(t), y2: Y(t) }));
      s.appendChild(svg("text", { class: "tick", x: L - 4, y: Y(t) + 3, "text-anchor": "end" }, fmt(t)));
    }
    for (const t of niceTicks(x0, x1, 5)) {
      if (t < x0 || t > x1) continue;
      s.appendChild(svg("text", { class: "tick", x: X(t), y: H - B + 14, "text-anchor": "middle" }, fmt(t)));
    }
    s.appendChild(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
    s.appendChild(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    s.appendChild(svg("text", { class: "tick", x: W - R, y: H - 2, "text-anchor": "end" }, "step"));
    lines.forEach((ln, i) => {
      const color = COLORS[i % COLORS.length];
      s.appendChild(svg("polyline", { class: "line", stroke: color,
        points: ln.points.map(p => `${X(p[0])},${Y(p[1])}`).join(" ") }));
      if (ln.points.length > 60) return;
      for (const p of ln.points) {
        const d = svg("circle", { class: "dot", fill: color, cx: X(p[0]), cy: Y(p[1]), r: 2.5 });
        d.appendChild(svg("title", {}, `${ln.label}, step ${fmt(p[0])}: ${fmt(p[1])}`));
        s.appendChild(d);
      }
    });
    box.appendChild(s);
    return box;
  }
  function pct(x) { return x === null || x === undefined ? "n/a" : `${(100 * x).toFixed(1)}%`; }
  function drawBars(title, groups, bars) {
    const names = Object.keys(bars);
    const W = 400, H = 220, L = 40, R = 8, T = 16, B = 30;
    const box = el("div", { class: "chart bars" }, el("h3", {}, title));
    const legend = el("div", { class: "sub" });
    names.forEach((n, i) => {
      legend.appendChild(el("span", { class: "key", style: `color: ${COLORS[i % COLORS.length]}` }, "\u25a0 "));
      legend.appendChild(document.createTextNode(n + (i + 1 < names.length ? "   " : "")));
    });
    box.appendChild(legend);
    const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
    const Y = v => H - B - v * (H - T - B);
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      s.appendChild(svg("line", { class: "grid", x1: L, x2: W - R, y1: Y(t), y2: Y(t) }));
      s.appendChild(svg("text", { class: "tick", x: L - 4, y: Y(t) + 3, "text-anchor": "end" }, `${100 * t}%`));
    }
    const gw = (W - L - R) / groups.length, bw = Math.min(36, (gw - 12) / names.length);
    groups.forEach((g, gi) => {
      const x0 = L + gi * gw + (gw - bw * names.length) / 2;
      s.appendChild(svg("text", { class: "tick group", x: L + gi * gw + gw / 2, y: H - B + 16, "text-anchor": "middle" }, g));
      names.forEach((n, i) => {
        const v = bars[n][gi], x = x0 + i * bw;
        if (v === null || v === undefined) {
          s.appendChild(svg("text", { class: "tick na", x: x + bw / 2, y: Y(0) - 4, "text-anchor": "middle" }, "n/a"));
          return;
        }
        const r = svg("rect", { class: "bar", x: x + 1, width: bw - 2, y: Y(v), height: Math.max(Y(0) - Y(v), 0.5),
          fill: COLORS[i % COLORS.length], "data-source": n, "data-group": g, "data-value": v });
        r.appendChild(svg("title", {}, `${n}, ${g}: ${pct(v)}`));
        s.appendChild(r);
        s.appendChild(svg("text", { class: "tick value", x: x + bw / 2, y: Y(v) - 3, "text-anchor": "middle" }, pct(v).replace(".0%", "%")));
      });
    });
    s.appendChild(svg("line", { class: "axis", x1: L, x2: W - R, y1: Y(0), y2: Y(0) }));
    box.appendChild(s);
    return box;
  }
  function renderCompare() {
    const charts = DATA.compare || [];
    if (!charts.length) return;
    document.getElementById("compare-section").hidden = false;
    const host = document.getElementById("compare");
    for (const c of charts) host.appendChild(drawBars(c.title, c.groups, c.bars));
  }
  function renderCharts() {
    const charts = DATA.charts || [], metrics = DATA.metrics || {};
    const keys = Object.keys(metrics).filter(k => metrics[k].length > 0).sort();
    if (!charts.length && !keys.length) return;
    document.getElementById("charts-section").hidden = false;
    const host = document.getElementById("charts");
    for (const c of charts) host.appendChild(drawChart(c.title, c.lines));
    if (keys.length) {
      document.getElementById("more-metrics").hidden = false;
      const sel = document.getElementById("metric-select"), out = document.getElementById("metric-chart");
      for (const k of keys) sel.appendChild(el("option", { value: k }, k));
      if (DATA.metric_default && keys.includes(DATA.metric_default)) sel.value = DATA.metric_default;
      const show = () => { out.replaceChildren(drawChart(sel.value, [{ label: "logged", points: metrics[sel.value] }])); };
      sel.addEventListener("change", show);
      show();
    }
  }

  // ---------- trajectories ----------
  const KW = new Set(("False None True and as assert async await break class continue def del elif else except " +
    "finally for from global if import in is lambda nonlocal not or pass raise return try while with yield").split(" "));
  const BI = new Set(("print range len int float str list dict set tuple sum min max abs round sorted enumerate zip " +
    "map filter pow divmod isinstance type open any all").split(" "));
  const PYTOK = /(#[^\n]*)|("""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|[rbfuRBFU]{0,2}"(?:\\.|[^"\\\n])*"?|[rbfuRBFU]{0,2}'(?:\\.|[^'\\\n])*'?)|(\b\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?j?\b)|([A-Za-z_]\w*)/g;
  function highlight(code) {
    const frag = document.createDocumentFragment();
    let last = 0, m;
    PYTOK.lastIndex = 0;
    while ((m = PYTOK.exec(code)) !== null) {
      if (m[0] === "") { PYTOK.lastIndex++; continue; }
      let cls = null;
      if (m[1]) cls = "com"; else if (m[2]) cls = "str"; else if (m[3]) cls = "num";
      else if (KW.has(m[4])) cls = "kw"; else if (BI.has(m[4])) cls = "bi";
      if (!cls) continue;
      if (m.index > last) frag.appendChild(document.createTextNode(code.slice(last, m.index)));
      frag.appendChild(el("span", { class: cls }, m[0]));
      last = m.index + m[0].length;
    }
    if (last < code.length) frag.appendChild(document.createTextNode(code.slice(last)));
    return frag;
  }
  const CODE = /```python[ \t]*\n?([\s\S]*?)(?:```|$)|<code>\n?([\s\S]*?)(?:<\/code>|$)/g;
  function renderModelText(text, beforeTool, into) {
    if (beforeTool) text = text.replace(/(```output|<interpreter>)\s*$/, "");
    let last = 0, m;
    CODE.lastIndex = 0;
    while ((m = CODE.exec(text)) !== null) {
      if (m[0] === "") { CODE.lastIndex++; continue; }
      const before = text.slice(last, m.index);
      if (before.trim()) into.appendChild(el("pre", { class: "text" }, before.replace(/^\n+|\s+$/g, "")));
      const code = (m[1] !== undefined ? m[1] : m[2]).replace(/\s+$/, "");
      const pre = el("pre", { class: "cell", "data-label": "python" });
      pre.appendChild(highlight(code));
      into.appendChild(pre);
      last = m.index + m[0].length;
    }
    const rest = text.slice(last);
    if (rest.trim()) into.appendChild(el("pre", { class: "text" }, rest.replace(/^\n+|\s+$/g, "")));
  }
  function renderToolText(part, into) {
    const text = part.text.replace(/^\s*(```output|<interpreter>)?[ \t]*\n?/, "").replace(/\n?(```|<\/interpreter>)\s*$/, "");
    const failed = part.status && part.status !== "ok";
    let label = "output";
    if (failed) label += ` \u2014 ${part.status}${part.error ? ": " + part.error : ""}`;
    if (part.truncated) label += " \u2014 truncated";
    const cls = "output" + (failed ? " failed" : "") + (part.truncated ? " truncated" : "");
    into.appendChild(el("pre", { class: cls, "data-label": label }, text));
  }
  function renderBody(t, body) {
    const prompt = el("details", {}, el("summary", {}, "Prompt"), el("pre", { class: "prompt" }, t.prompt));
    body.appendChild(prompt);
    const versioned = versionRange(t) !== null;
    t.parts.forEach((p, i) => {
      if (p.kind === "tool") renderToolText(p, body);
      else {
        const label = p.version === undefined ? "policy ?" : `policy v${p.version}`;
        if (versioned) body.appendChild(el("div", { class: "version" }, label));
        renderModelText(p.text, i + 1 < t.parts.length && t.parts[i + 1].kind === "tool", body);
      }
    });
    if (!t.parts.length) body.appendChild(el("div", { class: "empty" }, "(empty completion)"));
    if (t.error) body.appendChild(el("pre", { class: "output failed", "data-label": "rollout error" }, t.error));
    renderCounterfactual(t, body);
  }
  const PROV = [["boxed_by_code", "\\boxed from code"], ["hardcoded", "hard-coded answer"],
    ["repeated_cells", "repeated cells"], ["echo_calls", "echoes the question"]];
  function provBadges(t) {
    if (!t.prov) return [];
    const out = PROV.filter(([k]) => t.prov[k]).map(([, label]) => el("span", { class: "badge flag" }, label));
    if (t.prov.copied) out.unshift(el("span", { class: "meta" }, "answer copied from tool output"));
    return out;
  }
  function renderCounterfactual(t, body) {
    if (!t.cf || !t.cf.length) return;
    const table = el("table", { class: "cf" }, el("tr", {}, ...["call", "tool output replaced by", "answer", "verdict", "changed"].map(h => el("th", {}, h))));
    const what = { disabled: "tool disabled", error: "an error", swap: "another problem's output", replay: "the same output (control)" };
    for (const r of t.cf) {
      table.appendChild(el("tr", { class: r.changed ? "changed" : "" },
        el("td", {}, String(r.call + 1)), el("td", {}, what[r.kind] || r.kind),
        el("td", {}, r.pred === null || r.pred === undefined ? "\u2014" : String(r.pred)),
        el("td", {}, r.correct === true ? "correct" : r.correct === false ? "wrong" : "-"),
        el("td", {}, r.changed ? "yes" : "no")));
    }
    body.appendChild(el("details", { class: "cf-box", open: true }, el("summary", {}, "Counterfactual runs (re-generated from each call)"), table));
  }
  // The policy versions that wrote the model turns (asynchronous training); null when none was recorded.
  function versionRange(t) {
    const vs = t.parts.filter(p => p.kind === "model" && typeof p.version === "number").map(p => p.version);
    return vs.length ? [Math.min(...vs), Math.max(...vs)] : null;
  }
  function verdict(t) {
    if (t.pred === null || t.pred === undefined) return "noanswer";
    if (t.correct === true) return "correct";
    if (t.correct === false) return "wrong";
    return "unknown";
  }
  function versionBadge(t) {
    const r = versionRange(t);
    if (r === null) return null;
    return el("span", { class: "meta version-range" }, r[0] === r[1] ? `policy v${r[0]}` : `policy v${r[0]}\u2013v${r[1]}`);
  }
  function card(t, open) {
    const v = verdict(t);
    const label = { correct: "\u2713 correct", wrong: "\u2717 wrong", noanswer: "no answer", unknown: "not scored" }[v];
    const head = el("summary", {},
      el("span", { class: "badge " + v }, label),
      MULTI ? el("span", { class: "badge" }, t.source) : null,
      el("strong", {}, `${t.benchmark}${t.problem_id !== "" ? " / " + t.problem_id : ""}`),
      t.sample !== null && t.sample !== undefined ? el("span", { class: "meta" }, `sample ${t.sample}`) : null,
      t.step !== null && t.step !== undefined ? el("span", { class: "meta" }, `step ${t.step}`) : null,
      versionBadge(t),
      el("span", { class: "answer" }, `answer: ${t.pred === null || t.pred === undefined ? "\u2014" : t.pred}` +
        (t.answer !== null && t.answer !== undefined ? `  (ref: ${t.answer})` : "")),
      t.rule ? el("span", { class: "meta", title: "the answer rule that decided the verdict" }, `by ${t.rule}`) : null,
      t.reward !== null && t.reward !== undefined ? el("span", { class: "meta" }, `reward ${fmt(t.reward)}`) : null,
      el("span", { class: "meta" }, `${t.calls} cell${t.calls === 1 ? "" : "s"} \u00b7 ${t.tokens} tokens \u00b7 ${t.finish}`),
      t.failed ? el("span", { class: "badge error" }, `${t.failed} code error${t.failed === 1 ? "" : "s"}`) : null,
      t.truncated ? el("span", { class: "badge trunc" }, "output truncated") : null,
      t.finish === "length" ? el("span", { class: "badge trunc" }, "hit token limit") : null,
      t.error ? el("span", { class: "badge error" }, "rollout error") : null,
      t.relies === true ? el("span", { class: "badge rely" }, "relies on the tool") : null,
      t.relies === false ? el("span", { class: "badge" }, "same answer without the tool") : null,
      t.cached ? el("span", { class: "meta" }, `${t.cached} from the tool log`) : null,
      ...provBadges(t));
    const d = el("details", { class: "traj", "data-verdict": v, "data-benchmark": t.benchmark }, head);
    const body = el("div", { class: "body" });
    d.appendChild(body);
    let done = false;
    const fill = () => { if (d.open && !done) { done = true; renderBody(t, body); } };
    d.addEventListener("toggle", fill);
    if (open) { d.open = true; fill(); }
    return d;
  }

  const state = { shown: 0, rows: [] };
  const blobs = new Map();
  function blob(t) {
    if (!blobs.has(t.i)) blobs.set(t.i, (t.prompt + "\n" + t.parts.map(p => p.text).join("\n")).toLowerCase());
    return blobs.get(t.i);
  }
  function provMatch(t, f) {
    const p = t.prov;
    if (!p) return false;
    if (f === "copied") return p.copied;
    if (f === "derived") return !p.copied && t.pred !== null && t.pred !== undefined;
    if (f === "boxed_by_code" || f === "hardcoded") return p[f];
    if (f === "repeated") return p.repeated_cells > 0;
    if (f === "echo") return p.echo_calls > 0;
    if (f === "suspicious") return p.boxed_by_code || p.hardcoded || p.repeated_cells > 0 || p.echo_calls > 0;
    return true;
  }
  function applyFilters() {
    const b = document.getElementById("f-benchmark").value, c = document.getElementById("f-correct").value;
    const src = document.getElementById("f-source").value;
    const tool = document.getElementById("f-tool").value;
    const prov = document.getElementById("f-prov").value, rely = document.getElementById("f-rely").value;
    const q = document.getElementById("f-search").value.trim().toLowerCase();
    state.rows = DATA.trajectories.filter(t =>
      (!src || t.source === src) && (!b || t.benchmark === b) &&
      (!c || verdict(t) === c) &&
      (!tool || (tool === "used" && t.calls > 0) || (tool === "none" && t.calls === 0) ||
        (tool === "error" && t.failed > 0) || (tool === "truncated" && t.truncated > 0) ||
        (tool === "cached" && t.cached > 0)) &&
      (!prov || provMatch(t, prov)) &&
      (!rely || (rely === "relies" && t.relies === true) || (rely === "independent" && t.relies === false) ||
        (rely === "follows" && t.follows === true) || (rely === "untested" && (t.relies === null || t.relies === undefined))) &&
      (!q || blob(t).includes(q)));
    state.shown = 0;
    document.getElementById("list").replaceChildren();
    showMore();
  }
  function showMore() {
    const list = document.getElementById("list"), next = state.rows.slice(state.shown, state.shown + PAGE);
    next.forEach((t, j) => list.appendChild(card(t, state.shown === 0 && j === 0)));
    state.shown += next.length;
    if (!state.rows.length) list.appendChild(el("div", { class: "empty" }, "No trajectory matches the filters."));
    document.getElementById("count").textContent =
      `${state.rows.length} of ${DATA.trajectories.length} shown` + (state.rows.length > state.shown ? ` (first ${state.shown})` : "");
    document.getElementById("more").hidden = state.shown >= state.rows.length;
  }
  function renderSummary() {
    const host = document.getElementById("summary"), sources = DATA.sources || {};
    const names = Object.keys(sources);
    const line = (name, s) => {
      const parts = [`${s.n} trajectories`];
      if (s.accuracy !== null) parts.push(`accuracy ${pct(s.accuracy)}`);
      if (s.tool_use !== null) parts.push(`used the tool ${pct(s.tool_use)}`);
      if (s.cells !== null) parts.push(`${s.cells.toFixed(2)} cells per trajectory`);
      if (s.code_error_rate !== null) parts.push(`code error rate ${pct(s.code_error_rate)}`);
      if (s.reliance !== null) parts.push(`relies on the tool ${pct(s.reliance)} (of ${s.reliance_n} tested)`);
      return el("div", { class: "source-line", "data-source": name }, names.length > 1 ? el("strong", {}, name + ": ") : null, parts.join(" \u00b7 "));
    };
    host.replaceChildren(...names.map(n => line(n, sources[n].all)));
    const shown = DATA.trajectories.length;
    if (DATA.total > shown) host.appendChild(el("div", {}, `(the list below shows ${shown} of ${DATA.total}, evenly sampled)`));
  }
  function renderTrajectories() {
    if (!DATA.trajectories.length) return;
    document.getElementById("traj-section").hidden = false;
    const sel = document.getElementById("f-benchmark");
    for (const b of [...new Set(DATA.trajectories.map(t => t.benchmark))].sort()) sel.appendChild(el("option", { value: b }, b));
    const sources = [...new Set(DATA.trajectories.map(t => t.source))].sort();
    if (sources.length > 1) {
      document.getElementById("f-source-label").hidden = false;
      const ss = document.getElementById("f-source");
      for (const s of sources) ss.appendChild(el("option", { value: s }, s));
    }
    for (const id of ["f-source", "f-benchmark", "f-correct", "f-tool", "f-prov", "f-rely"]) document.getElementById(id).addEventListener("change", applyFilters);
    document.getElementById("f-search").addEventListener("input", applyFilters);
    document.getElementById("more").addEventListener("click", showMore);
    applyFilters();
  }
  renderSummary();
  renderCompare();
  renderCharts();
  renderTrajectories();
})();
