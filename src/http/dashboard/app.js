// The code-runner dashboard: views over the admin JSON API, kept live by
// the server's event stream (/admin/api/events). No build step, no
// framework, no polling: a view is fetched again when an event says it
// changed.
"use strict";

const STATES = ["waiting", "active", "completed", "failed", "delayed", "cancelled"];
const VERDICTS = ["accepted", "wrong_answer", "compilation_error", "runtime_error",
  "time_limit_exceeded", "memory_limit_exceeded", "output_limit_exceeded", "cancelled", "internal_error"];
const token = new URLSearchParams(location.search).get("token") ||
  new URLSearchParams(location.hash.slice(1)).get("token");
const view = { state: "waiting", page: 1, pageSize: 20, detail: null };

const $ = (selector) => document.querySelector(selector);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "onclick") node.onclick = value; else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
};
const when = (ms) => ms ? new Date(ms).toLocaleTimeString() : "–";
const span = (a, b) => (a && b) ? `${b - a} ms` : "–";
const short = (id) => id ? id.slice(0, 8) : "";

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function renderOverview(o) {
  const counts = $("#counts");
  counts.replaceChildren(...STATES.map((s) => el("div",
    { class: `card${s === view.state ? " selected" : ""}`, "data-state": s, id: `count-${s}`,
      onclick: () => selectState(s) },
    s, el("b", {}, String(o.counts[s] ?? 0)))));
  $("#paused").textContent = o.paused ? "paused" : "running";
  $("#paused").className = `pill${o.paused ? " warn" : ""}`;
  $("#pause").hidden = o.paused; $("#resume").hidden = !o.paused;
  // Jobs per minute: newest first from the server, drawn oldest left.
  const points = (list) => [...list].reverse();
  const completed = points(o.completed_per_minute), failed = points(o.failed_per_minute);
  const max = Math.max(1, ...completed, ...failed);
  const line = (data) => data.map((v, i) => `${(i / Math.max(1, data.length - 1)) * 300},${58 - (v / max) * 54}`).join(" ");
  $("#throughput").innerHTML =
    `<polyline fill="none" stroke="#1a7f37" stroke-width="2" points="${line(completed)}"/>` +
    `<polyline fill="none" stroke="#cf222e" stroke-width="2" points="${line(failed)}"/>`;
  $("#this-minute").textContent =
    `this minute so far: ${o.completed_per_minute[0] ?? 0} completed, ${o.failed_per_minute[0] ?? 0} failed`;
  const l = o.latency;
  const row = (name, p) => el("tr", {}, el("th", {}, name), el("td", {}, String(p.p50)), el("td", {}, String(p.p90)),
    el("td", {}, String(p.p99)), el("td", {}, String(p.max)));
  $("#latency").replaceChildren(
    el("tr", {}, el("th", {}, `over ${l.sample} jobs`), el("th", {}, "p50"), el("th", {}, "p90"), el("th", {}, "p99"), el("th", {}, "max")),
    row("queue wait", l.queue_wait_ms), row("run", l.run_ms), row("end to end", l.end_to_end_ms));
}

function renderTabs() {
  $("#tabs").replaceChildren(...STATES.map((s) =>
    el("button", { class: s === view.state ? "selected" : "", onclick: () => selectState(s) }, s)));
}

function selectState(state) {
  view.state = state; view.page = 1;
  renderTabs();
  document.querySelectorAll(".card").forEach((c) => c.classList.toggle("selected", c.dataset.state === state));
  loadJobs();
}

function filterQuery() {
  const params = new URLSearchParams({ state: view.state, page: view.page, page_size: view.pageSize });
  const language = $("#f-language").value, verdict = $("#f-verdict").value;
  const since = $("#f-since").value, until = $("#f-until").value;
  if (language) params.set("language", language);
  if (verdict) params.set("verdict", verdict);
  if (since) params.set("since_ms", new Date(since).getTime());
  if (until) params.set("until_ms", new Date(until).getTime());
  if (token) params.set("token", token);
  return params;
}

async function loadJobs() {
  try {
    const page = await api(`/admin/api/jobs?${filterQuery()}`);
    const rows = page.jobs.map((j) => el("tr", { "data-id": j.id, onclick: () => openDetail(j.id) },
      el("td", { class: "mono", title: j.id }, short(j.id)),
      el("td", {}, j.language),
      el("td", { class: `verdict-${j.verdict || ""}` }, j.verdict || (j.failed_reason ? "failed" : "")),
      el("td", {}, when(j.submitted_at_ms)),
      el("td", {}, span(j.started_at_ms, j.finished_at_ms)),
      el("td", {}, String(j.attempts_made)),
      el("td", { class: "mono" }, j.worker_id || "")));
    $("#job-list tbody").replaceChildren(...rows);
    const pages = Math.max(1, Math.ceil(page.total / page.page_size));
    $("#page-info").textContent = `page ${page.page} of ${pages} · ${page.total} ${view.state}`;
    $("#prev").disabled = page.page <= 1; $("#next").disabled = page.page >= pages;
  } catch (e) { $("#page-info").textContent = e.message; }
}

async function openDetail(id) {
  view.detail = id;
  const box = $("#detail");
  box.hidden = false;
  try {
    const d = await api(`/admin/api/jobs/${id}${token ? `?token=${encodeURIComponent(token)}` : ""}`);
    const r = d.result || {};
    const spec = d.spec || {};
    const code = spec.code ?? (spec.files || []).map((f) => `// ${f.name}\n${f.content}`).join("\n\n");
    const actions = [];
    if (d.state === "failed") actions.push(el("button", { id: "detail-retry", onclick: () => act(`/admin/api/jobs/${id}/retry`, "POST") }, "Retry"));
    if (d.state === "waiting" || d.state === "active") actions.push(el("button", { id: "detail-cancel", onclick: () => act(`/admin/api/jobs/${id}/cancel`, "POST") }, "Cancel"));
    if (d.state !== "active") actions.push(el("button", { id: "detail-remove", onclick: () => act(`/admin/api/jobs/${id}`, "DELETE") }, "Remove"));
    const timeline = (r.timeline || []).map((m) => `${when(m.at_ms)}  ${m.phase}  ${m.container_id ? m.container_id.slice(0, 12) : ""}`).join("\n");
    box.replaceChildren(
      el("h3", {}, `Job ${id}`),
      el("div", {}, ...actions, " ", el("button", { onclick: () => { box.hidden = true; view.detail = null; } }, "Close")),
      el("dl", {},
        el("dt", {}, "state"), el("dd", { id: "detail-state" }, d.state + (d.phase ? ` (${d.phase})` : "")),
        el("dt", {}, "language"), el("dd", {}, `${d.language || spec.language || ""} ${r.version || ""}`),
        el("dt", {}, "verdict"), el("dd", { class: `verdict-${r.verdict || ""}` }, r.verdict ? `${r.verdict}${r.time_limit ? ` (${r.time_limit})` : ""}${r.message ? ` — ${r.message}` : ""}` : "–"),
        el("dt", {}, "exit code / signal"), el("dd", {}, `${r.exit_code ?? "–"} / ${r.signal ?? "–"}`),
        el("dt", {}, "wall / cpu / memory"), el("dd", {}, r.verdict ? `${r.wall_time_ms} ms / ${r.cpu_time_ms} ms / ${Math.round((r.memory_peak_bytes || 0) / 1024)} KiB` : "–"),
        el("dt", {}, "attempts"), el("dd", {}, String(d.attempts_made)),
        el("dt", {}, "worker"), el("dd", { class: "mono" }, d.worker_id || "–"),
        el("dt", {}, "submitted / started / finished"), el("dd", {}, `${when(d.submitted_at_ms)} / ${when(d.started_at_ms)} / ${when(d.finished_at_ms)}`),
        el("dt", {}, "limits"), el("dd", { class: "mono" }, JSON.stringify(spec.limits || "defaults")),
        el("dt", {}, "error"), el("dd", { class: "bad" }, d.error || "–")),
      el("h3", {}, "code"), el("pre", {}, code || ""),
      el("h3", {}, "stdin"), el("pre", {}, spec.stdin || ""),
      el("h3", {}, "stdout"), el("pre", { id: "detail-stdout" }, r.stdout || ""),
      el("h3", {}, "stderr"), el("pre", {}, r.stderr || ""),
      ...(r.compile_output !== undefined ? [el("h3", {}, "compile output"), el("pre", {}, r.compile_output)] : []),
      el("h3", {}, "timeline (phase, container)"), el("pre", { id: "detail-timeline" }, timeline || "–"));
  } catch (e) { box.replaceChildren(el("p", { class: "bad" }, e.message)); }
}

async function act(path, method, body) {
  try {
    await api(`${path}${token ? `?token=${encodeURIComponent(token)}` : ""}`, { method, body: body ? JSON.stringify(body) : undefined });
  } catch (e) { alert(e.message); }
  loadJobs();
  if (view.detail) openDetail(view.detail);
}

function renderActors(a) {
  const node = (n) => {
    const d = n.detail || {};
    let label = n.kind;
    if (n.kind === "Dispatcher") label += ` · worker ${d.worker_id} · ${d.slots_in_use}/${d.cap} slots`;
    if (n.kind === "ContainerRunner") label += ` · job ${short(d.job_id)} · ${d.language} · ${d.phase} · ${Math.round(d.running_ms / 100) / 10} s`;
    return el("li", { class: n.alive ? "" : "dead", "data-kind": n.kind, "data-job": d.job_id },
      `${n.alive ? "●" : "○"} ${label}`, n.children && n.children.length ? el("ul", { class: "tree" }, ...n.children.map(node)) : "");
  };
  $("#tree").replaceChildren(node(a.tree));
  const restarts = Object.entries(a.restarts || {});
  $("#restarts").replaceChildren(el("h3", {}, "Restarts"), restarts.length
    ? el("ul", {}, ...restarts.map(([name, r]) => el("li", {}, `${name}: ${r.count} (last: ${r.lastReason})`)))
    : el("p", {}, "none"));
  $("#workers").replaceChildren(el("table", {},
    el("tr", {}, el("th", {}, "worker"), el("th", {}, "host"), el("th", {}, "slots"), el("th", {}, "engine"), el("th", {}, "runners"), el("th", {}, "warm pool"), el("th", {}, "restarts")),
    ...a.workers.map((w) => el("tr", { "data-worker": w.id },
      el("td", { class: "mono" }, w.id), el("td", {}, w.host), el("td", {}, `${w.running}/${w.concurrency}${(w.cpus || []).length ? ` · CPUs ${w.cpus.join(", ")}` : " · not pinned"}`),
      el("td", { class: w.engineOk ? "ok" : "bad" }, w.engineOk ? "ok" : "down"),
      el("td", {}, (w.jobs || []).map((j) => `${short(j.jobId)} ${j.phase}`).join(", ") || "–"),
      el("td", {}, poolText(w.pool)),
      el("td", {}, Object.entries(w.restarts || {}).map(([n, r]) => `${n}: ${r.count}`).join(", ") || "–")))));
}

// A worker's warm pool: idle/wanted per image, and hits vs misses; with
// recycling, the containers waiting for another job and the jobs they served.
function poolText(pool) {
  if (!pool || !pool.enabled) return "off";
  const images = Object.keys(pool.target || {}).sort()
    .map((image) => `${image} ${(pool.idle || {})[image] || 0}/${pool.target[image]}`);
  const recycled = Object.keys(pool.recycled || {}).sort()
    .map((image) => `${image} ${pool.recycled[image]}`);
  // Each recycled container: the jobs it served so far.
  const served = (pool.recycledContainers || [])
    .map((c) => `${c.container} ${c.jobsServed}`).join(", ");
  const reuse = recycled.length
    ? ` · recycled ${recycled.join(", ")} (${pool.recycledJobsServed} jobs served: ${served})`
    : "";
  return `${images.join(", ") || "empty"} · hits ${pool.hits}, misses ${pool.misses}${reuse}`;
}

async function loadSystem() {
  try {
    const s = await api(`/admin/api/system${token ? `?token=${encodeURIComponent(token)}` : ""}`);
    $("#system-body").replaceChildren(el("dl", {},
      el("dt", {}, "Redis"), el("dd", {}, s.redis.ok ? `ok · ${s.redis.version}` : `down · ${s.redis.error}`),
      el("dt", {}, "Docker (this process)"), el("dd", {}, s.docker.ok === null ? s.docker.note : s.docker.ok ? `ok · ${s.docker.version} (API ${s.docker.api_version})` : `down · ${s.docker.error}`),
      el("dt", {}, "runtime"), el("dd", {}, s.runtime)),
      el("table", {}, el("tr", {}, el("th", {}, "language"), el("th", {}, "image"), el("th", {}, "here"), el("th", {}, "versions on workers"), el("th", {}, "runtime")),
        ...s.languages.map((l) => el("tr", {}, el("td", {}, l.id), el("td", { class: "mono" }, l.image),
          el("td", {}, l.image_here === null ? "–" : l.image_here ? "yes" : "missing"),
          el("td", {}, (l.versions_reported || []).join(", ") || l.declared_version), el("td", {}, l.runtime)))));
  } catch (e) { $("#system-body").textContent = e.message; }
}

function connect() {
  const source = new EventSource(`/admin/api/events${token ? `?token=${encodeURIComponent(token)}` : ""}`);
  let jobsDirty = false;
  source.onopen = () => { $("#live").textContent = "live"; $("#live").className = "pill"; };
  source.onerror = () => { $("#live").textContent = "reconnecting…"; $("#live").className = "pill off"; };
  source.addEventListener("overview", (e) => {
    renderOverview(JSON.parse(e.data));
    if (jobsDirty) { jobsDirty = false; loadJobs(); if (view.detail) openDetail(view.detail); }
  });
  source.addEventListener("actors", (e) => renderActors(JSON.parse(e.data)));
  source.addEventListener("job", () => { jobsDirty = true; });
}

function init() {
  renderTabs();
  for (const language of ["python", "c", "cpp", "javascript", "bash", "go", "rust", "java"]) $("#f-language").append(el("option", {}, language));
  for (const verdict of VERDICTS) $("#f-verdict").append(el("option", {}, verdict));
  $("#filters").onsubmit = (e) => { e.preventDefault(); view.page = 1; loadJobs(); };
  $("#prev").onclick = () => { view.page = Math.max(1, view.page - 1); loadJobs(); };
  $("#next").onclick = () => { view.page += 1; loadJobs(); };
  $("#pause").onclick = () => act("/admin/api/queue/pause", "POST");
  $("#resume").onclick = () => act("/admin/api/queue/resume", "POST");
  $("#retry-failed").onclick = () => act("/admin/api/jobs/retry-failed", "POST");
  $("#clean").onclick = () => act("/admin/api/clean", "POST", { state: $("#clean-state").value, older_than_secs: Number($("#clean-age").value) });
  $("#find").onsubmit = (e) => { e.preventDefault(); const id = $("#find-id").value.trim(); if (id) openDetail(id); };
  api(`/admin/api/overview${token ? `?token=${encodeURIComponent(token)}` : ""}`).then(renderOverview).catch(() => {});
  loadJobs();
  loadSystem();
  connect();
}

init();
