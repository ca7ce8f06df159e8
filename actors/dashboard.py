"""GET /dashboard: one self-contained, read-only page (no build step, no CDN) that watches the cluster live.

It reads only what the member already serves: the JSON gateway (status, member list, alarms, ranges) and
/metrics, every 2 s, from the page itself; it renders without any user action. Shown: members by name with
the leader marked, term, raft and applied index, db size against the quota, request rate and WAL fsync
p99 over the last minutes (small SVG charts from successive scrapes), alarms, and a key browser (prefix
listing with values and revisions). It writes nothing. Access control follows the security issue.
"""

from __future__ import annotations

from trikv.actors.httpmsg import HttpRequest, HttpResponse, Route, method_not_allowed

DASHBOARD_PATH = "/dashboard"

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trikv dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2733}
header{background:#1d2733;color:#fff;padding:10px 18px;display:flex;gap:18px;align-items:baseline}
header h1{font-size:18px;margin:0}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:14px;padding:14px}
section{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:10px 14px}
h2{font-size:15px;margin:4px 0 8px}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:3px 6px;border-bottom:1px solid #eef0f3;font-variant-numeric:tabular-nums}
.leader{font-weight:bold;color:#0a7d32}
.bad{color:#b3261e;font-weight:bold}
.bar{height:12px;background:#e8ecf0;border-radius:6px;overflow:hidden}
.bar div{height:100%;background:#3a7bd5}
svg{width:100%;height:90px;background:#fbfcfd;border:1px solid #eef0f3}
code{font-family:ui-monospace,monospace;word-break:break-all}
#error{color:#b3261e}
</style></head>
<body>
<header><h1>trikv</h1><span id="cluster">connecting...</span><span id="error"></span></header>
<main>
<section><h2>Members</h2><table id="members"><thead><tr><th>name</th><th>id</th><th>role</th>
<th>client URLs</th></tr></thead><tbody></tbody></table></section>
<section><h2>Raft</h2><table><tbody>
<tr><th>leader</th><td id="leader">-</td></tr><tr><th>term</th><td id="term">-</td></tr>
<tr><th>raft index</th><td id="raftIndex">-</td></tr>
<tr><th>applied index</th><td id="appliedIndex">-</td></tr>
<tr><th>revision</th><td id="revision">-</td></tr></tbody></table></section>
<section><h2>Database</h2><div id="dbText">-</div><div class="bar"><div id="dbBar" style="width:0"></div></div>
<h2>Alarms</h2><div id="alarms">-</div></section>
<section><h2>Requests/s <span id="rateNow"></span></h2><svg id="rateChart" viewBox="0 0 300 90"
preserveAspectRatio="none"></svg>
<h2>WAL fsync p99 <span id="fsyncNow"></span></h2><svg id="fsyncChart" viewBox="0 0 300 90"
preserveAspectRatio="none"></svg></section>
<section style="grid-column:1/-1"><h2>Keys</h2>
<label>prefix <input id="prefix" value="" size="30"></label> <span id="keyCount"></span>
<table id="keys"><thead><tr><th>key</th><th>value</th><th>create rev</th><th>mod rev</th><th>version</th>
<th>lease</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
"use strict";
const POLL_MS = 2000, HISTORY = 150, KEY_LIMIT = 100;
const samples = [];  // {t, requests, fsyncBuckets}
const enc = new TextEncoder(), dec = new TextDecoder();
const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
const unb64 = (s) => Uint8Array.from(atob(s || ""), (c) => c.charCodeAt(0));
const hex = (id) => (id === undefined || id === null) ? "0" : BigInt(id).toString(16);
const $ = (id) => document.getElementById(id);
function text(el, value) { el.textContent = value; }
function human(n) {
  const u = ["B", "kB", "MB", "GB", "TB"]; let i = 0; n = Number(n || 0);
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
async function post(path, body) {
  const r = await fetch(path, {method: "POST", body: JSON.stringify(body || {})});
  const j = await r.json();
  if (!r.ok) throw new Error(path + ": " + (j.message || r.status));
  return j;
}
function parseMetrics(body) {
  const out = {requests: 0, fsync: new Map(), quota: 0};
  for (const line of body.split("\n")) {
    if (line.startsWith("#") || !line) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/);
    if (!m) continue;
    const [, name, labels, v] = m, value = Number(v);
    if (name === "grpc_server_handled_total") out.requests += value;
    else if (name === "etcd_server_quota_backend_bytes") out.quota = value;
    else if (name === "etcd_disk_wal_fsync_duration_seconds_bucket") {
      const le = labels.match(/le="([^"]+)"/)[1];
      out.fsync.set(le === "+Inf" ? Infinity : Number(le), value);
    }
  }
  return out;
}
function p99(now, before) {  // from the increase of cumulative buckets between two scrapes
  const les = [...now.keys()].sort((a, b) => a - b);
  const total = (now.get(Infinity) || 0) - ((before && before.get(Infinity)) || 0);
  if (total <= 0) return null;
  for (const le of les) {
    const inc = now.get(le) - ((before && before.get(le)) || 0);
    if (inc >= 0.99 * total) return le;
  }
  return null;
}
function chart(svg, values, fmt) {
  const pts = values.filter((v) => v !== null);
  const max = Math.max(...pts, 1e-9);
  const step = 300 / Math.max(HISTORY - 1, 1), off = HISTORY - values.length;
  const coords = values.map((v, i) => v === null ? null :
    ((off + i) * step).toFixed(1) + "," + (88 - 84 * v / max).toFixed(1)).filter(Boolean);
  svg.innerHTML = '<polyline fill="none" stroke="#3a7bd5" stroke-width="1.5" points="' +
    coords.join(" ") + '"/><text x="4" y="12" font-size="10" fill="#5b6775">max ' + fmt(max) + "</text>";
}
function renderKeys(resp) {
  const body = $("keys").tBodies[0]; body.textContent = "";
  for (const kv of resp.kvs || []) {
    const tr = body.insertRow();
    for (const v of [dec.decode(unb64(kv.key)), dec.decode(unb64(kv.value)), kv.create_revision,
                     kv.mod_revision, kv.version, kv.lease ? hex(kv.lease) : ""]) {
      const td = tr.insertCell(); td.textContent = v === undefined ? "" : v;
    }
  }
  text($("keyCount"), (resp.count || 0) + " key(s)" + (resp.more ? ", first " + KEY_LIMIT + " shown" : ""));
}
function prefixEnd(bytes) {
  const end = Uint8Array.from(bytes);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) { end[i]++; return end.slice(0, i + 1); }
  }
  return new Uint8Array([0]);
}
async function refresh() {
  try {
    const [status, members, alarms, metricsBody] = await Promise.all([
      post("/v3/maintenance/status"), post("/v3/cluster/member/list"),
      post("/v3/maintenance/alarm", {action: "GET"}).catch(() => ({})),
      fetch("/metrics").then((r) => r.text())]);
    const body = $("members").tBodies[0]; body.textContent = "";
    for (const m of members.members || []) {
      const tr = body.insertRow(), isLeader = m.ID === status.leader;
      tr.className = isLeader ? "leader" : "";
      tr.dataset.member = m.name || "";
      for (const v of [m.name || "(unstarted)", hex(m.ID),
                       isLeader ? "leader" : m.isLearner ? "learner" : "follower",
                       (m.clientURLs || []).join(", ")]) tr.insertCell().textContent = v;
    }
    const lead = (members.members || []).find((m) => m.ID === status.leader);
    text($("cluster"), "cluster " + hex(status.header.cluster_id) + " - " + (members.members || []).length +
      " members - served by " + hex(status.header.member_id));
    text($("leader"), status.leader && status.leader !== "0" ? (lead ? lead.name : "") + " (" + hex(status.leader) + ")" : "none");
    $("leader").className = status.leader && status.leader !== "0" ? "leader" : "bad";
    text($("term"), status.raftTerm || 0); text($("raftIndex"), status.raftIndex || 0);
    text($("appliedIndex"), status.raftAppliedIndex || 0); text($("revision"), status.header.revision || 0);
    const met = parseMetrics(metricsBody), size = Number(status.dbSize || 0);
    text($("dbText"), human(size) + " of " + (met.quota > 0 ? human(met.quota) : "no quota") +
      " (in use " + human(status.dbSizeInUse) + ")");
    $("dbBar").style.width = (met.quota > 0 ? Math.min(100, 100 * size / met.quota) : 0).toFixed(1) + "%";
    const list = alarms.alarms || [];
    $("alarms").className = list.length ? "bad" : "";
    text($("alarms"), list.length ? list.map((a) => hex(a.memberID) + ": " + a.alarm).join(", ") : "none");
    const now = {t: performance.now() / 1000, requests: met.requests, fsync: met.fsync};
    const prev = samples[samples.length - 1];
    now.rate = prev ? Math.max(0, (now.requests - prev.requests) / (now.t - prev.t)) : null;
    now.p99 = prev ? p99(now.fsync, prev.fsync) : null;
    samples.push(now); if (samples.length > HISTORY) samples.shift();
    chart($("rateChart"), samples.map((s) => s.rate), (v) => v.toFixed(1));
    chart($("fsyncChart"), samples.map((s) => s.p99 === Infinity ? null : s.p99), (v) => (v * 1000).toFixed(1) + " ms");
    text($("rateNow"), now.rate === null ? "" : "(" + now.rate.toFixed(1) + ")");
    text($("fsyncNow"), now.p99 === null ? "" : "(<= " + (now.p99 * 1000).toFixed(1) + " ms)");
    const key = enc.encode($("prefix").value);
    const req = {key: b64(key.length ? key : new Uint8Array([0])), range_end: b64(prefixEnd(key)), limit: KEY_LIMIT};
    renderKeys(await post("/v3/kv/range", req));
    text($("error"), "");
    document.body.dataset.ready = "true";
  } catch (e) {
    text($("error"), String(e));
  }
}
refresh(); setInterval(refresh, POLL_MS);
$("prefix").addEventListener("input", refresh);
</script></body></html>
"""


def dashboard_route() -> Route:
    body = PAGE.encode()

    async def serve(req: HttpRequest) -> HttpResponse:
        if req.method not in ("GET", "HEAD"):
            return method_not_allowed("GET")
        return HttpResponse(200, body, "text/html; charset=utf-8", (("cache-control", "no-cache"),))

    return serve


def dashboard_routes() -> dict[str, Route]:
    """What the Node adds to each client URL's routes."""
    return {DASHBOARD_PATH: dashboard_route()}


__all__ = ["DASHBOARD_PATH", "PAGE", "dashboard_routes"]
