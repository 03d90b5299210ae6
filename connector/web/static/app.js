// Agent console: live caller cards over the hub websocket, call history, contacts, tasks.
// Plain modern JavaScript, no build step. Data is put in the page with textContent only.
"use strict";

// ------------------------------------------------------------------ small helpers

const $ = (sel, root = document) => root.querySelector(sel);

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function toast(text, kind = "") {
  const el = h("div", { class: `toast ${kind}`, role: "status" }, text);
  $("#toasts").appendChild(el);
  setTimeout(() => el.remove(), 4500);
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit",
});

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const today = new Date();
  return d.toDateString() === today.toDateString() ? timeFmt.format(d) : dateTimeFmt.format(d);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

const OUTCOMES = {
  answered: "Answered", no_answer: "No answer", busy: "Busy", abandoned: "Abandoned", failed: "Failed",
};

// ------------------------------------------------------------------ REST

class AuthError extends Error {}

async function api(path, { method = "GET", body, headers = {} } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) {
    goLogin();
    throw new AuthError("signed out");
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const msg = (data.error && data.error.message) || `HTTP ${res.status}`;
    throw new Error(msg);
  }
  return data;
}

function goLogin() {
  const next = location.pathname + location.search;
  location.assign(`/login${next && next !== "/" ? `?next=${encodeURIComponent(next)}` : ""}`);
}

// ------------------------------------------------------------------ click-to-call

function phoneLink(number, label, contactId) {
  if (!number) return h("span", { class: "muted" }, "—");
  return h(
    "span",
    { class: "phone" },
    h("span", { class: "phone-number" }, label || number),
    h("button", {
      class: "call-btn",
      type: "button",
      title: `Call ${number}`,
      dataset: { number },
      onclick: (ev) => { ev.stopPropagation(); clickToCall(number, ev.currentTarget, contactId); },
    }, "Call"),
  );
}

async function clickToCall(number, button, contactId) {
  const key = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
  if (button) button.disabled = true;
  try {
    const res = await api("/api/v1/calls", {
      method: "POST",
      body: contactId ? { to: number, contact_id: contactId } : { to: number },
      headers: { "Idempotency-Key": key },
    });
    toast(`Calling ${number}: your phone rings first, then the customer's`, "ok");
    debugLog(`click-to-call ${res && res.call_id} ${res && res.status}`);
  } catch (err) {
    if (!(err instanceof AuthError)) toast(`Could not call ${number}: ${err.message}`, "bad");
  } finally {
    if (button) setTimeout(() => { button.disabled = false; }, 1500);
  }
}

// ------------------------------------------------------------------ state

const state = {
  me: null,
  hub: null,
  scope: localStorage.getItem("vc_scope") || "own",
  calls: new Map(), // conversation -> call (from the hub)
  epoch: null,
  lastSeq: null,
  messages: 0,
  reconnects: 0,
  online: false,
  view: "live",
};

// ------------------------------------------------------------------ caller cards

function cardTitle(call) {
  const card = call.card;
  if (card && card.primary) return card.primary.name;
  if (call.number && call.number.hidden) return "Hidden number";
  if (call.number && call.number.name) return call.number.name;
  return "Unknown caller";
}

function stateText(call) {
  switch (call.state) {
    case "ringing":
      return call.direction === "outbound" ? "Calling…" : "Ringing";
    case "talking":
      return call.answeredBy ? `In call · ${call.answeredBy}` : "In call";
    case "closed":
      return call.closedText || "Closed";
    case "ended":
      return call.endedText || "Ended";
    default:
      return call.state;
  }
}

function renderCard(call) {
  const card = call.card;
  const num = call.number || {};
  const head = h(
    "div",
    { class: "card-head" },
    h(
      "div",
      { class: "line1" },
      call.state === "ringing" ? h("span", { class: "ring-dot", "aria-hidden": "true" }) : null,
      h("span", { class: "contact-name" }, cardTitle(call)),
      h("span", { class: "call-state" }, stateText(call)),
    ),
    h(
      "div",
      { class: "number muted" },
      num.hidden ? "Caller ID withheld" : phoneLink(num.e164 || num.raw, num.display || num.raw),
      num.raw && num.e164 && num.raw !== num.e164 ? h("span", { class: "small" }, `  dialed as ${num.raw}`) : null,
    ),
    call.agentText ? h("div", { class: "small muted" }, call.agentText) : null,
  );
  const body = h("div", { class: "card-body" });
  if (call.cardPending && !card) {
    body.append(
      h("div", { class: "muted small" }, "Looking up the caller…"),
      h("div", { class: "skeleton" }),
      h("div", { class: "skeleton" }),
    );
  } else if (card) {
    if (card.error) body.append(h("div", { class: "error-box" }, card.error));
    if (card.status === "hidden") body.append(h("div", { class: "muted" }, "The caller withheld their number: there is nothing to look up."));
    const primary = card.primary;
    if (primary) {
      const facts = h("dl", { class: "facts" });
      if (card.company) facts.append(h("dt", {}, "Company"), h("dd", { class: "company-name" }, card.company.name));
      else if (primary.kind === "company") facts.append(h("dt", {}, "Type"), h("dd", {}, "Company"));
      facts.append(
        h("dt", {}, "Manager"),
        h("dd", { class: "responsible" }, card.responsible ? card.responsible.name : "not assigned"),
      );
      body.append(facts);
    }
    if (card.tags && card.tags.length) {
      body.append(h("div", { class: "tags" }, card.tags.map((t) => h("span", { class: `tag ${t.toLowerCase() === "vip" ? "vip" : ""}` }, t))));
    }
    const possible = card.status === "possible";
    if (card.matches && (card.matches.length > 1 || possible)) {
      body.append(h(
        "div",
        { class: "section matches" },
        h("h3", {}, possible ? "Possible matches (same last digits)" : `${card.matches.length} matches, best first`),
        h("ul", {}, card.matches.map((m) => h(
          "li",
          {},
          h("strong", {}, m.name),
          h("span", { class: "muted small" }, `${m.kind}${m.company_name ? ` · ${m.company_name}` : ""} · ${m.match_type} match`),
        ))),
      ));
    }
    if (card.create_contact) {
      body.append(h(
        "div",
        { class: "unknown-box" },
        h("span", {}, "This number is not in the CRM yet."),
        h("button", {
          class: "primary create-contact",
          type: "button",
          onclick: () => {
            call.popHidden = true; // the agent is on it: the pop-up must not cover the form
            openNewContact({ phones: [{ raw: card.create_contact.phone }], name: (call.number && call.number.name) || "" });
          },
        }, "Create contact"),
      ));
    }
    if (card.recent_calls && card.recent_calls.length) {
      body.append(h(
        "div",
        { class: "section recent-calls" },
        h("h3", {}, "Last calls"),
        h("ul", {}, card.recent_calls.map((c) => h(
          "li",
          {},
          h("span", { class: "when" }, when(c.started_at)),
          h("span", { class: "outcome", dataset: { outcome: c.outcome || "" } }, OUTCOMES[c.outcome] || c.outcome || ""),
          h("span", { class: "muted small" }, `${c.direction || ""}${c.agent ? ` · ${c.agent}` : ""}${c.talk_seconds ? ` · ${duration(c.talk_seconds)}` : ""}`),
        ))),
      ));
    }
    if (card.notes && card.notes.length) {
      body.append(h(
        "div",
        { class: "section notes" },
        h("h3", {}, "Notes"),
        h("ul", {}, card.notes.map((n) => h("li", {}, h("span", { class: "when" }, when(n.at)), h("span", {}, n.body)))),
      ));
    }
    if (card.open_tasks && card.open_tasks.length) {
      body.append(h(
        "div",
        { class: "section open-tasks" },
        h("h3", {}, "Open tasks"),
        h("ul", {}, card.open_tasks.map((t) => h(
          "li",
          {},
          h("span", { class: "when" }, t.due_at ? when(t.due_at) : "no due date"),
          h("span", {}, t.title),
        ))),
      ));
    }
  }
  if (call.history && call.history.length > 1 && call.transferredIn) {
    body.append(h(
      "div",
      { class: "section history" },
      h("h3", {}, "This call so far"),
      h("ul", {}, call.history.map((e) => h("li", {}, h("span", { class: "when" }, when(e.at)), h("span", {}, historyText(e))))),
    ));
  }
  const foot = h("div", { class: "card-foot" });
  if (call.state === "ringing" && !card && !call.cardPending && call.number && call.number.hidden) {
    body.append(h("div", { class: "muted" }, "The caller withheld their number."));
  }
  if (card && card.primary && card.primary.kind === "contact") {
    foot.append(h("button", { type: "button", onclick: () => { call.popHidden = true; showView("contacts"); openContact(card.primary.id); } }, "Open contact"));
  }
  foot.append(h("span", { class: "spacer" }));
  if (call.state === "closed" || call.state === "ended") {
    foot.append(h("button", { class: "ghost dismiss", type: "button", onclick: () => dropCall(call.conversation) }, "Dismiss"));
  }
  return h(
    "article",
    { class: "call-card", dataset: { conversation: call.conversation, state: call.state } },
    head, body, foot,
  );
}

function historyText(e) {
  const who = (a) => (a ? a.name || a.extension || "" : "");
  switch (e.type) {
    case "call.ringing": return `rang ${who(e.agent)}`;
    case "call.answered": return `answered by ${who(e.agent)}`;
    case "call.claimed": return `taken by ${who(e.claimed_by)}`;
    case "call.transferred": return `transferred ${who(e.from)} → ${who(e.to)}`;
    case "call.ended": return `ended: ${OUTCOMES[e.outcome] || e.outcome}`;
    default: return e.type;
  }
}

function agentName(a) {
  if (!a) return "";
  return a.name ? `${a.name} (${a.extension})` : a.extension || "";
}

// Apply one hub message about a call to the local model.
function applyCall(msg) {
  const ev = msg.event || {};
  const key = msg.conversation;
  let call = state.calls.get(key);
  const mine = (a) => a && state.me && a.user_id === state.me.id;
  if (!call) {
    if (ev.type === "call.ended" || ev.type === "call.claimed") return null;
    call = {
      conversation: key, state: "ringing", number: msg.number, direction: msg.direction,
      card: null, cardPending: true, history: [], popped: false,
    };
    state.calls.set(key, call);
  }
  call.number = msg.number || call.number;
  call.history = msg.history || call.history;
  if ("card" in msg && msg.card) { call.card = msg.card; call.cardPending = false; }
  else if (msg.card_pending !== undefined && !call.card) call.cardPending = msg.card_pending;
  switch (ev.type) {
    case "call.ringing":
      if (call.state !== "talking") call.state = "ringing";
      if (state.scope === "own" || mine(msg.agent)) call.mine = true;
      if (state.scope !== "own") call.agentText = `Ringing ${agentName(msg.agent)}`;
      if (msg.queue) call.agentText = `Queue ${msg.queue}${call.agentText ? ` · ${call.agentText}` : ""}`;
      break;
    case "call.answered":
      if (mine(msg.agent) || state.scope !== "own") {
        call.state = "talking";
        call.answeredBy = mine(msg.agent) ? "" : agentName(msg.agent);
      } else {
        call.agentText = `Answered by ${agentName(msg.agent)}`;
      }
      break;
    case "call.claimed":
      if (state.scope === "own") {
        call.state = "closed";
        call.closedText = `Taken by ${agentName(msg.claimed_by) || "a colleague"}`;
      } else {
        call.agentText = `Taken by ${agentName(msg.claimed_by)}`;
      }
      break;
    case "call.transferred":
      if (mine(msg.to)) call.mine = true;
      if (mine(msg.from) && state.scope === "own") {
        call.state = "closed";
        call.closedText = `Transferred to ${agentName(msg.to)}`;
      } else {
        call.transferredIn = true;
        call.agentText = `Transferred from ${agentName(msg.from)}`;
      }
      break;
    case "call.ended":
      if (call.state !== "closed") {
        call.state = "ended";
        const talk = msg.duration ? msg.duration.talk : 0;
        call.endedText = `${OUTCOMES[msg.outcome] || "Ended"}${talk ? ` · ${duration(talk)}` : ""}`;
      }
      break;
    default:
      break;
  }
  if (call.state === "closed" || call.state === "ended") scheduleDrop(call);
  return call;
}

function scheduleDrop(call) {
  if (call.dropTimer) return;
  // the closed card stays readable for a while, then leaves the screen
  call.dropTimer = setTimeout(() => dropCall(call.conversation), 15000);
}

function dropCall(key) {
  const call = state.calls.get(key);
  if (call && call.dropTimer) clearTimeout(call.dropTimer);
  state.calls.delete(key);
  renderLive();
}

function renderLive() {
  const live = $("#live-cards");
  const pop = $("#pop-layer");
  const calls = [...state.calls.values()];
  live.replaceChildren(...calls.map(renderCard));
  // the corner pop-up shows calls that ring now (and stays while it is the live view too)
  // (on the live view itself the cards are already in front of the agent)
  // only calls that ring this user pop up (a supervisor's team view stays in the list)
  const ringing = calls.filter((c) => c.mine && !c.popHidden && (c.state === "ringing" || (c.state === "closed" && c.popped)));
  pop.replaceChildren(...ringing.map((c) => {
    c.popped = true;
    const el = renderCard(c);
    $(".card-foot", el).append(h("button", {
      class: "ghost hide-pop", type: "button", title: "Hide this pop-up (the call stays under Live calls)",
      onclick: () => { c.popHidden = true; renderLive(); },
    }, "Hide"));
    return el;
  }));
  pop.hidden = state.view === "live";
  $("#live-empty").hidden = calls.length > 0;
  const active = calls.filter((c) => c.state === "ringing" || c.state === "talking").length;
  $("#live-count").hidden = active === 0;
  $("#live-count").textContent = String(active);
}

function notify(call) {
  if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return;
  const n = new Notification(`Incoming call: ${cardTitle(call)}`, {
    body: (call.number && (call.number.display || call.number.raw)) || "",
    tag: call.conversation,
    icon: "/static/favicon.svg",
  });
  n.onclick = () => { window.focus(); showView("live"); n.close(); };
}

// ------------------------------------------------------------------ hub connection

const CLOSE_TEXT = {
  4401: "signed out", 4402: "session expired", 4403: "session revoked",
  4408: "the connection was too slow", 4429: "too many open tabs",
};

class HubClient {
  constructor() {
    this.ws = null;
    this.backoff = 1000;
    this.lastMessageAt = 0;
    this.pingTimer = null;
    this.retryTimer = null;
    this.ackTimer = null;
    this.stopped = false;
  }

  url() {
    const u = new URL(state.hub.url);
    u.searchParams.set("scope", state.scope);
    if (state.lastSeq !== null && state.epoch) {
      u.searchParams.set("last_seq", String(state.lastSeq));
      u.searchParams.set("epoch", state.epoch);
    }
    return u.toString();
  }

  connect() {
    clearTimeout(this.retryTimer);
    setStatus("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (err) {
      this.retry();
      return;
    }
    this.ws = ws;
    $("#dbg-url").textContent = state.hub.url;
    ws.onopen = () => { this.backoff = 1000; this.lastMessageAt = Date.now(); this.startPings(); };
    ws.onmessage = (ev) => { this.lastMessageAt = Date.now(); this.onMessage(ev.data); };
    ws.onclose = (ev) => {
      this.stopPings();
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.code >= 4401 && ev.code <= 4403) { goLogin(); return; }
      if (ev.code === 4429) toast("Too many open tabs for your login: close one and this tab reconnects.", "bad");
      debugLog(`closed ${ev.code} ${ev.reason || CLOSE_TEXT[ev.code] || ""}`);
      if (!this.stopped) this.retry();
    };
  }

  retry() {
    setStatus("offline");
    state.reconnects += 1;
    $("#dbg-reconnects").textContent = String(state.reconnects);
    const delay = this.backoff * (0.75 + Math.random() * 0.5);
    this.backoff = Math.min(this.backoff * 2, 30000);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(); }
    this.backoff = 1000;
    this.connect();
  }

  startPings() {
    this.stopPings();
    const every = Math.max(2, Math.min((state.hub.heartbeat_seconds || 20), 20)) * 1000;
    this.pingTimer = setInterval(() => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      if (Date.now() - this.lastMessageAt > every * 2.5) {
        debugLog("no answer from the hub: reconnecting");
        this.reconnectNow();
        return;
      }
      this.send({ type: "ping" });
    }, every);
  }

  stopPings() { clearInterval(this.pingTimer); this.pingTimer = null; }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  ack() {
    clearTimeout(this.ackTimer);
    this.ackTimer = setTimeout(() => { if (state.lastSeq !== null) this.send({ type: "ack", seq: state.lastSeq }); }, 500);
  }

  onMessage(text) {
    let msg;
    try { msg = JSON.parse(text); } catch (err) { debugLog("bad message from hub"); return; }
    state.messages += 1;
    $("#dbg-messages").textContent = String(state.messages);
    debugLog(`${msg.type}${msg.seq ? ` #${msg.seq}` : ""}${msg.event ? ` ${msg.event.type} ${msg.event.extension || ""}` : ""}`);
    switch (msg.type) {
      case "hello":
        if (state.epoch && msg.epoch !== state.epoch) state.lastSeq = null;
        state.epoch = msg.epoch;
        setStatus("online");
        break;
      case "resync":
        state.calls.clear();
        state.lastSeq = msg.seq;
        break;
      case "snapshot":
        state.lastSeq = msg.seq;
        state.epoch = msg.epoch || state.epoch;
        for (const c of msg.calls) applySnapshotCall(c);
        renderLive();
        break;
      case "call":
      case "card":
        if (msg.seq && state.lastSeq !== null && msg.seq <= state.lastSeq && !msg.replayed) break;
        if (msg.seq) state.lastSeq = msg.seq;
        if (msg.type === "call") {
          const call = applyCall(msg);
          if (call && msg.event.type === "call.ringing" && !msg.replayed) {
            showLatency(msg);
            notify(call);
          }
        } else {
          const call = state.calls.get(msg.conversation);
          if (call) { call.card = msg.card; call.cardPending = false; }
        }
        renderLive();
        this.ack();
        break;
      case "task":
        if (msg.seq) state.lastSeq = msg.seq;
        if (!msg.replayed) toast(`New task: ${msg.task.title}`);
        refreshTaskCount();
        if (state.view === "tasks") loadTasks();
        break;
      case "error":
        debugLog(`hub error ${msg.code}: ${msg.message}`);
        if (msg.code === "forbidden") toast(msg.message, "bad");
        break;
      default:
        break;
    }
    $("#dbg-seq").textContent = state.lastSeq === null ? "–" : String(state.lastSeq);
  }
}

function applySnapshotCall(c) {
  const existing = state.calls.get(c.conversation);
  const msg = { ...(c.event || {}), conversation: c.conversation, number: c.number, card: c.card, card_pending: c.card_pending, history: c.history };
  if (!existing && (!c.event || !c.event.event)) {
    state.calls.set(c.conversation, {
      conversation: c.conversation, state: c.state, number: c.number, direction: c.direction,
      card: c.card, cardPending: c.card_pending, history: c.history || [],
      mine: state.scope === "own" || Boolean(state.me && c.agents && c.agents[String(state.me.id)]),
    });
    return;
  }
  applyCall(msg);
  const call = state.calls.get(c.conversation);
  if (call && state.scope === "own") {
    const mineState = c.agents && state.me ? c.agents[String(state.me.id)] : null;
    if (mineState === "talking") call.state = "talking";
  }
}

function showLatency(msg) {
  const received = Date.now();
  const pbx = Date.parse(msg.pbx_time);
  const observed = Date.parse(msg.observed_at);
  const sent = Date.parse(msg.sent_at);
  const ms = (a, b) => (Number.isFinite(a) && Number.isFinite(b) ? `${Math.max(0, Math.round(a - b))} ms` : "–");
  $("#dbg-latency").textContent = ms(received, pbx);
  $("#dbg-observe").textContent = ms(observed, pbx);
  $("#dbg-transit").textContent = ms(received, sent);
}

const logLines = [];
function debugLog(line) {
  logLines.push(`${new Date().toISOString().slice(11, 23)}  ${line}`);
  if (logLines.length > 200) logLines.shift();
  const el = $("#dbg-log");
  if (!$("#debug").hidden) { el.textContent = logLines.join("\n"); el.scrollTop = el.scrollHeight; }
}

function setStatus(status) {
  state.online = status === "online";
  const pill = $("#hub-status");
  pill.dataset.status = status;
  pill.textContent = { online: "Online", connecting: "Connecting…", offline: "Offline" }[status];
  $("#offline-banner").hidden = status !== "offline";
}

const hub = new HubClient();

// ------------------------------------------------------------------ views

function showView(name) {
  state.view = name;
  for (const b of document.querySelectorAll("nav.side button")) {
    if (b.dataset.view === name) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  for (const s of document.querySelectorAll("[data-view-panel]")) s.hidden = s.dataset.viewPanel !== name;
  renderLive();
  if (name === "calls") loadCalls();
  if (name === "contacts" && !$("#contact-list").childElementCount) searchContacts("");
  if (name === "tasks") loadTasks();
}

// ---- call history

const callsPage = { offset: 0, limit: 50, total: 0 };
const contactNames = new Map();

async function loadCalls() {
  const form = new FormData($("#call-filters"));
  const params = new URLSearchParams({ limit: String(callsPage.limit), offset: String(callsPage.offset) });
  for (const [field, param] of [["direction", "direction"], ["outcome", "outcome"], ["number", "number"], ["since", "from"], ["until", "to"]]) {
    const value = String(form.get(field) || "").trim();
    if (value) params.set(param, field === "number" ? value.replace(/[^\d+]/g, "") || value : value);
  }
  const rows = $("#calls-rows");
  try {
    const page = await api(`/api/v1/calllog?${params}`);
    callsPage.total = page.total;
    await resolveContactNames(page.items.map((c) => c.contact_id).filter(Boolean));
    rows.replaceChildren(...page.items.map(callRow));
    if (!page.items.length) rows.replaceChildren(h("tr", {}, h("td", { colspan: "8", class: "empty" }, "No calls match these filters.")));
    $("#calls-info").textContent = page.total ? `${callsPage.offset + 1}–${callsPage.offset + page.items.length} of ${page.total}` : "";
    $("#calls-prev").disabled = callsPage.offset === 0;
    $("#calls-next").disabled = callsPage.offset + page.items.length >= page.total;
  } catch (err) {
    if (!(err instanceof AuthError)) rows.replaceChildren(h("tr", {}, h("td", { colspan: "8", class: "error-box" }, `Could not load calls: ${err.message}`)));
  }
}

async function resolveContactNames(ids) {
  const missing = [...new Set(ids)].filter((id) => !contactNames.has(id));
  await Promise.all(missing.map(async (id) => {
    try { const c = await api(`/api/v1/contacts/${id}`); contactNames.set(id, c.name); } catch (err) { contactNames.set(id, `#${id}`); }
  }));
}

function callRow(c) {
  const outbound = c.direction === "outbound";
  const number = outbound ? (c.callee_e164 || c.callee) : (c.caller_e164 || c.caller);
  const contact = c.contact_id
    ? h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); showView("contacts"); openContact(c.contact_id); } }, contactNames.get(c.contact_id) || `#${c.contact_id}`)
    : (c.caller_name || "");
  const play = c.recording_url
    ? h("button", { type: "button", class: "ghost", onclick: (ev) => {
      const audio = h("audio", { controls: true, autoplay: true, preload: "none", src: c.recording_url });
      ev.currentTarget.replaceWith(audio);
    } }, "▶ Play")
    : null;
  return h(
    "tr",
    { dataset: { id: String(c.id) } },
    h("td", {}, when(c.started_at)),
    h("td", {}, c.direction || ""),
    h("td", {}, number ? phoneLink(number) : h("span", { class: "muted" }, "hidden")),
    h("td", {}, contact),
    h("td", {}, c.answered_by_name || c.answered_by || ((c.agents || []).length ? `rang ${(c.agents || []).join(", ")}` : "")),
    h("td", {}, h("span", { class: "outcome", dataset: { outcome: c.outcome || "" } }, OUTCOMES[c.outcome] || c.outcome || "")),
    h("td", {}, duration(c.talk_seconds)),
    h("td", {}, play),
  );
}

// ---- contacts

let selectedContact = null;

async function searchContacts(text) {
  const q = text.trim();
  const params = new URLSearchParams({ limit: "50" });
  if (q) {
    if (looksLikePhone(q)) params.set("phone", q);
    else if (q.startsWith("#")) params.set("tag", q.slice(1));
    else params.set("q", q);
  }
  const list = $("#contact-list");
  try {
    const page = await api(`/api/v1/contacts?${params}`);
    list.replaceChildren(...page.items.map((c) => h(
      "div",
      { class: "contact-row", role: "option", "aria-selected": String(c.id === selectedContact), dataset: { id: String(c.id) }, onclick: () => openContact(c.id) },
      h("strong", {}, c.name),
      h("span", { class: "muted small" }, [c.company_name, c.phones.map((p) => p.raw).join(", ")].filter(Boolean).join(" · ")),
    )));
    if (!page.items.length) list.replaceChildren(h("div", { class: "empty" }, q ? `Nothing found for “${q}”.` : "No contacts yet."));
  } catch (err) {
    if (!(err instanceof AuthError)) list.replaceChildren(h("div", { class: "error-box" }, err.message));
  }
}

// A number or the last digits of one ("4567", "+7 916 123", "(495) 12-34"): the API finds the
// numbers ending in 4+ digits, and full numbers in any format.
function looksLikePhone(q) {
  return /^\+?[\d\s().\-]+$/.test(q) && q.replace(/\D/g, "").length >= 4;
}

async function openContact(id) {
  selectedContact = id;
  for (const row of document.querySelectorAll(".contact-row")) row.setAttribute("aria-selected", String(row.dataset.id === String(id)));
  try {
    const c = await api(`/api/v1/contacts/${id}`);
    renderContact(c);
  } catch (err) {
    if (!(err instanceof AuthError)) toast(err.message, "bad");
  }
}

function openNewContact(prefill = {}) {
  showView("contacts");
  selectedContact = null;
  renderContact({ id: null, name: prefill.name || "", phones: prefill.phones || [], emails: [], tags: [], notes: "" }, true);
}

// The people a contact can be assigned to (active users), loaded once per page.
let activeUsers = null;
function loadActiveUsers() {
  if (!activeUsers) {
    activeUsers = api("/api/v1/users?active=true&limit=500")
      .then((page) => page.items.slice().sort((a, b) => (a.name || a.login).localeCompare(b.name || b.login)))
      .catch((err) => { activeUsers = null; throw err; });
  }
  return activeUsers;
}

// The responsible manager: a list of the active users; "" is nobody.
function managerPicker(currentId, currentName) {
  const select = h("select", { name: "responsible_user_id", class: "manager-picker" },
    h("option", { value: "" }, "Not assigned"),
    currentId ? h("option", { value: String(currentId), selected: true }, currentName || `User #${currentId}`) : null);
  loadActiveUsers().then((people) => {
    const keep = select.value;
    const options = people.map((u) => h("option", { value: String(u.id) }, `${u.name || u.login}${u.team ? ` · ${u.team}` : ""}`));
    // someone no longer active stays shown while they are the manager
    if (keep && !people.some((u) => String(u.id) === keep)) options.unshift(h("option", { value: keep }, `${currentName || `User #${keep}`} (inactive)`));
    select.replaceChildren(h("option", { value: "" }, "Not assigned"), ...options);
    select.value = keep;
    select.dataset.loaded = "true";
  }).catch((err) => { if (!(err instanceof AuthError)) toast(`Could not load the people: ${err.message}`, "bad"); });
  return select;
}

// The company: type part of its name, pick one of the matches (GET /api/v1/companies?q=).
// value() is the chosen id, null for none, or throws when a name was typed but not picked.
function companyPicker(currentId, currentName) {
  const chosen = { id: currentId || null, name: currentId ? currentName || "" : "" };
  const input = h("input", {
    name: "company", value: chosen.name, placeholder: "Type to search companies", autocomplete: "off",
    role: "combobox", "aria-autocomplete": "list", "aria-expanded": "false",
  });
  const list = h("div", { class: "picker-list", role: "listbox", hidden: true });
  const clear = h("button", { type: "button", class: "ghost picker-clear", title: "No company", hidden: !chosen.id }, "✕");
  const wrap = h("div", { class: "picker company-picker" }, h("div", { class: "picker-row" }, input, clear), list);
  let timer = null;
  let asked = 0;
  const close = () => { list.hidden = true; input.setAttribute("aria-expanded", "false"); };
  const pick = (company) => {
    chosen.id = company ? company.id : null;
    chosen.name = company ? company.name : "";
    input.value = chosen.name;
    clear.hidden = !chosen.id;
    wrap.dataset.companyId = chosen.id ? String(chosen.id) : "";
    close();
    input.focus();
    input.dispatchEvent(new Event("change", { bubbles: true }));
  };
  async function search() {
    const q = input.value.trim();
    const mine = ++asked;
    if (!q) { close(); return; }
    try {
      const page = await api(`/api/v1/companies?${new URLSearchParams({ q, limit: "8" })}`);
      if (mine !== asked) return; // an answer to an older query
      list.replaceChildren(...page.items.map((c) => h(
        "button",
        { type: "button", class: "picker-option", role: "option", dataset: { id: String(c.id) }, onclick: () => pick(c) },
        h("span", {}, c.name),
        c.responsible_name ? h("span", { class: "muted small" }, c.responsible_name) : null,
      )));
      if (!page.items.length) list.replaceChildren(h("div", { class: "picker-empty muted small" }, `No company matches “${q}”.`));
    } catch (err) {
      if (err instanceof AuthError || mine !== asked) return;
      list.replaceChildren(h("div", { class: "picker-empty error-box" }, err.message));
    }
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
  }
  input.addEventListener("input", () => {
    if (input.value.trim() !== chosen.name) { chosen.id = null; clear.hidden = true; wrap.dataset.companyId = ""; }
    clearTimeout(timer);
    timer = setTimeout(search, 200);
  });
  input.addEventListener("keydown", (ev) => {
    const first = list.hidden ? null : list.querySelector(".picker-option");
    if (ev.key === "Escape") close();
    else if (ev.key === "Enter" && first) { ev.preventDefault(); first.click(); }
    else if (ev.key === "ArrowDown" && first) { ev.preventDefault(); first.focus(); }
  });
  list.addEventListener("keydown", (ev) => {
    const options = [...list.querySelectorAll(".picker-option")];
    const at = options.indexOf(document.activeElement);
    if (ev.key === "ArrowDown" && at >= 0) { ev.preventDefault(); (options[at + 1] || options[at]).focus(); }
    else if (ev.key === "ArrowUp" && at >= 0) { ev.preventDefault(); (at ? options[at - 1] : input).focus(); }
    else if (ev.key === "Escape") { close(); input.focus(); }
  });
  wrap.addEventListener("focusout", (ev) => { if (!wrap.contains(ev.relatedTarget)) close(); });
  clear.addEventListener("click", () => pick(null));
  wrap.dataset.companyId = chosen.id ? String(chosen.id) : "";
  return {
    el: wrap,
    value() {
      if (!input.value.trim()) return null;
      if (chosen.id && input.value.trim() === chosen.name) return chosen.id;
      throw new Error(`Pick the company “${input.value.trim()}” from the list, or clear the field.`);
    },
  };
}

function renderContact(c, editing = false) {
  const pane = $("#contact-detail");
  if (!editing) {
    pane.replaceChildren(
      h("div", { class: "view-head" },
        h("h2", { class: "contact-title" }, c.name),
        h("div", { class: "spacer" }),
        h("button", { type: "button", class: "edit-contact", onclick: () => renderContact(c, true) }, "Edit")),
      h("dl", { class: "facts" },
        h("dt", {}, "Phones"), h("dd", { class: "contact-phones" }, c.phones.length ? c.phones.map((p) => h("div", {}, phoneLink(p.e164 || p.raw, p.raw, c.id), p.label ? h("span", { class: "muted small" }, `  ${p.label}`) : null)) : "—"),
        h("dt", {}, "Company"), h("dd", { class: "contact-company" }, c.company_name || "—"),
        h("dt", {}, "Manager"), h("dd", { class: "contact-manager" }, c.responsible_name || "—"),
        h("dt", {}, "E-mail"), h("dd", {}, c.emails.join(", ") || "—"),
        h("dt", {}, "Tags"), h("dd", {}, c.tags.length ? h("div", { class: "tags" }, c.tags.map((t) => h("span", { class: "tag" }, t))) : "—"),
        h("dt", {}, "Notes"), h("dd", {}, c.notes || "—")),
    );
    return;
  }
  const phones = (c.phones || []).map((p) => p.raw).join("\n");
  const company = companyPicker(c.company_id, c.company_name);
  const form = h("form", { class: "contact-form" },
    h("div", { class: "form-grid" },
      h("label", { class: "wide" }, "Name", h("input", { name: "name", value: c.name || "", required: true })),
      h("label", {}, "Company", company.el),
      h("label", {}, "Manager", managerPicker(c.responsible_user_id, c.responsible_name)),
      h("label", {}, "Phones (one per line)", h("textarea", { name: "phones" }, phones)),
      h("label", {}, "E-mails (one per line)", h("textarea", { name: "emails" }, (c.emails || []).join("\n"))),
      h("label", { class: "wide" }, "Tags (comma separated)", h("input", { name: "tags", value: (c.tags || []).join(", ") })),
      h("label", { class: "wide" }, "Notes", h("textarea", { name: "notes" }, c.notes || ""))),
    h("div", { class: "form-error", hidden: true, role: "alert" }),
    h("div", { class: "form-actions" },
      h("button", { type: "button", onclick: () => (c.id ? openContact(c.id) : pane.replaceChildren()) }, "Cancel"),
      h("button", { type: "submit", class: "primary" }, c.id ? "Save" : "Create contact")));
  // an error shown for the last attempt goes away as soon as the form is changed
  const clearError = () => { $(".form-error", form).hidden = true; };
  form.addEventListener("input", clearError);
  form.addEventListener("change", clearError);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const lines = (v) => String(v || "").split(/[\n,;]+/).map((s) => s.trim()).filter(Boolean);
    const err = $(".form-error", form);
    let companyId;
    try {
      companyId = company.value();
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
      return;
    }
    const manager = String(data.get("responsible_user_id") || "");
    const body = {
      name: String(data.get("name") || "").trim(),
      phones: lines(data.get("phones")),
      emails: lines(data.get("emails")),
      tags: String(data.get("tags") || "").split(",").map((s) => s.trim()).filter(Boolean),
      notes: String(data.get("notes") || ""),
      company_id: companyId,
      responsible_user_id: manager ? Number(manager) : null,
    };
    try {
      const saved = c.id
        ? await api(`/api/v1/contacts/${c.id}`, { method: "PATCH", body })
        : await api("/api/v1/contacts", { method: "POST", body });
      toast(c.id ? "Contact saved" : "Contact created", "ok");
      selectedContact = saved.id;
      renderContact(saved);
      searchContacts($("#contact-q").value);
    } catch (e) {
      if (e instanceof AuthError) return;
      err.textContent = e.message;
      err.hidden = false;
    }
  });
  pane.replaceChildren(h("h2", {}, c.id ? `Edit ${c.name}` : "New contact"), h("p"), form);
}

// ---- tasks

async function loadTasks() {
  const status = $("#task-status").value;
  const params = new URLSearchParams({ limit: "100" });
  if (status) params.set("status", status);
  if (state.me && state.me.role === "agent") params.set("assignee_id", String(state.me.id));
  const list = $("#task-list");
  try {
    const page = await api(`/api/v1/tasks?${params}`);
    list.replaceChildren(...page.items.map(taskRow));
    if (!page.items.length) list.replaceChildren(h("div", { class: "empty" }, h("strong", {}, "Nothing to do"), "Callback tasks for missed calls appear here."));
    if (status === "open") updateTaskCount(page.total);
  } catch (err) {
    if (!(err instanceof AuthError)) list.replaceChildren(h("div", { class: "error-box" }, err.message));
  }
}

function taskRow(t) {
  const late = t.status === "open" && t.due_at && new Date(t.due_at) < new Date();
  return h(
    "div",
    { class: "task-row", dataset: { id: String(t.id) } },
    h("div", {},
      h("div", { class: "title" }, t.title),
      h("div", { class: "muted small" },
        t.kind === "callback" ? "Callback" : "Task",
        t.attempts > 1 ? ` · ${t.attempts} missed calls` : "",
        t.due_at ? h("span", { class: late ? "due-late" : "" }, ` · due ${when(t.due_at)}`) : ""),
      t.description ? h("div", { class: "small" }, t.description) : null),
    h("div", { class: "spacer" }),
    t.number_e164 ? phoneLink(t.number_e164) : null,
    t.status === "open"
      ? h("button", { type: "button", onclick: async () => {
        try { await api(`/api/v1/tasks/${t.id}/close`, { method: "POST", body: { status: "done" } }); toast("Task done", "ok"); loadTasks(); } catch (err) { if (!(err instanceof AuthError)) toast(err.message, "bad"); }
      } }, "Done")
      : h("span", { class: "muted small" }, t.status),
  );
}

function updateTaskCount(n) {
  $("#task-count").hidden = !n;
  $("#task-count").textContent = String(n);
}

// ------------------------------------------------------------------ start

async function start() {
  try {
    state.me = await api("/api/v1/me");
  } catch (err) {
    if (!(err instanceof AuthError)) toast(`The connector cannot be reached: ${err.message}`, "bad");
    setStatus("offline");
    setTimeout(start, 5000);
    return;
  }
  const me = state.me;
  $("#me-name").textContent = me.name || me.login;
  const exts = (me.extensions || []).map((e) => (typeof e === "string" ? e : e.extension)).join(", ");
  $("#me-detail").textContent = `${me.role}${me.team ? ` · ${me.team}` : ""}${exts ? ` · ext. ${exts}` : ""}`;
  const scopeSel = $("#scope");
  if (me.role === "agent") state.scope = "own";
  if (me.role !== "admin") scopeSel.querySelector('option[value="all"]').remove();
  $("#supervisor-link").hidden = me.role === "agent";
  if (me.role === "agent") scopeSel.hidden = true;
  else scopeSel.hidden = false;
  if (state.scope === "all" && me.role !== "admin") state.scope = "own";
  scopeSel.value = state.scope;
  if ("Notification" in window && Notification.permission === "default") $("#notify-btn").hidden = false;
  state.hub = await api("/api/v1/hub");
  hub.connect();
  refreshTaskCount();
}

function refreshTaskCount() {
  const me = state.me;
  if (!me) return;
  api("/api/v1/tasks?status=open&limit=1" + (me.role === "agent" ? `&assignee_id=${me.id}` : ""))
    .then((p) => updateTaskCount(p.total)).catch(() => {});
}

for (const b of document.querySelectorAll("nav.side button")) b.addEventListener("click", () => showView(b.dataset.view));
$("#call-filters").addEventListener("submit", (ev) => { ev.preventDefault(); callsPage.offset = 0; loadCalls(); });
$("#calls-prev").addEventListener("click", () => { callsPage.offset = Math.max(0, callsPage.offset - callsPage.limit); loadCalls(); });
$("#calls-next").addEventListener("click", () => { callsPage.offset += callsPage.limit; loadCalls(); });
$("#contact-search").addEventListener("submit", (ev) => { ev.preventDefault(); searchContacts($("#contact-q").value); });
$("#contact-new").addEventListener("click", () => openNewContact());
$("#task-status").addEventListener("change", loadTasks);
$("#scope").addEventListener("change", (ev) => {
  state.scope = ev.target.value;
  localStorage.setItem("vc_scope", state.scope);
  state.calls.clear();
  state.lastSeq = null;
  renderLive();
  hub.reconnectNow();
});
$("#notify-btn").addEventListener("click", async () => {
  const answer = await Notification.requestPermission();
  $("#notify-btn").hidden = answer !== "default";
  if (answer === "granted") toast("You will be notified of calls while this tab is in the background.", "ok");
});
$("#debug-btn").addEventListener("click", () => { $("#debug").hidden = !$("#debug").hidden; debugLog("debug panel opened"); });
$("#debug-close").addEventListener("click", () => { $("#debug").hidden = true; });
$("#logout-btn").addEventListener("click", async () => {
  hub.stopped = true;
  try { await api("/api/v1/auth/logout", { method: "POST" }); } catch (err) { /* signed out anyway */ }
  location.assign("/login");
});
window.addEventListener("online", () => { if (!state.online) hub.reconnectNow(); });

renderLive();
start();
