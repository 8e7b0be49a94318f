// Engine.IO v4 / Socket.IO v5 wire details of the signal workers
// (docs/wire-protocol.md §Handshake, §Engine.IO, §Socket.IO).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { httpGet, startCluster } from "../lib/cluster.mjs";
import { connect, createRoom, join, RawWs, request, sleep, uniqueIp, waitFor } from "./helpers.mjs";
import { nextTextStarting } from "./wire.mjs";

describe("Engine.IO handshake and packets", { timeout: 120000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2 });
  });
  after(async () => {
    await c?.stop();
  });

  it("socket.io-client connects over WebSocket to both workers with distinct 20-char ids", async () => {
    const a = await connect(c.workers[0].url);
    const b = await connect(c.workers[1].url);
    try {
      assert.ok(a.connected && b.connected);
      assert.notEqual(a.id, b.id);
    } finally {
      a.close();
      b.close();
    }
  });

  it("open packet: sid, upgrades [], pingInterval 25000, pingTimeout 20000, maxPayload", async () => {
    const ws = await RawWs.connect(c.workers[0].port);
    try {
      assert.ok(ws.acceptOk, "Sec-WebSocket-Accept matches the key");
      const open = await ws.nextText();
      assert.equal(open[0], "0", `first packet is open: ${open}`);
      const o = JSON.parse(open.slice(1));
      assert.match(o.sid, /^[A-Za-z0-9_-]{20}$/);
      assert.deepEqual(o.upgrades, []);
      assert.equal(o.pingInterval, 25000);
      assert.equal(o.pingTimeout, 20000);
      assert.equal(typeof o.maxPayload, "number");
      assert.ok(o.maxPayload > 0);
      assert.deepEqual(Object.keys(o).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);

      ws.send("40");
      const connectPkt = await ws.nextText();
      assert.match(connectPkt, /^40\{/, `socket.io connect reply: ${connectPkt}`);
      const s = JSON.parse(connectPkt.slice(2));
      assert.match(s.sid, /^[A-Za-z0-9]{8}[A-Za-z0-9_-]{20}$/);
      assert.notEqual(s.sid, o.sid, "socket id differs from the engine sid");
    } finally {
      ws.close();
    }
  });

  it("40 with an auth payload is accepted", async () => {
    const ws = await RawWs.connect(c.workers[1].port);
    try {
      await ws.nextText();
      ws.send('40{"token":"abc"}');
      assert.match(await ws.nextText(), /^40\{"sid":"[A-Za-z0-9]{8}[A-Za-z0-9_-]{20}"\}$/);
    } finally {
      ws.close();
    }
  });

  it("unknown namespace → 44/<nsp>,{\"message\":\"Invalid namespace\"}", async () => {
    const ws = await RawWs.connect(c.workers[0].port);
    try {
      await ws.nextText();
      ws.send("40/admin,");
      const r = await ws.nextText();
      assert.equal(r, '44/admin,{"message":"Invalid namespace"}');
    } finally {
      ws.close();
    }
  });

  it("a namespace ends at the end of the packet: 40/random → 44/random,{…}, the session kept", async () => {
    const ws = await RawWs.connect(c.workers[0].port);
    try {
      await ws.nextText();
      ws.send("40/random");
      assert.equal(await ws.nextText(), '44/random,{"message":"Invalid namespace"}');
      // Still served: the main namespace connects afterwards.
      ws.send("40");
      assert.match(await ws.nextText(), /^40\{"sid":"[A-Za-z0-9]{8}[A-Za-z0-9_-]{20}"\}$/);
      assert.equal(ws.closed, false);
    } finally {
      ws.close();
    }
  });

  it("41 leaves the room and frees the socket; the session stays and a new 40 joins again", async () => {
    const ws = await RawWs.connect(c.workers[0].port, undefined, { "X-Forwarded-For": uniqueIp() });
    const peer = await connect(c.workers[1].url);
    try {
      await ws.nextText();
      ws.send("40");
      const first = JSON.parse((await ws.nextText({ skipPings: true })).slice(2)).sid;
      const roomId = await createRoom(c.roomApi.url);
      await join(peer, roomId);
      ws.send(`42["join",{"roomId":"${roomId}"}]`);
      await nextTextStarting(ws, '42["joinResponse"');
      assert.equal(await c.redisCli("SISMEMBER", `room:${roomId}:sockets`, first), "1");
      const gone = waitFor(peer, "peer-disconnected", { pred: (m) => m?.peerId === first });
      ws.send("41");
      await gone;
      assert.equal(await c.redisCli("SISMEMBER", `room:${roomId}:sockets`, first), "0");
      assert.equal(await c.redisCli("EXISTS", `socket:${first}`), "0");
      assert.equal(ws.closed, false);
      ws.send("40");
      const second = JSON.parse((await ws.nextText({ skipPings: true })).slice(2)).sid;
      assert.notEqual(second, first);
      ws.send(`42["join",{"roomId":"${roomId}"}]`);
      const jr = await nextTextStarting(ws, '42["joinResponse"');
      assert.equal(JSON.parse(jr.slice(2))[1].success, true);
      assert.equal(await c.redisCli("SISMEMBER", `room:${roomId}:sockets`, second), "1");
    } finally {
      ws.close();
      peer.close();
    }
  });

  for (const [what, pkt] of [
    ["an EVENT", '42["join",{"roomId":"abcd"}]'],
    ["an ACK", "43[]"],
    ["a DISCONNECT", "41"],
  ]) {
    it(`${what} before the Socket.IO CONNECT closes the connection at once (1002)`, async () => {
      const ws = await RawWs.connect(c.workers[1].port);
      try {
        await ws.nextText();
        ws.send(pkt);
        // Well before the connect timeout (45 s): the close is immediate.
        assert.ok(await ws.waitClosed(10000), "closed");
        assert.equal(ws.closeFrame?.data.readUInt16BE(0), 1002);
      } finally {
        ws.close();
      }
    });
  }

  it("ack ids are acknowledged with 43<n>[]", async () => {
    const ws = await RawWs.connect(c.workers[0].port, undefined, { "X-Forwarded-For": uniqueIp() });
    try {
      await ws.nextText();
      ws.send("40");
      await ws.nextText();
      const roomId = await createRoom(c.roomApi.url);
      ws.send(`427["join",{"roomId":"${roomId}"}]`);
      const frames = await ws.collect(1500);
      assert.ok(frames.includes("437[]"), `ack 437[] expected, got ${JSON.stringify(frames)}`);
      const jr = frames.find((f) => f.startsWith('42["joinResponse"'));
      assert.ok(jr, `joinResponse expected, got ${JSON.stringify(frames)}`);
      assert.deepEqual(JSON.parse(jr.slice(2)), ["joinResponse", { success: true, message: "Successfully joined room", roomId }]);
    } finally {
      ws.close();
    }
  });

  it("the server pings with 2 (pong 3 accepted) — short interval worker", async () => {
    // A third worker with fast heartbeats, on its own port, same Redis.
    const { freePort } = await import("../lib/cluster.mjs");
    const w = await c.startWorker(2, await freePort(), { PD_PING_INTERVAL_MS: "300", PD_PING_TIMEOUT_MS: "400" });
    const ws = await RawWs.connect(w.port);
    try {
      const o = JSON.parse((await ws.nextText()).slice(1));
      assert.equal(o.pingInterval, 300);
      assert.equal(o.pingTimeout, 400);
      ws.send("40");
      await ws.nextText();
      // Answer three pings: the connection stays open.
      for (let i = 0; i < 3; i++) {
        assert.equal(await ws.nextText({ timeout: 3000 }), "2");
        ws.send("3");
      }
      assert.equal(ws.closed, false);
      // Stop answering: closed within pingInterval + pingTimeout (+ slack).
      const t0 = Date.now();
      assert.ok(await ws.waitClosed(4000), "connection closed after missing pongs");
      assert.ok(Date.now() - t0 >= 250, "not closed before the timeout could have run out");
    } finally {
      ws.close();
      await c.stopWorker(2);
      assert.deepEqual(w.proc.exit, { code: 0, signal: null });
    }
  });

  it("polling handshake: 200 with the open packet offering the WebSocket upgrade; an unknown transport: Transport unknown", async () => {
    for (const w of c.workers.slice(0, 2)) {
      const r = await request(w.url, "GET", "/socket.io/?EIO=4&transport=polling", { headers: { "X-Forwarded-For": uniqueIp() } });
      assert.equal(r.status, 200);
      assert.match(r.headers["content-type"] || "", /^text\/plain/);
      assert.equal(r.body[0], "0");
      const o = JSON.parse(r.body.slice(1));
      assert.deepEqual(o.upgrades, ["websocket"]);
      assert.match(o.sid, /^[A-Za-z0-9_-]{28}$/);
      const bad = await request(w.url, "GET", "/socket.io/?EIO=4&transport=carrier-pigeon");
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.json, { code: 0, message: "Transport unknown" });
      assert.match(bad.headers["content-type"] || "", /json/);
    }
  });

  it("HTTP 400 for EIO=3: Unsupported protocol version", async () => {
    const r = await request(c.workers[0].url, "GET", "/socket.io/?EIO=3&transport=websocket");
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { code: 5, message: "Unsupported protocol version" });
    const r2 = await request(c.workers[1].url, "GET", "/socket.io/?transport=websocket");
    assert.equal(r2.status, 400);
    assert.deepEqual(r2.json, { code: 5, message: "Unsupported protocol version" });
  });

  it("a WebSocket upgrade for EIO=3 is refused with 400 too", async () => {
    await assert.rejects(RawWs.connect(c.workers[0].port, "/socket.io/?EIO=3&transport=websocket"), (e) => {
      assert.equal(e.status, 400);
      return true;
    });
  });

  it("HTTP 400 for a sid parameter: Bad request", async () => {
    const r = await request(c.workers[0].url, "GET", "/socket.io/?EIO=4&transport=websocket&sid=abcdefghijklmnopqrst");
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { code: 3, message: "Bad request" });
  });

  it("/healthz, /readyz and /metrics answer on the signal port", async () => {
    for (const w of c.workers.slice(0, 2)) {
      assert.equal((await httpGet(`${w.url}/healthz`)).status, 200);
      assert.equal((await httpGet(`${w.url}/readyz`)).status, 200);
      const m = await httpGet(`${w.url}/metrics`);
      assert.equal(m.status, 200);
      assert.match(m.headers["content-type"] || "", /^text\/plain/);
      assert.match(m.body, /^# (HELP|TYPE) \S+/m, "Prometheus text format");
    }
  });
  it("binary Socket.IO packets are refused with a close; the worker survives", async () => {
    const ws = await RawWs.connect(c.workers[0].port);
    try {
      await ws.nextText();
      ws.send("40");
      await ws.nextText();
      ws.send('451-["offer",{"_placeholder":true,"num":0}]');
      ws.sendBinary(Buffer.from([1, 2, 3]));
      assert.ok(await ws.waitClosed(3000), "server closes the connection on a binary packet");
    } finally {
      ws.close();
    }
    assert.equal((await httpGet(`${c.workers[0].url}/healthz`)).status, 200);
  });

  it("a message over PD_MAX_MESSAGE_BYTES closes the connection; the worker survives", async () => {
    const ws = await RawWs.connect(c.workers[1].port);
    try {
      const o = JSON.parse((await ws.nextText()).slice(1));
      ws.send("40");
      await ws.nextText();
      ws.send(`42["offer",{"peerId":"x","offer":"${"a".repeat(o.maxPayload + 1024)}"}]`);
      assert.ok(await ws.waitClosed(3000), "server closes an over-long message");
    } finally {
      ws.close();
    }
    assert.equal((await httpGet(`${c.workers[1].url}/healthz`)).status, 200);
  });

  it("garbage frames never crash the worker", async () => {
    for (const junk of ["", "9", "4", "42", "42[", '42["join"', "42{}", '42["join",null]', '42["offer","str"]',
      '42["ice-candidate",{"peerId":12}]', "4\u0000\u0001", "40/,", "49", '42[1,2]', '42["join",{"roomId":["a"]}]']) {
      const ws = await RawWs.connect(c.workers[0].port);
      try {
        await ws.nextText();
        ws.send("40");
        await ws.nextText();
        ws.send(junk);
        await sleep(30);
      } finally {
        ws.close();
      }
    }
    assert.equal((await httpGet(`${c.workers[0].url}/healthz`)).status, 200);
    const s = await connect(c.workers[0].url);
    s.close();
  });

});
