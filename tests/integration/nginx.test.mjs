// The nginx ingress (deploy/nginx/privydrop.conf.template) in front of the
// cluster: one origin for WebSocket signaling, the API, health and the web client.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import { startCluster } from "../lib/cluster.mjs";
import { closeAll, connect, getJson, join, postJson, request, uniqueRoomId, waitFor } from "./helpers.mjs";

describe("nginx ingress", { timeout: 90000 }, () => {
  let c;
  let web;
  let base;
  before(async () => {
    web = fs.mkdtempSync(path.join(os.tmpdir(), "pd-web-"));
    fs.chmodSync(web, 0o755);
    fs.writeFileSync(path.join(web, "index.html"), "<!doctype html><title>privydrop test index</title>\n");
    fs.mkdirSync(path.join(web, "assets"));
    fs.writeFileSync(path.join(web, "assets", "app.js"), "console.log('app');\n");
    // Through nginx every client arrives from 127.0.0.1 (nginx appends to X-Forwarded-For), so the
    // per-IP join limit would depend on how many hops are trusted; it is not what is tested here.
    c = await startCluster({ workers: 2, nginx: { webRoot: web }, signalEnv: { DISABLE_JOIN_RATE_LIMIT: "1" } });
    base = c.nginx.url;
  });
  after(async () => {
    try {
      await c?.stop();
    } finally {
      fs.rmSync(web, { recursive: true, force: true });
    }
  });

  it("/ serves index.html; unknown paths fall back to it (SPA); assets are served as such", async () => {
    const root = await request(base, "GET", "/");
    assert.equal(root.status, 200);
    assert.match(root.body, /privydrop test index/);
    assert.match(root.headers["content-type"] || "", /text\/html/);
    const deep = await request(base, "GET", "/some/client/route?x=1");
    assert.equal(deep.status, 200);
    assert.match(deep.body, /privydrop test index/);
    const js = await request(base, "GET", "/assets/app.js");
    assert.equal(js.status, 200);
    assert.equal(js.body, "console.log('app');\n");
    assert.match(js.headers["content-type"] || "", /javascript/);
  });

  it("/health, /health/detailed and /api/* go to the room API", async () => {
    const h = await getJson(base, "/health");
    assert.equal(h.status, 200);
    assert.equal(h.json.service, "privydrop-backend");
    const d = await getJson(base, "/health/detailed");
    assert.equal(d.status, 200);
    assert.equal(d.json.dependencies.redis.status, "connected");
    const g = await getJson(base, "/api/get_room");
    assert.match(g.json.roomId, /^\d{4}$/);
    const id = uniqueRoomId("ng");
    const cr = await postJson(base, "/api/create_room", { roomId: id });
    assert.deepEqual(cr.json, { success: true, message: "create room success" });
  });

  it("/socket.io/ goes to the signal workers (Engine.IO error body for an unknown transport)", async () => {
    const r = await request(base, "GET", "/socket.io/?EIO=4&transport=smoke-signal");
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { code: 0, message: "Transport unknown" });
  });

  it("long-polling through nginx's round robin (no affinity): polling-only and default-transport clients relay", async () => {
    const roomId = uniqueRoomId("ngxp");
    await postJson(base, "/api/create_room", { roomId });
    const p = await connect(base, { transports: ["polling"] });
    const d = await connect(base, { transports: ["polling", "websocket"] });
    try {
      assert.equal((await join(p, roomId)).success, true);
      assert.equal((await join(d, roomId)).success, true);
      p.emit("offer", { peerId: d.id, offer: { type: "offer", sdp: "v=0\r\n" } });
      assert.equal((await waitFor(d, "offer")).from, p.id);
      d.emit("answer", { peerId: p.id, answer: { type: "answer", sdp: "v=0\r\n" } });
      assert.equal((await waitFor(p, "answer")).from, d.id);
    } finally {
      p.close();
      d.close();
    }
  });

  it("socket.io-client over nginx: join, ready and relay between two clients", async () => {
    const roomId = uniqueRoomId("ngx");
    await postJson(base, "/api/create_room", { roomId });
    const socks = [];
    try {
      // nginx spreads clients over both workers; a few clients make a cross-worker pair likely.
      for (let i = 0; i < 4; i++) socks.push(await connect(base));
      for (const s of socks) assert.equal((await join(s, roomId)).success, true);
      // ready from peers on different workers may arrive in any order.
      for (const s of socks.slice(1)) {
        assert.deepEqual(await waitFor(socks[0], "ready", { pred: (p) => p.peerId === s.id }), { peerId: s.id });
      }
      for (let i = 1; i < socks.length; i++) {
        socks[0].emit("offer", { peerId: socks[i].id, offer: { type: "offer", sdp: `to-${i}` } });
        assert.deepEqual(await waitFor(socks[i], "offer"),
          { offer: { type: "offer", sdp: `to-${i}` }, from: socks[0].id, peerId: socks[0].id });
      }
    } finally {
      closeAll(socks);
    }
  });
});
