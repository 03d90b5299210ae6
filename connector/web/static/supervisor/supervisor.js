// Supervisor console: call log with filters, recordings player, per-agent statistics,
// missed calls not yet called back, CSV export and two small SVG charts. No build step, no
// network beyond this connector.
"use strict";

const PAGE = 50;
const SVG_NS = "http://www.w3.org/2000/svg";
const state = { offset: 0, total: 0, me: null, canStats: false };

const $ = (sel) => document.querySelector(sel);

function showNotice(text) {
  const box = $("#notice");
  box.textContent = text;
  box.hidden = !text;
}

async function api(path) {
  const res = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (res.status === 401) {
    location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new Error("not signed in");
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    throw new Error((body.error && body.error.message) || `HTTP ${res.status}`);
  }
  return body;
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString([], { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function fmtSeconds(s) {
  if (s === null || s === undefined) return "";
  const n = Math.round(Number(s));
  return n >= 60 ? `${Math.floor(n / 60)}:${String(n % 60).padStart(2, "0")}` : `${n} s`;
}

const OUTCOME_TEXT = {
  answered: "answered",
  no_answer: "no answer",
  busy: "busy",
  abandoned: "abandoned",
  failed: "failed",
};

// ------------------------------------------------------------------------------ filters

function localDayStart(value, plusDays) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d + plusDays).toISOString();
}

function filterParams() {
  const form = $("#filters");
  const params = new URLSearchParams();
  const data = new FormData(form);
  for (const [key, raw] of data.entries()) {
    const value = String(raw).trim();
    if (!value) continue;
    if (key === "from") params.set("from", localDayStart(value, 0));
    else if (key === "to") params.set("to", localDayStart(value, 1));
    else params.set(key, value);
  }
  return params;
}

// ------------------------------------------------------------------------------ call log

function playRecording(call) {
  const player = $("#player");
  $("#player-label").textContent =
    `${fmtTime(call.started_at)} · ${call.caller || "hidden"} → ${call.callee || ""} · ` +
    `${OUTCOME_TEXT[call.outcome] || call.outcome}`;
  delete player.dataset.ready;
  player.src = call.recording_url;
  player.load();
  player.play().catch(() => {
    /* autoplay may be refused; the controls are there */
  });
}

function renderLog(body) {
  const tbody = $("#log tbody");
  tbody.replaceChildren();
  for (const c of body.items) {
    const tr = el("tr");
    tr.dataset.id = c.id;
    tr.append(
      el("td", fmtTime(c.started_at)),
      el("td", c.direction),
      el("td", c.caller_name ? `${c.caller || "hidden"} (${c.caller_name})` : c.caller || "hidden"),
      el("td", c.callee),
      el("td", c.did || c.queue || ""),
      el("td", (c.agents || []).join(", ")),
      el("td", c.answered_by ? `${c.answered_by_name || ""} ${c.answered_by}`.trim() : ""),
      el("td", OUTCOME_TEXT[c.outcome] || c.outcome, `outcome ${c.outcome}`),
      el("td", fmtSeconds(c.ring_seconds)),
      el("td", fmtSeconds(c.talk_seconds)),
    );
    const rec = el("td");
    if (c.recording_url) {
      const btn = el("button", `▶ ${fmtSeconds(c.recording_seconds)}`, "play ghost");
      btn.type = "button";
      btn.title = "Play the recording";
      btn.addEventListener("click", () => playRecording(c));
      rec.append(btn);
    }
    tr.append(rec);
    tbody.append(tr);
  }
  if (!body.items.length) {
    const tr = el("tr");
    const td = el("td", "No calls match these filters.", "muted");
    td.colSpan = 11;
    tr.append(td);
    tbody.append(tr);
  }
  state.total = body.total;
  const last = Math.min(state.offset + body.items.length, body.total);
  $("#log-count").textContent = body.total ? `${state.offset + 1}–${last} of ${body.total}` : "";
  $("#prev").disabled = state.offset === 0;
  $("#next").disabled = last >= body.total;
}

async function loadLog() {
  const params = filterParams();
  params.set("limit", String(PAGE));
  params.set("offset", String(state.offset));
  renderLog(await api("/api/v1/calllog?" + params));
}

// ------------------------------------------------------------------------------ statistics

function renderStats(body) {
  const tbody = $("#stats tbody");
  tbody.replaceChildren();
  for (const a of body.agents) {
    const tr = el("tr");
    tr.append(
      el("td", a.name),
      el("td", a.calls_in),
      el("td", a.calls_out),
      el("td", a.answered),
      el("td", a.missed, a.missed ? "bad" : ""),
      el("td", a.abandoned),
      el("td", fmtSeconds(a.avg_ring_seconds)),
      el("td", fmtSeconds(a.avg_talk_seconds)),
      el("td", a.callbacks_pending, a.callbacks_pending ? "warn" : ""),
      el("td", a.callbacks_done),
    );
    tbody.append(tr);
  }
  drawHourly(body.hourly);
  drawRatio(body.totals);
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function drawHourly(hours) {
  const chart = $("#chart-hourly");
  chart.replaceChildren();
  const W = 480, H = 180, left = 24, bottom = 20, top = 8;
  const max = Math.max(1, ...hours.map((h) => h.answered + h.missed + h.outbound));
  const slot = (W - left) / 24;
  const scale = (H - bottom - top) / max;
  chart.append(svg("line", { x1: left, y1: H - bottom, x2: W, y2: H - bottom, class: "axis" }));
  chart.append(svg("text", { x: 2, y: top + 8, class: "tick" }, max));
  for (const h of hours) {
    let y = H - bottom;
    const x = left + h.hour * slot + 2;
    for (const [key, cls] of [["answered", "answered"], ["missed", "missed"], ["outbound", "outbound"]]) {
      const n = h[key];
      if (!n) continue;
      const height = n * scale;
      y -= height;
      const bar = svg("rect", { x, y, width: slot - 4, height, class: `bar ${cls}` });
      bar.append(svg("title", {}, `${String(h.hour).padStart(2, "0")}:00 ${key}: ${n}`));
      chart.append(bar);
    }
    if (h.hour % 3 === 0) {
      chart.append(svg("text", { x: x, y: H - 6, class: "tick" }, String(h.hour).padStart(2, "0")));
    }
  }
}

function drawRatio(totals) {
  const chart = $("#chart-ratio");
  chart.replaceChildren();
  const answered = totals.answered || 0;
  const missed = totals.missed || 0;
  const all = answered + missed;
  const W = 440, x0 = 20, y0 = 60, h = 40;
  if (!all) {
    chart.append(svg("text", { x: x0, y: y0 + 25, class: "tick" }, "No inbound calls in this period"));
  } else {
    const wa = (answered / all) * W;
    chart.append(svg("rect", { x: x0, y: y0, width: wa, height: h, class: "bar answered" }));
    chart.append(svg("rect", { x: x0 + wa, y: y0, width: W - wa, height: h, class: "bar missed" }));
    const pct = Math.round((answered / all) * 100);
    chart.append(svg("text", { x: x0, y: y0 - 10, class: "label" }, `${answered} answered (${pct}%)`));
    chart.append(svg("text", { x: x0 + W, y: y0 + h + 22, class: "label end" }, `${missed} missed (${100 - pct}%)`));
  }
  $("#totals").textContent =
    `${totals.calls} calls: ${totals.inbound} inbound, ${totals.outbound} outbound.`;
}

async function loadStats() {
  if (!state.canStats) return;
  const params = filterParams();
  params.set("tz_offset", String(new Date().getTimezoneOffset()));
  renderStats(await api("/api/v1/calllog/stats?" + params));
}

// ------------------------------------------------------------------------------ missed calls

async function loadMissed() {
  const body = await api("/api/v1/calllog/missed");
  const tbody = $("#missed tbody");
  tbody.replaceChildren();
  const now = Date.now();
  for (const m of body.items) {
    const tr = el("tr");
    const overdue = m.due_at && new Date(m.due_at).getTime() < now;
    tr.append(
      el("td", m.number),
      el("td", fmtTime(m.missed_at)),
      el("td", m.attempts),
      el("td", m.did || ""),
      el("td", m.assignee_name || "unassigned", m.assignee_name ? "" : "bad"),
      el("td", fmtTime(m.due_at), overdue ? "bad" : ""),
    );
    tbody.append(tr);
  }
  if (!body.items.length) {
    const tr = el("tr");
    const td = el("td", "Every missed call has been called back.", "muted");
    td.colSpan = 6;
    tr.append(td);
    tbody.append(tr);
  }
}

// ------------------------------------------------------------------------------ wiring

async function refresh() {
  $("#export").href = "/api/v1/calllog.csv?" + filterParams();
  try {
    showNotice("");
    await Promise.all([loadLog(), loadStats(), loadMissed()]);
    document.body.dataset.loaded = "true";
  } catch (err) {
    showNotice(`Could not load: ${err.message}`);
  }
}

async function loadPeople() {
  const team = state.me.role === "admin" ? "" : state.me.team;
  const params = new URLSearchParams({ limit: "500", active: "true" });
  if (team) params.set("team", team);
  const body = await api("/api/v1/users?" + params);
  const agents = $("#filters select[name=agent]");
  const teams = $("#filters select[name=team]");
  const seen = new Set();
  for (const u of body.items) {
    if (u.role === "admin") continue;
    const opt = el("option", `${u.name} (${u.login})`);
    opt.value = u.id;
    agents.append(opt);
    if (u.team && !seen.has(u.team)) {
      seen.add(u.team);
      const t = el("option", u.team);
      t.value = u.team;
      teams.append(t);
    }
  }
}

function watchPlayer() {
  const player = $("#player");
  player.addEventListener("loadedmetadata", () => {
    player.dataset.ready = "true";
    player.dataset.duration = String(player.duration);
    $("#player-label").append(` · ${fmtSeconds(player.duration)}`);
  });
  player.addEventListener("error", () => {
    const code = player.error ? player.error.code : "?";
    showNotice(`The recording cannot be played (media error ${code}).`);
  });
}

async function main() {
  watchPlayer();
  try {
    state.me = await api("/api/v1/me");
  } catch (err) {
    showNotice(`Could not sign in: ${err.message}`);
    return;
  }
  $("#me").textContent = `${state.me.name} · ${state.me.role}${state.me.team ? " · " + state.me.team : ""}`;
  state.canStats = state.me.role === "supervisor" || state.me.role === "admin";
  if (!state.canStats) {
    showNotice("This console is for supervisors and admins; you see only your own calls.");
    for (const id of ["#stats-title", "#hourly-title", "#ratio-title"]) {
      $(id).closest("section").hidden = true;
    }
  }
  await loadPeople().catch((err) => showNotice(`Could not load users: ${err.message}`));
  $("#filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.offset = 0;
    refresh();
  });
  $("#filters").addEventListener("reset", () => {
    setTimeout(() => {
      state.offset = 0;
      refresh();
    }, 0);
  });
  $("#prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE);
    loadLog().catch((err) => showNotice(err.message));
  });
  $("#next").addEventListener("click", () => {
    state.offset += PAGE;
    loadLog().catch((err) => showNotice(err.message));
  });
  await refresh();
}

main();
