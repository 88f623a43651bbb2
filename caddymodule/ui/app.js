// The chat_webhooks dashboard. It reads and acts through the admin API
// beside it (../stats, ../messages...). Chat text and receiver answers are
// attacker-controlled: every value reaches the page as textContent or an
// attribute set through the DOM, never as HTML.
"use strict";

const POLL_MS = 2000;
const CHART_POINTS = 60;

const $ = (sel) => document.querySelector(sel);

// el builds an element; strings and numbers among children become text.
function el(tag, attrs, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (k === "onclick") e.addEventListener("click", v);
		else if (k === "class") e.className = v;
		else e.setAttribute(k, v);
	}
	for (const c of children) {
		if (c === null || c === undefined) continue;
		e.append(c instanceof Node ? c : document.createTextNode(String(c)));
	}
	return e;
}

function setRows(tbody, rows, empty, cols) {
	tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: String(cols) }, empty))]));
}

function when(t) {
	return t ? new Date(t).toLocaleString() : "—";
}

// api calls the admin API and returns its JSON, or throws its error text.
async function api(method, route, params) {
	const url = new URL("../" + route, location.href);
	for (const [k, v] of Object.entries(params || {})) {
		if (v !== undefined && v !== "") url.searchParams.set(k, v);
	}
	const resp = await fetch(url, { method, credentials: "same-origin", cache: "no-store" });
	const text = await resp.text();
	let body = null;
	try { body = JSON.parse(text); } catch { body = null; }
	if (!resp.ok) {
		throw new Error((body && body.error) || `HTTP ${resp.status}`);
	}
	return body;
}

function say(text) {
	$("#status").textContent = text;
}

// act runs an action from a button, reports it and refreshes the page.
async function act(what, fn) {
	try {
		const out = await fn();
		say(`${what}: ${JSON.stringify(out)}`);
	} catch (err) {
		say(`${what} failed: ${err.message}`);
	}
	refresh();
}

function webhookState(s) {
	if (s.disabled_at) return ["disabled since " + when(s.disabled_at), "state-bad"];
	if (s.breaker !== "closed") return ["breaker " + s.breaker, "state-bad"];
	if (s.rate_limited_until) return ["rate limited", "state-warn"];
	if (s.failing_since) return ["failing since " + when(s.failing_since), "state-warn"];
	return ["ok", "state-ok"];
}

function renderWebhooks(stats) {
	const names = Object.keys(stats.endpoints || {}).sort();
	const rows = names.map((name) => {
		const s = stats.endpoints[name];
		const [state, cls] = webhookState(s);
		const actions = el("td", {});
		if (s.disabled_at) {
			actions.append(el("button", { type: "button", class: "enable", onclick: () => act("enable " + name, () => api("POST", "enable", { webhook: name })) }, "Enable"));
		}
		if (s.dead_letters > 0) {
			actions.append(el("button", { type: "button", class: "replay-all", onclick: () => act("replay dead letters of " + name, () => api("POST", "replay", { webhook: name })) }, "Replay dead letters"));
		}
		actions.append(el("button", {
			type: "button", class: "purge danger",
			onclick: () => {
				if (confirm(`Delete every queued message and dead letter of ${name}? This cannot be undone.`)) {
					act("purge " + name, () => api("DELETE", "queue", { webhook: name }));
				}
			},
		}, "Purge"));
		return el("tr", { "data-webhook": name },
			el("th", { scope: "row" }, name, s.schema ? el("div", { class: "schema" }, s.schema) : null),
			el("td", { class: cls }, state, cls !== "state-ok" && s.last_error ? el("div", {}, s.last_error) : null),
			el("td", { class: "num queued" }, s.queued),
			el("td", { class: "num" }, s.in_flight),
			el("td", { class: "num delivered" }, s.delivered),
			el("td", { class: "num failed" }, s.failed),
			el("td", { class: "num" }, s.retried),
			el("td", { class: "num dead" }, s.dead_letters),
			el("td", {}, s.rate_limit || "—"),
			el("td", {}, when(s.last_success)),
			el("td", {}, when(s.last_failure)),
			actions);
	});
	setRows($("#webhooks tbody"), rows, "No webhook is configured.", 12);
}

// The chart shows the change of the delivered and failed counts between
// polls, summed over webhooks.
const samples = [];
let previous = null;

function sample(stats) {
	const now = Date.now();
	let delivered = 0, failed = 0;
	for (const s of Object.values(stats.endpoints || {})) {
		delivered += s.delivered;
		failed += s.failed;
	}
	if (previous) {
		const secs = Math.max((now - previous.at) / 1000, 0.001);
		samples.push({ ok: Math.max(delivered - previous.delivered, 0) / secs, bad: Math.max(failed - previous.failed, 0) / secs });
		if (samples.length > CHART_POINTS) samples.shift();
	}
	previous = { at: now, delivered, failed };
	drawChart();
}

function drawChart() {
	const canvas = $("#rate");
	const ctx = canvas.getContext("2d");
	const w = canvas.width, h = canvas.height, pad = 24;
	ctx.clearRect(0, 0, w, h);
	const top = Math.max(1, ...samples.map((p) => Math.max(p.ok, p.bad)));
	ctx.fillStyle = "#57606a";
	ctx.font = "12px system-ui, sans-serif";
	ctx.fillText(top.toFixed(1) + "/s", 4, 14);
	ctx.strokeStyle = "#d0d7de";
	ctx.beginPath();
	ctx.moveTo(pad, h - pad + 0.5);
	ctx.lineTo(w, h - pad + 0.5);
	ctx.stroke();
	const step = (w - pad) / (CHART_POINTS - 1);
	for (const [key, color] of [["ok", "#1a7f37"], ["bad", "#c62828"]]) {
		ctx.strokeStyle = color;
		ctx.lineWidth = 2;
		ctx.beginPath();
		samples.forEach((p, i) => {
			const x = pad + (CHART_POINTS - samples.length + i) * step;
			const y = h - pad - (p[key] / top) * (h - 2 * pad);
			if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
		});
		ctx.stroke();
	}
	const last = samples[samples.length - 1];
	canvas.setAttribute("aria-label", last
		? `Now ${last.ok.toFixed(1)} delivered and ${last.bad.toFixed(1)} failed attempts per second; peak ${top.toFixed(1)} per second over the last ${samples.length} samples.`
		: "No data yet");
}

// attemptsSummary lists the statuses of the attempts kept, a replayed
// message's earlier ones included.
function attemptsSummary(m) {
	const h = m.history || [];
	return h.length ? h.map((a) => a.status || a.class).join(", ") : "none yet";
}

function renderMessages(list, caption) {
	$("#messages-caption").textContent = caption;
	const rows = list.map((m) => el("tr", { "data-id": m.id, "data-webhook": m.webhook },
		el("td", { class: "mono" }, m.id),
		el("td", {}, m.webhook),
		el("td", {}, m.state),
		el("td", { class: "mono" }, m.conversation || "—"),
		el("td", {}, when(m.created)),
		el("td", {}, attemptsSummary(m)),
		el("td", {}, el("button", { type: "button", class: "show", onclick: () => showMessage(m.id, m.webhook) }, "Show"))));
	setRows($("#messages tbody"), rows, "No messages.", 7);
}

async function showMessage(id, webhook) {
	let list;
	try {
		list = await api("GET", "message", { id, webhook });
	} catch (err) {
		say(`message ${id}: ${err.message}`);
		return;
	}
	const m = list[0];
	const fields = [["Event id", m.id], ["Webhook", m.webhook], ["State", m.state], ["Conversation", m.conversation],
		["Created", when(m.created)], ["Delivered", m.delivered_at && when(m.delivered_at)], ["Dead since", m.dead_at && when(m.dead_at)],
		["Reason", m.reason], ["Next attempt", m.next && when(m.next)], ["Trace", m.traceparent]];
	$("#detail-fields").replaceChildren(...fields.filter(([, v]) => v).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
	setRows($("#detail-attempts tbody"), (m.history || []).map((a) => el("tr", {},
		el("td", {}, when(a.at)),
		el("td", { class: "num" }, (a.duration_ns / 1e6).toFixed(1) + " ms"),
		el("td", { class: "num" }, a.status || "—"),
		el("td", {}, a.class || "delivered"),
		el("td", {}, a.error || ""),
		el("td", { class: "mono" }, a.response || ""))), "No attempt yet.", 6);
	$("#detail-headers").textContent = Object.entries(m.headers || {}).map(([k, vs]) => vs.map((v) => `${k}: ${v}`).join("\n")).join("\n") || "(none yet)";
	$("#detail-body").textContent = JSON.stringify(m.body, null, 2);
	$("#detail").hidden = false;
	$("#detail-title").textContent = `Message ${m.id} to ${m.webhook}`;
	$("#detail-title").focus();
}

function renderDead(list) {
	const rows = list.map((m) => el("tr", { "data-id": m.id, "data-webhook": m.webhook },
		el("td", { class: "mono" }, m.id),
		el("td", {}, m.webhook),
		el("td", {}, m.reason),
		el("td", { class: "num" }, m.last_status || "—"),
		el("td", {}, m.last_error || ""),
		el("td", {}, when(m.dead_at)),
		el("td", {},
			el("button", { type: "button", class: "replay", "aria-label": `Replay ${m.id} to ${m.webhook}`,
				onclick: () => act("replay " + m.id, () => api("POST", "replay", { webhook: m.webhook, id: m.id })) }, "Replay"),
			el("button", { type: "button", class: "delete danger", "aria-label": `Delete ${m.id} of ${m.webhook}`,
				onclick: () => {
					if (confirm(`Delete dead letter ${m.id} for good?`)) {
						act("delete " + m.id, () => api("DELETE", "dead_letter", { webhook: m.webhook, id: m.id }));
					}
				} }, "Delete"))));
	setRows($("#dead tbody"), rows, "No dead letters.", 7);
}

// search holds the current search; null shows recent messages.
let search = null;

async function loadMessages() {
	if (!search) {
		const state = $("#state").value;
		const page = await api("GET", "messages", { state, limit: 20 });
		renderMessages(page.messages, `Recent ${state} messages, newest first`);
		return;
	}
	if (search.by === "id") {
		try {
			renderMessages(await api("GET", "message", { id: search.q }), `Messages with event id ${search.q}`);
		} catch (err) {
			renderMessages([], `No message with event id ${search.q} (${err.message})`);
		}
		return;
	}
	const page = await api("GET", "messages", { state: search.state, conversation: search.q, limit: 100 });
	renderMessages(page.messages, `${search.state} messages of conversation ${search.q}`);
}

let refreshing = false;

async function refresh() {
	if (refreshing) return;
	refreshing = true;
	try {
		const stats = await api("GET", "stats");
		renderWebhooks(stats);
		sample(stats);
		renderDead((await api("GET", "messages", { state: "dead", limit: 50 })).messages);
		await loadMessages();
		$("#updated").textContent = "Updated " + new Date().toLocaleTimeString();
	} catch (err) {
		say("Cannot read the admin API: " + err.message);
	} finally {
		refreshing = false;
	}
}

$("#search").addEventListener("submit", (ev) => {
	ev.preventDefault();
	const q = $("#q").value.trim();
	search = q ? { q, by: $("#by").value, state: $("#state").value } : null;
	refresh();
});
$("#clear").addEventListener("click", () => {
	search = null;
	$("#q").value = "";
	refresh();
});
$("#state").addEventListener("change", () => refresh());

refresh();
setInterval(refresh, POLL_MS);
