// Long-polling at its limits (docs/wire-protocol.md §Long-polling): a client
// that stops polling while packets pile up, the GET that comes right after
// an upgrade probe, and waiting GETs from many sessions behind one address.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";

import { startCluster } from "../lib/cluster.mjs";
import { RawWs, sleep } from "./helpers.mjs";

const Q = "/socket.io/?EIO=4&transport=polling";

function hreq(port, method, path, { body, timeout = 15000 } = {}) {
  return new Promise((resolve) => {
    const headers = body !== undefined ? { "content-length": String(Buffer.byteLength(body)) } : {};
    const req = http.request({ host: "127.0.0.1", port, method, path, headers, agent: false }, (res) => {
      let b = "";
      res.on("data", (d) => (b += d));
      res.on("end", () => resolve({ status: res.statusCode, body: b }));
    });
    req.setTimeout(timeout, () => req.destroy(new Error("timeout")));
    req.on("error", (e) => resolve({ status: 0, body: e.message }));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function openSession(port) {
  const r = await hreq(port, "GET", Q);
  assert.equal(r.status, 200, r.body);
  const sid = JSON.parse(r.body.slice(1)).sid;
  const S = `${Q}&sid=${sid}`;
  assert.equal((await hreq(port, "POST", S, { body: "40" })).body, "ok");
  assert.match((await hreq(port, "GET", S)).body, /^40\{/);
  return S;
}

const metric = async (port, name) => {
  const { body } = await hreq(port, "GET", "/metrics");
  const m = new RegExp(`^${name.replace(/[{}"]/g, "\\$&")} (\\d+)`, "m").exec(body);
  return m ? Number(m[1]) : 0;
};

/** Until a gauge of the worker reads `want` (a hang guard, not a clock). */
async function waitMetric(port, name, want) {
  const end = Date.now() + 15000;
  for (;;) {
    if ((await metric(port, name)) === want) return;
    if (Date.now() > end) assert.fail(`${name} never reached ${want}`);
    await sleep(20);
  }
}

describe("long-polling limits", { timeout: 120000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({
      workers: 1,
      roomApi: false,
      // 127.0.0.1 is not a trusted proxy here, so it is the client address;
      // 4 short-lived HTTP connections per address, 10 sessions.
      workerEnv: [{ PD_MAX_SEND_QUEUE_BYTES: "4096", PD_PING_INTERVAL_MS: "60000", PD_PING_TIMEOUT_MS: "60000",
        PD_TRUSTED_PROXIES: "10.0.0.0/8", PD_HTTP_MAX_CONNS_PER_IP: "4", PD_MAX_CONNS_PER_IP: "10" }],
    });
  });
  after(async () => {
    await c?.stop();
  });

  it("a client that never GETs while its packets pile up past PD_MAX_SEND_QUEUE_BYTES is closed (send_queue_full), the worker unharmed", async () => {
    const port = c.workers[0].port;
    const before = await metric(port, 'privydrop_signal_sessions_closed_total{reason="send_queue_full"}');
    const S = await openSession(port);
    // 70 pings of 63 bytes: their pongs (4.4 KB) overflow the 4 KiB queue.
    const pings = Array.from({ length: 70 }, (_, i) => "2" + String(i).padStart(62, "x")).join("\x1e");
    assert.equal((await hreq(port, "POST", S, { body: pings })).status, 200);
    const g = await hreq(port, "GET", S);
    assert.ok(g.body === "1" || g.status === 400, `the session is over: ${g.status} ${g.body}`);
    assert.equal((await hreq(port, "GET", S)).status, 400);
    assert.equal(await metric(port, 'privydrop_signal_sessions_closed_total{reason="send_queue_full"}'), before + 1);
    assert.equal((await hreq(port, "GET", "/healthz")).status, 200);
    assert.equal(c.workers[0].proc.running, true);
  });

  it("a GET that arrives after the probe's 2probe is answered with a noop at once, not at the next ping", async () => {
    const port = c.workers[0].port;
    const S = await openSession(port);
    const ws = await RawWs.connect(port, `/socket.io/?EIO=4&transport=websocket&${S.split("&").pop()}`);
    try {
      ws.send("2probe");
      assert.equal(await ws.nextText(), "3probe");
      // The ping is 60 s away; the GET's own timeout (15 s) is the hang guard.
      const g = await hreq(port, "GET", S);
      assert.equal(g.body, "6");
      ws.send("5");
      await sleep(100);
      assert.equal((await hreq(port, "GET", S)).status, 400, "polling is over after the upgrade");
    } finally {
      ws.close();
    }
  });

  it("waiting GETs of many sessions from one address do not use up its short-lived HTTP connections", async () => {
    const port = c.workers[0].port;
    const sessions = [];
    for (let i = 0; i < 5; i++) sessions.push(await openSession(port));
    // Five waiting GETs, more than the 4 HTTP connections the address may
    // hold; each is parked before the next connects.
    const waits = [];
    for (const S of sessions) {
      waits.push(hreq(port, "GET", S, { timeout: 20000 }));
      await waitMetric(port, "privydrop_signal_poll_gets_waiting", waits.length);
    }
    const post = await hreq(port, "POST", sessions[0], { body: "2x" });
    assert.equal(post.status, 200, `a POST still gets in: ${post.status} ${post.body}`);
    assert.equal((await hreq(port, "GET", "/healthz")).status, 200);
    assert.equal((await waits[0]).body, "3x");
    for (const S of sessions.slice(1)) assert.equal((await hreq(port, "POST", S, { body: "1" })).status, 200);
    await Promise.all(waits);
  });
});

describe("long-polling limits across workers", { timeout: 120000 }, () => {
  let c;
  const env = { PD_PING_INTERVAL_MS: "60000", PD_PING_TIMEOUT_MS: "60000", PD_TRUSTED_PROXIES: "10.0.0.0/8",
    PD_HTTP_MAX_CONNS_PER_IP: "4", PD_MAX_CONNS_PER_IP: "6" };
  before(async () => {
    c = await startCluster({ workers: 2, roomApi: false, workerEnv: [env, env] });
  });
  after(async () => {
    await c?.stop();
  });

  it("GETs forwarded to the owner wait without using up the address's short-lived HTTP connections there", async () => {
    const [own, other] = c.workers.map((w) => w.port);
    const sessions = [];
    for (let i = 0; i < 5; i++) sessions.push(await openSession(own));
    // Five GETs through the other worker, more than its 4 HTTP connections
    // per address; each is forwarded before the next connects.
    const waits = [];
    for (const S of sessions) {
      waits.push(hreq(other, "GET", S, { timeout: 20000 }));
      await waitMetric(other, "privydrop_signal_poll_forward_pending", waits.length);
    }
    const post = await hreq(other, "POST", sessions[0], { body: "2x" });
    assert.equal(post.status, 200, `a POST still gets in: ${post.status} ${post.body}`);
    assert.equal((await waits[0]).body, "3x");
    for (const S of sessions) await hreq(own, "POST", S, { body: "1" });
    const rest = await Promise.all(waits.slice(1));
    for (const r of rest) assert.equal(r.status, 200, `${r.status} ${r.body}`);
  });

  it("WebSockets tunnelling to another worker's sessions count against the address's session cap", async () => {
    const [own, other] = c.workers.map((w) => w.port);
    const S = await openSession(own);
    const tag = /sid=(.{8})/.exec(S)[1];
    const open = [];
    try {
      // Made-up sessions under a live worker's tag: each would be a tunnel.
      for (let i = 0; i < 6; i++) {
        open.push(await RawWs.connect(other, `/socket.io/?EIO=4&transport=websocket&sid=${tag}${"x".repeat(19)}${i}`));
      }
      await assert.rejects(RawWs.connect(other, `/socket.io/?EIO=4&transport=websocket&sid=${tag}${"y".repeat(20)}`),
        (e) => e.status === 429);
    } finally {
      for (const ws of open) ws.close();
      await hreq(own, "POST", S, { body: "1" });
    }
  });
});
