// The clearhouse dashboard's script: login by Ed25519 challenge, then the day (with the day's trade
// messages: REST, FIX, the FIX session, ISO 20022), the charts, a participant's view (with its
// semt.002 statement to download) and the ledger explorer, all read from the REST API of this server.
// Data is written into the page with textContent only. Uses the browser's WebCrypto (Ed25519,
// SHA-256) and plotly.js from /static/plotly.min.js; nothing else.
"use strict";

const OVERSIGHT = ["ccp", "regulator"];
const NONCE_PREFIX = "clearhouse-auth-v1:";
// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410)
const PKCS8_ED25519 = "302e020100300506032b657004220420";

const state = { token: null, who: null, oldest: null, semt002: null };
const $ = (id) => document.getElementById(id);

function say(text, isError = false) {
  $("message").textContent = text;
  $("message").className = isError ? "error" : "";
}

function hexToBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

function bytesToHex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

async function sha256(...parts) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));
}

async function request(path, options = {}) {
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    if (response.status === 401 && state.token) logout();
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    throw new Error(`${response.status} ${body.error || ""}: ${detail || response.statusText}`);
  }
  return response;
}

async function api(path, options = {}) {
  return (await request(path, options)).json();
}

// ------------------------------------------------------------------ login

async function signNonce(seedHex, nonce) {
  if (!nonce.startsWith(NONCE_PREFIX)) throw new Error("the server sent something that is not a login nonce");
  const key = await crypto.subtle.importKey("pkcs8", hexToBytes(PKCS8_ED25519 + seedHex),
    { name: "Ed25519" }, false, ["sign"]);
  return bytesToHex(await crypto.subtle.sign({ name: "Ed25519" }, key, new TextEncoder().encode(nonce)));
}

async function webCryptoHasEd25519() {
  try {
    await crypto.subtle.importKey("pkcs8", hexToBytes(PKCS8_ED25519 + "00".repeat(32)),
      { name: "Ed25519" }, false, ["sign"]);
    return true;
  } catch (e) {
    return false;
  }
}

async function login(participantId, seedHex) {
  if (await webCryptoHasEd25519()) {
    const challenge = await api("/auth/challenge", {
      method: "POST", body: JSON.stringify({ participant_id: participantId }) });
    const signature = await signNonce(seedHex, challenge.nonce);
    return api("/auth/token", { method: "POST", body: JSON.stringify({
      participant_id: participantId, nonce: challenge.nonce, signature }) });
  }
  const methods = await api("/auth/methods");
  if (!methods.dashboard_login) {
    throw new Error("this browser has no Ed25519 in WebCrypto; start the server with " +
      "--dashboard-login (loopback only) to log in through it");
  }
  return api("/auth/dashboard-login", { method: "POST", body: JSON.stringify({
    participant_id: participantId, seed_hex: seedHex }) });
}

function logout() {
  if (state.token) fetch("/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${state.token}` } });
  state.token = null;
  state.who = null;
  sessionStorage.removeItem("clearhouse-token");
  $("main").hidden = true;
  $("session").hidden = true;
  $("login-form").hidden = false;
  $("login-note").hidden = false;
}

async function start() {
  state.who = await api("/auth/me");
  $("session-who").textContent = `${state.who.participant_id} (${state.who.role})`;
  $("session").hidden = false;
  $("login-form").hidden = true;
  $("login-note").hidden = true;
  $("main").hidden = false;
  await Promise.all([showDay(), showCharts(), fillMembers(), showBlocks(null)]);
  say("");
}

// ------------------------------------------------------------------ tables

function table(id, columns, rows, onClick) {
  const t = $(id);
  t.replaceChildren();
  const head = t.createTHead().insertRow();
  for (const c of columns) {
    const th = document.createElement("th");
    th.textContent = c;
    head.appendChild(th);
  }
  const body = t.createTBody();
  if (!rows.length) {
    const cell = body.insertRow().insertCell();
    cell.colSpan = columns.length;
    cell.className = "empty";
    cell.textContent = "none";
  }
  for (const r of rows) {
    const row = body.insertRow();
    for (const c of columns) row.insertCell().textContent = r[c] === null || r[c] === undefined ? "" : String(r[c]);
    if (onClick) { row.className = "clickable"; row.addEventListener("click", () => onClick(r)); }
  }
}

function money(fig) {
  if (fig.value !== null) return fig.value;
  return Object.entries(fig.by_currency).map(([c, v]) => `${v} ${c}`).join(", ");
}

// ------------------------------------------------------------------ the day and the charts

async function showDay() {
  const d = await api("/day");
  $("day-date").textContent = d.business_date;
  $("day-trades").textContent = d.trades.submitted.toLocaleString();
  $("day-trades-detail").textContent = `${d.trades.accepted} accepted, ${d.trades.rejected} rejected, ` +
    `${d.pending_trades} waiting for cut-off`;
  $("day-netting").textContent = d.netting.cutoffs === 0 ? "no cut-off yet"
    : d.netting.reduction_pct === null ? "nothing netted" : `${d.netting.reduction_pct} %`;
  $("day-netting-detail").textContent = `gross ${money(d.netting.gross_value)}, net ${money(d.netting.net_value)}`;
  $("day-settled").textContent = money(d.settlement.settled_value);
  $("day-settled-detail").textContent = `${d.settlement.settled} instructions settled`;
  $("day-failed").textContent = money(d.settlement.failed_value);
  $("day-failed-detail").textContent = `${d.settlement.failed} instructions failed`;
  $("day-height").textContent = d.height;
  $("day-root").textContent = `state root ${d.state_root.slice(0, 16)}…`;
  $("day-verified").textContent = d.verification.status;
  $("day-verified").className = d.verification.status === "failed" ? "bad" : "good";
  $("day-verified-detail").textContent = d.verification.status === "verified"
    ? `through block ${d.verification.verified_height}; ${d.verification.sealed_since} sealed since`
    : (d.verification.reason || "");
  const log = await api(`/messages?business_date=${d.business_date}`);
  table("table-messages", ["received_utc", "door", "submitter", "submission_id", "submitted", "accepted",
    "rejected", "outcome", "height"], log.messages.map((m) => ({ ...m, received_utc: m.received_at.slice(11, 19),
    outcome: m.status === "refused" ? `refused: ${m.reason}` : m.status })));
}

const LAYOUT = { margin: { t: 40, r: 50, b: 40, l: 60 }, height: 300, legend: { orientation: "h" } };

async function showCharts() {
  const days = (await api("/stats/daily")).days;
  const x = days.map((d) => d.business_date);
  const num = (fig) => parseFloat(fig.value === null ? Object.values(fig.by_currency)[0] : fig.value) || 0;
  Plotly.newPlot("chart-trades", [
    { x, y: days.map((d) => d.trades.accepted), type: "bar", name: "accepted" },
    { x, y: days.map((d) => d.trades.rejected), type: "bar", name: "rejected" },
  ], { ...LAYOUT, title: { text: "Trades" }, barmode: "stack" }, { displayModeBar: false });
  Plotly.newPlot("chart-netting", [
    { x, y: days.map((d) => num(d.netting.gross_value)), type: "bar", name: "gross value" },
    { x, y: days.map((d) => num(d.netting.net_value)), type: "bar", name: "net value" },
    { x, y: days.map((d) => d.netting.reduction_pct), type: "scatter", name: "reduction %", yaxis: "y2" },
  ], { ...LAYOUT, title: { text: "Netting" }, yaxis2: { overlaying: "y", side: "right", range: [0, 100] } },
  { displayModeBar: false });
  Plotly.newPlot("chart-settlement", [
    { x, y: days.map((d) => num(d.settlement.settled_value)), type: "bar", name: "settled value" },
    { x, y: days.map((d) => num(d.settlement.failed_value)), type: "bar", name: "failed value" },
  ], { ...LAYOUT, title: { text: "Settlement" }, barmode: "stack" }, { displayModeBar: false });
}

// ------------------------------------------------------------------ one participant

async function fillMembers() {
  const select = $("member-select");
  select.replaceChildren();
  let ids = [state.who.participant_id];
  if (OVERSIGHT.includes(state.who.role)) {
    const all = (await api("/participants")).participants;
    ids = all.filter((p) => p.role === "member").map((p) => p.participant_id);
  }
  for (const id of ids) select.add(new Option(id, id));
  select.disabled = ids.length < 2;
  if (ids.length) await showMember(ids[0]);
}

async function showMember(id) {
  const enc = encodeURIComponent(id);
  const [pos, ins, fails] = await Promise.all([
    api(`/participants/${enc}/positions`), api(`/participants/${enc}/instructions`),
    api(`/participants/${enc}/fails`)]);
  table("table-securities", ["security_id", "quantity"], pos.securities,
    (r) => proveHolding(id, "securities", r.security_id));
  table("table-cash", ["currency", "amount"], pos.cash, (r) => proveHolding(id, "cash", r.currency));
  table("table-open", ["security_id", "settlement_date", "quantity", "cash", "currency", "first_due", "failing"],
    pos.open_positions);
  table("table-instructions", ["settlement_date", "security_id", "quantity", "cash", "settled_quantity", "status",
    "reason"],
    ins.instructions.slice().reverse());
  table("table-fails", ["settlement_date", "due_date", "security_id", "quantity", "settled_quantity", "cash",
    "reason"],
    fails.fails.slice().reverse());
  await linkStatement(id);
  Plotly.newPlot("chart-holdings", [{
    x: pos.securities.map((s) => s.security_id), y: pos.securities.map((s) => s.quantity), type: "bar",
    name: "quantity" }], { ...LAYOUT, title: { text: `${id}: holdings` } }, { displayModeBar: false });
}

async function linkStatement(id) {
  const link = $("semt002-link");
  if (state.semt002) URL.revokeObjectURL(state.semt002);
  state.semt002 = null;
  link.removeAttribute("href");
  try {
    const xml = await (await request(`/participants/${encodeURIComponent(id)}/semt002`)).text();
    state.semt002 = URL.createObjectURL(new Blob([xml], { type: "application/xml" }));
    link.href = state.semt002;
    link.download = `${id}-semt002.xml`;
    link.textContent = `${id}: statement of holdings (ISO 20022 semt.002)`;
  } catch (e) {
    link.textContent = `${id}: no semt.002 statement (${e.message})`;
  }
}

// ------------------------------------------------------------------ the ledger

async function showBlocks(before) {
  const q = before === null ? "" : `?before=${before}`;
  const list = await api(`/blocks${q}`);
  const rows = list.blocks.map((b) => ({ ...b, hash: `${b.hash.slice(0, 16)}…` }));
  table("table-blocks", ["height", "business_date", "timestamp", "submissions", "hash"], rows,
    (r) => showBlock(r.height));
  state.oldest = list.blocks.length ? list.blocks[list.blocks.length - 1].height : 0;
  $("blocks-older").disabled = state.oldest === 0;
}

async function showBlock(height) {
  const b = await api(`/blocks/${height}`);
  $("block-title").textContent = `Block ${height}`;
  $("block-detail").textContent = JSON.stringify(b, null, 2);
}

async function proveHolding(participant, tableName, asset) {
  $("proof-table").value = tableName;
  $("proof-asset").value = asset;
  await prove(participant, tableName, asset);
}

async function prove(participant, tableName, asset) {
  const p = await api(`/participants/${encodeURIComponent(participant)}/proof/${encodeURIComponent(asset)}` +
    `?table=${tableName}`);
  let node = await sha256(new Uint8Array([0]), new TextEncoder().encode(p.leaf));
  for (const step of p.path) {
    const sibling = hexToBytes(step.hash);
    node = step.side === "left" ? await sha256(new Uint8Array([1]), sibling, node)
      : await sha256(new Uint8Array([1]), node, sibling);
  }
  const balancesOk = bytesToHex(node) === p.balances_root && p.components.balances === p.balances_root;
  const parts = Object.keys(p.components).sort().map((k) => hexToBytes(p.components[k]));
  const root = bytesToHex(await sha256(new TextEncoder().encode("clearhouse/state/v1"), ...parts));
  const header = await api(`/blocks/${p.height}`);
  const ok = balancesOk && root === p.state_root && root === header.state_root;
  $("proof-result").textContent = ok
    ? `proof verified: ${participant} holds ${p.amount} ${asset}; recomputed state root matches block ${p.height}`
    : "proof does NOT verify";
  $("proof-result").className = ok ? "good" : "bad";
  $("proof-detail").textContent = JSON.stringify(p, null, 2);
}

// ------------------------------------------------------------------ wiring

function guarded(fn) {
  return async (...args) => {
    try { await fn(...args); } catch (e) { say(e.message, true); }
  };
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    say("logging in…");
    const body = await login($("login-id").value.trim(), $("login-seed").value.trim().toLowerCase());
    $("login-seed").value = "";
    state.token = body.access_token;
    sessionStorage.setItem("clearhouse-token", state.token);
    await start();
  }));
  $("logout-button").addEventListener("click", logout);
  $("member-select").addEventListener("change", guarded((e) => showMember(e.target.value)));
  $("blocks-older").addEventListener("click", guarded(() => showBlocks(state.oldest)));
  $("proof-form").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    const participant = $("member-select").value || state.who.participant_id;
    await prove(participant, $("proof-table").value, $("proof-asset").value.trim());
  }));
  state.token = sessionStorage.getItem("clearhouse-token");
  if (state.token) guarded(start)();
});
