// Room API routes (docs/wire-protocol.md §Room API) against a real Redis, with peers on two workers.
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import { after, before, describe, it } from "node:test";

import { startCluster } from "../lib/cluster.mjs";
import {
  closeAll, connect, createRoom, eventually, expectNothing, getJson, join, postJson, request, sleep,
  uniqueRoomId, waitFor,
} from "./helpers.mjs";

const ORIGIN = "http://app.example.test";
const ORIGIN2 = "http://second.example.test";

describe("room API", { timeout: 180000 }, () => {
  let c;
  let api;
  before(async () => {
    c = await startCluster({ workers: 2, corsOrigin: `${ORIGIN},${ORIGIN2}`, env: { NODE_ENV: "integration" } });
    api = c.roomApi.url;
  });
  after(async () => {
    await c?.stop();
  });

  // First on purpose: no other socket is open in this cluster yet.
  it("/health/detailed: redis connected, socketio.connections = open sockets on both workers", async () => {
    const r0 = await eventually("connections back to 0", async () => {
      const r = await getJson(api, "/health/detailed");
      return r.json?.dependencies?.socketio?.connections === 0 ? r : null;
    });
    assert.equal(r0.status, 200);
    const socks = [
      await connect(c.workers[0].url), await connect(c.workers[1].url), await connect(c.workers[1].url),
      await connect(c.workers[0].url), await connect(c.workers[1].url),
    ];
    try {
      const r = await getJson(api, "/health/detailed");
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.status, "healthy");
      assert.equal(r.json.dependencies.redis.status, "connected");
      assert.equal(r.json.dependencies.socketio.status, "running");
      assert.equal(r.json.dependencies.socketio.connections, 5);
      assert.equal(typeof r.json.system, "object");
      assert.equal(r.json.service, "privydrop-backend");
      // One closes: the count follows.
      socks[1].close();
      await eventually("connections = 4 after one close", async () =>
        (await getJson(api, "/health/detailed")).json.dependencies.socketio.connections === 4);
    } finally {
      closeAll(socks);
    }
    await eventually("connections = 0 after all close", async () =>
      (await getJson(api, "/health/detailed")).json.dependencies.socketio.connections === 0);
  });

  for (const route of ["/health", "/api/health"]) {
    it(`GET ${route}: status, timestamp, uptime, service, version, environment`, async () => {
      const r = await getJson(api, route);
      assert.equal(r.status, 200);
      assert.match(r.headers["content-type"] || "", /application\/json/);
      const j = r.json;
      assert.equal(j.status, "healthy");
      assert.equal(j.service, "privydrop-backend");
      assert.equal(j.environment, "integration");
      assert.equal(typeof j.version, "string");
      assert.ok(j.version.length > 0);
      assert.equal(typeof j.uptime, "number");
      assert.ok(j.uptime >= 0 && j.uptime < 3600, `uptime ${j.uptime}`);
      const ts = Date.parse(j.timestamp);
      assert.ok(Number.isFinite(ts), `timestamp parses: ${j.timestamp}`);
      assert.ok(Math.abs(ts - Date.now()) < 60000, "timestamp is now");
    });
  }

  it("GET /api/get_room: 4-digit codes, unique across 50 concurrent callers, created in Redis", async () => {
    const rs = await Promise.all(Array.from({ length: 50 }, () => getJson(api, "/api/get_room")));
    const ids = rs.map((r) => {
      assert.equal(r.status, 200, r.body);
      assert.equal(typeof r.json.roomId, "string");
      return r.json.roomId;
    });
    for (const id of ids) assert.match(id, /^\d{4}$/, `4-digit code: ${id}`);
    assert.equal(new Set(ids).size, 50, `unique: ${ids.join(",")}`);
    for (const id of ids.slice(0, 10)) {
      assert.equal(await c.redisCli("EXISTS", `room:${id}`), "1", `room:${id} exists`);
      const created = Number(await c.redisCli("HGET", `room:${id}`, "created_at"));
      assert.ok(Math.abs(created - Date.now()) < 60000, `created_at in ms: ${created}`);
    }
    // A handed-out code is taken: check_room says it is not available.
    const chk = await postJson(api, "/api/check_room", { roomId: ids[0] });
    assert.deepEqual(chk.json, { available: false });
  });

  it("POST /api/create_room: new, exists ≥ 8 chars, exists shorter, missing", async () => {
    const long = uniqueRoomId("cr");
    let r = await postJson(api, "/api/create_room", { roomId: long });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { success: true, message: "create room success" });
    assert.equal(await c.redisCli("EXISTS", `room:${long}`), "1");
    const ttl = Number(await c.redisCli("TTL", `room:${long}`));
    assert.ok(ttl > 86000 && ttl <= 86400, `new room TTL ~24h: ${ttl}`);

    r = await postJson(api, "/api/create_room", { roomId: long });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { success: true, message: "room exists (rejoin allowed)" });

    const short = `s${Math.random().toString(36).slice(2, 7)}`; // 6 chars
    r = await postJson(api, "/api/create_room", { roomId: short });
    assert.deepEqual(r.json, { success: true, message: "create room success" });
    r = await postJson(api, "/api/create_room", { roomId: short });
    assert.deepEqual(r.json, { success: false, message: "roomId is already exists" });

    const seven = `q${Math.random().toString(36).slice(2, 8)}`.padEnd(7, "x").slice(0, 7);
    await postJson(api, "/api/create_room", { roomId: seven });
    r = await postJson(api, "/api/create_room", { roomId: seven });
    assert.deepEqual(r.json, { success: false, message: "roomId is already exists" }, "7 chars is 'shorter'");
    const eight = `${seven}y`;
    await postJson(api, "/api/create_room", { roomId: eight });
    r = await postJson(api, "/api/create_room", { roomId: eight });
    assert.deepEqual(r.json, { success: true, message: "room exists (rejoin allowed)" }, "8 chars is enough");

    for (const body of [{}, { roomId: "" }, { other: "x" }]) {
      r = await postJson(api, "/api/create_room", body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.deepEqual(r.json, { error: "Room ID is required" });
    }
  });

  it("POST /api/check_room: available true/false, missing → 400", async () => {
    const id = uniqueRoomId("ck");
    let r = await postJson(api, "/api/check_room", { roomId: id });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { available: true });
    await createRoom(api, id);
    r = await postJson(api, "/api/check_room", { roomId: id });
    assert.deepEqual(r.json, { available: false });
    r = await postJson(api, "/api/check_room", {});
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { error: "Room ID is required" });
  });

  it("POST /api/leave_room: missing fields → 400, unknown room → success + 'Room does not exist.'", async () => {
    for (const body of [{}, { roomId: "abcdefgh" }, { socketId: "abcdefghijklmnopqrst" }, { roomId: "", socketId: "" }]) {
      const r = await postJson(api, "/api/leave_room", body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.deepEqual(r.json, { error: "Room ID and Socket ID are required" });
    }
    const r = await postJson(api, "/api/leave_room", { roomId: uniqueRoomId("nx"), socketId: "abcdefghijklmnopqrst" });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { success: true, message: "Room does not exist." });
  });

  it("POST /api/leave_room: peers on both workers get peer-disconnected, Redis updated, empty room TTL ≈ 900", async () => {
    const roomId = await createRoom(api);
    const a = await connect(c.workers[0].url);
    const b = await connect(c.workers[1].url); // leaves first
    const d = await connect(c.workers[0].url);
    const e = await connect(c.workers[1].url);
    try {
      for (const s of [a, b, d, e]) assert.equal((await join(s, roomId)).success, true);
      assert.equal(await c.redisCli("SCARD", `room:${roomId}:sockets`), "4");

      const r = await postJson(api, "/api/leave_room", { roomId, socketId: b.id });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { success: true, message: "Successfully left the room" });
      // Peers on worker 1 (a, d) and on worker 2 (e) are told.
      for (const s of [a, d, e]) {
        assert.deepEqual(await waitFor(s, "peer-disconnected", { pred: (p) => p.peerId === b.id }), { peerId: b.id });
      }
      assert.equal(await c.redisCli("SISMEMBER", `room:${roomId}:sockets`, b.id), "0");
      assert.equal(await c.redisCli("EXISTS", `socket:${b.id}`), "0");
      assert.equal(await c.redisCli("SISMEMBER", `room:${roomId}:sockets`, a.id), "1");
      const ttlBusy = Number(await c.redisCli("TTL", `room:${roomId}`));
      assert.ok(ttlBusy > 86000, `room with members keeps its long TTL: ${ttlBusy}`);

      // The others leave through the API too; the last one empties the room.
      await postJson(api, "/api/leave_room", { roomId, socketId: a.id });
      assert.deepEqual(await waitFor(e, "peer-disconnected", { pred: (p) => p.peerId === a.id }), { peerId: a.id });
      await postJson(api, "/api/leave_room", { roomId, socketId: d.id });
      await postJson(api, "/api/leave_room", { roomId, socketId: e.id });
      await eventually("room set empty", async () => (await c.redisCli("SCARD", `room:${roomId}:sockets`)) === "0");
      assert.equal(await c.redisCli("EXISTS", `room:${roomId}`), "1", "the empty room still exists");
      const ttl = Number(await c.redisCli("TTL", `room:${roomId}`));
      assert.ok(ttl > 800 && ttl <= 900, `empty room TTL ≈ 900: ${ttl}`);
    } finally {
      closeAll(a, b, d, e);
    }
  });

  it("POST /api/leave_room reaches a peer on the other worker only (not another room)", async () => {
    const r1 = await createRoom(api);
    const r2 = await createRoom(api);
    const a = await connect(c.workers[0].url);
    const b = await connect(c.workers[1].url);
    const x = await connect(c.workers[1].url);
    try {
      await join(a, r1);
      await join(b, r1);
      await join(x, r2);
      await postJson(api, "/api/leave_room", { roomId: r1, socketId: a.id });
      assert.deepEqual(await waitFor(b, "peer-disconnected"), { peerId: a.id });
      await expectNothing([x], "peer-disconnected");
    } finally {
      closeAll(a, b, x);
    }
  });

  it("POST /api/set_track: HINCRBY referrers:daily:<UTC date>, TTL ~30 days", async () => {
    const ref = `ref-${Date.now()}`;
    const day = () => new Date().toISOString().slice(0, 10);
    const d0 = day();
    let r = await postJson(api, "/api/set_track", { ref, timestamp: Date.now() });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { success: true });
    r = await postJson(api, "/api/set_track", { ref, timestamp: Date.now() });
    assert.deepEqual(r.json, { success: true });
    const d1 = day();
    const key = `referrers:daily:${d1}`;
    const n = await c.redisCli("HGET", key, ref);
    if (d0 === d1) assert.equal(n, "2");
    const ttl = Number(await c.redisCli("TTL", key));
    assert.ok(ttl > 29 * 86400 && ttl <= 30 * 86400, `TTL ~30 days: ${ttl}`);
  });

  it("POST /api/logs_debug writes one log line and answers success", async () => {
    const marker = `debug-marker-${Date.now()}`;
    const r = await postJson(api, "/api/logs_debug", { message: marker, timestamp: Date.now() });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { success: true });
    await eventually("marker in the room API log", () => {
      const logs = fs.readFileSync(c.roomApi.stderrPath, "utf8") + fs.readFileSync(c.roomApi.proc.stdoutPath, "utf8");
      return logs.includes(marker);
    });
    // The line is one JSON object.
    const line = fs.readFileSync(c.roomApi.stderrPath, "utf8").split("\n").find((l) => l.includes(marker));
    if (line) assert.doesNotThrow(() => JSON.parse(line), `log line is JSON: ${line}`);
  });

  it("CORS: preflight OPTIONS → 204 with the origin echoed and credentials", async () => {
    for (const origin of [ORIGIN, ORIGIN2]) {
      const r = await request(api, "OPTIONS", "/api/create_room", {
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
      });
      assert.equal(r.status, 204);
      assert.equal(r.headers["access-control-allow-origin"], origin);
      assert.equal(r.headers["access-control-allow-credentials"], "true");
      assert.match(r.headers["access-control-allow-methods"] || "", /POST/);
    }
    const g = await request(api, "POST", "/api/check_room", { body: { roomId: "corsroom1" }, headers: { origin: ORIGIN } });
    assert.equal(g.headers["access-control-allow-origin"], ORIGIN);
    const bad = await request(api, "OPTIONS", "/api/create_room", {
      headers: { origin: "http://evil.example.test", "access-control-request-method": "POST" },
    });
    assert.notEqual(bad.headers["access-control-allow-origin"], "http://evil.example.test");
    assert.notEqual(bad.headers["access-control-allow-origin"], "*");
  });

  it("bad input → 4xx JSON {error}: malformed JSON, wrong types, bad ids", async () => {
    const bad = [
      ["/api/create_room", "{not json"],
      ["/api/create_room", '{"roomId":'],
      ["/api/create_room", "[]"],
      ["/api/create_room", "null"],
      ["/api/create_room", { roomId: 1234 }],
      ["/api/create_room", { roomId: ["abcdefgh"] }],
      ["/api/create_room", { roomId: { a: 1 } }],
      ["/api/create_room", { roomId: "has space1" }],
      ["/api/create_room", { roomId: "slash/room" }],
      ["/api/create_room", { roomId: "ünïcödé-room" }],
      ["/api/create_room", { roomId: "a".repeat(65) }],
      ["/api/check_room", { roomId: 42 }],
      ["/api/check_room", { roomId: "a*b" }],
      ["/api/check_room", "{{"],
      ["/api/leave_room", { roomId: "abcdefgh", socketId: 7 }],
      ["/api/leave_room", { roomId: 7, socketId: "abcdefghijklmnopqrst" }],
      ["/api/leave_room", { roomId: "x".repeat(65), socketId: "abcdefghijklmnopqrst" }],
      ["/api/leave_room", "not json at all"],
      ["/api/set_track", "{"],
      ["/api/logs_debug", "{"],
    ];
    for (const [route, body] of bad) {
      const r = await postJson(api, route, body);
      assert.ok(r.status >= 400 && r.status < 500, `${route} ${JSON.stringify(body)} → ${r.status} ${r.body}`);
      assert.equal(typeof r.json?.error, "string", `${route} ${JSON.stringify(body)} → JSON {error}: ${r.body}`);
    }
    // The edges of the id rule are accepted.
    const ok64 = `${"A".repeat(30)}_-${"9".repeat(28)}${Date.now().toString(36)}`.slice(0, 64);
    assert.equal(ok64.length, 64);
    const r = await postJson(api, "/api/create_room", { roomId: ok64 });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.success, true);
    const one = await postJson(api, "/api/check_room", { roomId: "Z" });
    assert.equal(one.status, 200, one.body);
    // The service is still fine.
    assert.equal((await getJson(api, "/health")).status, 200);
  });

  it("a body over the limit → 413 JSON {error}", async () => {
    const big = JSON.stringify({ roomId: "bigbody01", pad: "x".repeat(128 * 1024) });
    const r = await new Promise((resolve, reject) => {
      const req = http.request(`${api}/api/create_room`, {
        method: "POST", agent: false,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(big) },
      }, (res) => {
        const chunks = [];
        res.on("data", (d) => chunks.push(d));
        res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      });
      req.on("error", reject);
      req.end(big);
    });
    assert.equal(r.status, 413, r.body);
    assert.equal(typeof JSON.parse(r.body).error, "string");
    assert.equal(await c.redisCli("EXISTS", "room:bigbody01"), "0");
    assert.equal((await getJson(api, "/health")).status, 200);
  });

  it("unknown routes → 404, keep-alive connections serve several requests", async () => {
    const r = await getJson(api, "/api/nope");
    assert.equal(r.status, 404);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ports = new Set();
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve, reject) => {
        http.get(`${api}/health`, { agent }, (res) => {
          ports.add(res.socket.localPort);
          res.resume();
          res.on("end", resolve);
        }).on("error", reject);
      });
      await sleep(5);
    }
    agent.destroy();
    assert.equal(ports.size, 1, "one connection reused");
  });
});
