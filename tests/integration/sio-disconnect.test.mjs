// Socket.IO 41 on the main namespace keeps the Engine.IO session
// (docs/wire-protocol.md §Socket.IO): what the old socket leaves behind in
// Redis when its join is still in flight, and the counts after 40/41 loops.
import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, it } from "node:test";

import { startCluster } from "../lib/cluster.mjs";
import { connect, createRoom, eventually, join, RawWs, request, uniqueIp, waitFor } from "./helpers.mjs";
import { closeOf, metrics, metricValue, nextTextStarting, writeRaw, wsFrame } from "./wire.mjs";

describe("Socket.IO 41 keeping the session", { timeout: 120000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2 });
  });
  after(async () => {
    await c?.stop();
  });

  const sidOf = async (ws) => JSON.parse((await ws.nextText({ skipPings: true })).slice(2)).sid;
  const conns = async (w) => Number((await c.redisCli("HGET", "pd:conns", w.id)) || 0);

  it("a join answered after the 41 leaves no trace of the old socket, and the new one can take its place", async () => {
    const w = c.workers[0];
    const roomId = await createRoom(c.roomApi.url);
    const peer = await connect(c.workers[1].url);
    const ws = await RawWs.connect(w.port, undefined, { "X-Forwarded-For": uniqueIp() });
    try {
      await ws.nextText();
      ws.send("40");
      const first = await sidOf(ws);
      assert.equal((await join(peer, roomId)).success, true);
      // The join goes to Redis; the 41 is handled before its answer.
      // One write: the three packets are read together, so the 41 is
      // handled while the join waits for Redis.
      const text = (t) => wsFrame({ payload: Buffer.from(t) });
      writeRaw(ws, text(`42["join",{"roomId":"${roomId}"}]`), text("41"), text("40"));
      const texts = [];
      let second;
      for (;;) {
        const t = await ws.nextText({ skipPings: true });
        texts.push(t);
        if (t.startsWith("40")) {
          second = JSON.parse(t.slice(2)).sid;
          break;
        }
      }
      assert.deepEqual(texts.slice(0, -1), [], "nothing for the old socket after its 41");
      assert.notEqual(second, first);
      // Rooms hold two: a ghost of the first socket would make this "Room is full".
      ws.send(`42["join",{"roomId":"${roomId}"}]`);
      const jr = JSON.parse((await nextTextStarting(ws, '42["joinResponse"')).slice(2))[1];
      assert.equal(jr.success, true, JSON.stringify(jr));
      await eventually("the old socket gone from Redis", async () =>
        (await c.redisCli("SISMEMBER", `room:${roomId}:sockets`, first)) === "0" &&
        (await c.redisCli("EXISTS", `socket:${first}`)) === "0" &&
        (await c.redisCli("SISMEMBER", `pd:worker:${w.id}:sockets`, first)) === "0");
      // The peer never heard of the old socket.
      assert.ok(!(peer.received.get("ready") || []).some((m) => m?.peerId === first));
      const members = (await c.redisCli("SMEMBERS", `room:${roomId}:sockets`)).split("\n").sort();
      assert.deepEqual(members, [peer.id, second].sort());
      assert.equal(await conns(w), 1);
    } finally {
      ws.close();
      peer.close();
    }
    await eventually("counts back to 0", async () => (await conns(w)) === 0);
  });

  it("40/41 loops keep pd:conns and the connections gauge at one socket, and at none once closed", async () => {
    const w = c.workers[0];
    const ws = await RawWs.connect(w.port, undefined, { "X-Forwarded-For": uniqueIp() });
    try {
      await ws.nextText();
      const sids = new Set();
      for (let i = 0; i < 8; i++) {
        ws.send("40");
        sids.add(await sidOf(ws));
        ws.send("41");
      }
      ws.send("40");
      sids.add(await sidOf(ws));
      assert.equal(sids.size, 9);
      assert.equal(ws.closed, false);
      await eventually("one socket counted", async () => (await conns(w)) === 1);
      const m = await metrics(w.url);
      assert.equal(metricValue(m, "privydrop_signal_connections"), 1);
    } finally {
      ws.close();
    }
    await eventually("none counted", async () => (await conns(w)) === 0);
    await eventually("gauge at 0", async () => metricValue(await metrics(w.url), "privydrop_signal_connections") === 0);
  });
  it("over long-polling with requests alternating workers: 40/41 loops, then a join that a peer hears, and the counts right", async () => {
    const owner = c.workers[0];
    const ip = uniqueIp();
    const headers = { "x-forwarded-for": ip, "content-type": "text/plain;charset=UTF-8" };
    const open = await request(owner.url, "GET", "/socket.io/?EIO=4&transport=polling", { headers });
    assert.equal(open.status, 200);
    const eio = JSON.parse(open.body.slice(1)).sid;
    let k = 0;
    const next = () => c.workers[k++ % 2].url; // every request to the other worker
    const path = () => `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(eio)}`;
    const post = async (body) => assert.equal((await request(next(), "POST", path(), { body, headers })).status, 200);
    /** Packets from GETs until one starts with `prefix` (pings answered). */
    const until = async (prefix) => {
      for (;;) {
        const r = await request(next(), "GET", path(), { headers });
        assert.equal(r.status, 200, r.body);
        for (const pkt of r.body.split("\x1e")) {
          if (pkt === "2") await post("3");
          else if (pkt.startsWith(prefix)) return pkt;
        }
      }
    };
    const sids = new Set();
    for (let i = 0; i < 5; i++) {
      await post("40");
      sids.add(JSON.parse((await until("40")).slice(2)).sid);
      await post("41");
    }
    await post("40");
    const last = JSON.parse((await until("40")).slice(2)).sid;
    sids.add(last);
    assert.equal(sids.size, 6);
    await eventually("one socket counted", async () => (await conns(owner)) === 1);
    const roomId = await createRoom(c.roomApi.url);
    const peer = await connect(c.workers[1].url);
    try {
      assert.equal((await join(peer, roomId)).success, true);
      await post(`42["join",{"roomId":"${roomId}"}]`);
      const jr = JSON.parse((await until('42["joinResponse"')).slice(2))[1];
      assert.equal(jr.success, true, JSON.stringify(jr));
      assert.deepEqual(await waitFor(peer, "ready"), { peerId: last });
      const gone = waitFor(peer, "peer-disconnected", { pred: (m) => m?.peerId === last });
      await post("41");
      await gone;
      assert.equal(await c.redisCli("EXISTS", `socket:${last}`), "0");
      assert.equal(await c.redisCli("SISMEMBER", `room:${roomId}:sockets`, last), "0");
      await post("1"); // Engine.IO close
      await eventually("none counted", async () => (await conns(owner)) === 0);
    } finally {
      peer.close();
    }
  });
  it("41 over polling while a WebSocket upgrade probe is open: the upgrade completes, a new 40 over it connects, counts right", async () => {
    const w = c.workers[0];
    const ip = uniqueIp();
    const headers = { "x-forwarded-for": ip, "content-type": "text/plain;charset=UTF-8" };
    const open = await request(w.url, "GET", "/socket.io/?EIO=4&transport=polling", { headers });
    const eio = JSON.parse(open.body.slice(1)).sid;
    const path = `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(eio)}`;
    const post = async (body) => assert.equal((await request(w.url, "POST", path, { body, headers })).status, 200);
    await post("40");
    const g = await request(w.url, "GET", path, { headers });
    const first = JSON.parse(g.body.split("\x1e").find((x) => x.startsWith("40")).slice(2)).sid;
    const ws = await RawWs.connect(w.port, `/socket.io/?EIO=4&transport=websocket&sid=${encodeURIComponent(eio)}`, { "X-Forwarded-For": ip });
    try {
      ws.send("2probe");
      assert.equal(await ws.nextText(), "3probe");
      await post("41");
      ws.send("5");
      ws.send("40");
      const second = await sidOf(ws);
      assert.notEqual(second, first);
      await eventually("one socket counted", async () => (await conns(w)) === 1);
      const roomId = await createRoom(c.roomApi.url);
      ws.send(`42["join",{"roomId":"${roomId}"}]`);
      const jr = JSON.parse((await nextTextStarting(ws, '42["joinResponse"')).slice(2))[1];
      assert.equal(jr.success, true, JSON.stringify(jr));
      assert.equal(await c.redisCli("SMEMBERS", `room:${roomId}:sockets`), second);
    } finally {
      ws.close();
    }
    await eventually("none counted", async () => (await conns(w)) === 0);
  });
});

describe("Socket.IO 41 during a SIGTERM drain", { timeout: 90000 }, () => {
  let c;
  before(async () => {
    // A drain limit far above notice + spread: a drain that ends only at
    // its limit is one that lost track of a socket.
    c = await startCluster({
      workers: 1,
      signalEnv: { PD_DRAIN_NOTICE_MS: "1500", PD_DRAIN_SPREAD_MS: "200", PD_DRAIN_TIMEOUT_MS: "60000" },
    });
  });
  after(async () => {
    await c?.stop();
  });

  const sidOf = async (ws) => JSON.parse((await ws.nextText({ skipPings: true })).slice(2)).sid;

  it("a 41 then 40 before the socket's turn does not escape the drain: it is closed with 1001 and the drain completes", async () => {
    const w = c.workers[0];
    const roomId = await createRoom(c.roomApi.url);
    const ws = await RawWs.connect(w.port, undefined, { "X-Forwarded-For": uniqueIp() });
    await ws.nextText();
    ws.send("40");
    await sidOf(ws);
    ws.send(`42["join",{"roomId":"${roomId}"}]`);
    assert.equal(JSON.parse((await nextTextStarting(ws, '42["joinResponse"')).slice(2))[1].success, true);
    w.proc.child.kill("SIGTERM");
    await eventually("draining", async () => (await request(w.url, "GET", "/readyz").catch(() => ({ status: 0 }))).status !== 200);
    // Inside the notice: the socket the drain listed leaves, a new one comes.
    ws.send("41");
    ws.send("40");
    // Pongs keep the session alive: only the drain may end it.
    const pong = setInterval(() => ws.send("3"), 500);
    let closeInfo;
    try {
      closeInfo = await closeOf(ws, 30000);
    } finally {
      clearInterval(pong);
    }
    assert.equal(closeInfo.code, 1001, `closed by the drain: ${JSON.stringify(closeInfo)}`);
    const exit = await w.proc.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    const log = fs.readFileSync(w.proc.stderrPath, "utf8");
    assert.match(log, /"msg":"drained"/);
    assert.doesNotMatch(log, /"msg":"drain timeout"/);
  });
});
