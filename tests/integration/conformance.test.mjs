// The cases of the Engine.IO v4 and Socket.IO v5 reference test suites,
// point by point, against a real signal worker (docs/wire-protocol.md
// §Conformance). Our own requests; where the reference suite relies on its
// test server echoing events back, only the protocol part is checked (the
// packet is taken and the connection stays). Features we do not offer
// (custom namespaces, binary, acks asked by the server, EIO=3) have no case
// here; the table in docs/wire-protocol.md §Conformance lists them.
//
//   tests/integration/run.sh tests/integration/conformance.test.mjs
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";

import { startCluster } from "../lib/cluster.mjs";
import { EVENT_TIMEOUT_MS, RawWs, sleep, uniqueIp } from "./helpers.mjs";

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
const CONNECT_TIMEOUT = 1000;
const Q = "/socket.io/?EIO=4&transport=polling";
const WSQ = "/socket.io/?EIO=4&transport=websocket";

function hreq(port, method, path, { body, ip } = {}) {
  return new Promise((resolve, reject) => {
    const headers = { "x-forwarded-for": ip || uniqueIp() };
    if (body !== undefined) {
      headers["content-type"] = "text/plain;charset=UTF-8";
      headers["content-length"] = String(Buffer.byteLength(body));
    }
    const req = http.request({ host: "127.0.0.1", port, method, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (d) => chunks.push(d));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.setTimeout(EVENT_TIMEOUT_MS * 2, () => req.destroy(new Error(`no answer to ${method} ${path}`)));
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** A WebSocket that is refused or closed: resolves once it is over. */
async function refusedOrClosed(port, path) {
  let ws;
  try {
    ws = await RawWs.connect(port, path, { "x-forwarded-for": uniqueIp() });
  } catch (e) {
    assert.ok(e.status >= 400, `refused with an error status: ${e.message}`);
    return;
  }
  await Promise.race([ws.closedPromise, sleep(EVENT_TIMEOUT_MS).then(() => assert.fail("still open"))]);
}

async function wsOpen(port) {
  const ws = await RawWs.connect(port, WSQ, { "x-forwarded-for": uniqueIp() });
  const open = await ws.nextText();
  assert.equal(open[0], "0");
  return { ws, open: JSON.parse(open.slice(1)) };
}

async function sioOpen(port) {
  const r = await wsOpen(port);
  r.ws.send("40");
  assert.match(await r.ws.nextText({ skipPings: true }), /^40\{"sid":"[^"]+"\}$/);
  return r.ws;
}

async function closedWithin(ws, ms = EVENT_TIMEOUT_MS) {
  await Promise.race([ws.closedPromise, sleep(ms).then(() => assert.fail("connection still open"))]);
}

describe("Engine.IO v4 / Socket.IO v5 reference cases", { timeout: 120000 }, () => {
  let c, port;
  before(async () => {
    c = await startCluster({
      workers: 1,
      roomApi: false,
      signalEnv: {
        PD_PING_INTERVAL_MS: String(PING_INTERVAL),
        PD_PING_TIMEOUT_MS: String(PING_TIMEOUT),
        PD_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT),
      },
    });
    port = c.workers[0].port;
  });
  after(async () => {
    await c?.stop();
  });

  const pollOpen = async (ip = uniqueIp()) => {
    const r = await hreq(port, "GET", Q, { ip });
    assert.equal(r.status, 200);
    return { ip, open: JSON.parse(r.body.slice(1)), body: r.body };
  };
  const sidQ = (sid) => `${Q}&sid=${encodeURIComponent(sid)}`;

  describe("Engine.IO handshake", () => {
    it("polling: opens a session (sid, upgrades [websocket], ping values, maxPayload)", async () => {
      const { open, body } = await pollOpen();
      assert.equal(body[0], "0");
      assert.deepEqual(Object.keys(open).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
      assert.equal(typeof open.sid, "string");
      assert.deepEqual(open.upgrades, ["websocket"]);
      assert.equal(open.pingInterval, PING_INTERVAL);
      assert.equal(open.pingTimeout, PING_TIMEOUT);
      assert.ok(Number.isInteger(open.maxPayload) && open.maxPayload > 0);
    });

    it("polling: a missing or invalid EIO is 400", async () => {
      assert.equal((await hreq(port, "GET", "/socket.io/?transport=polling")).status, 400);
      assert.equal((await hreq(port, "GET", "/socket.io/?EIO=abc&transport=polling")).status, 400);
    });

    it("polling: a missing or invalid transport is 400", async () => {
      assert.equal((await hreq(port, "GET", "/socket.io/?EIO=4")).status, 400);
      assert.equal((await hreq(port, "GET", "/socket.io/?EIO=4&transport=abc")).status, 400);
    });

    it("polling: a handshake by POST or PUT is 400", async () => {
      assert.equal((await hreq(port, "POST", Q, { body: "" })).status, 400);
      assert.equal((await hreq(port, "PUT", Q, { body: "" })).status, 400);
    });

    it("WebSocket: opens a session with upgrades []", async () => {
      const { ws, open } = await wsOpen(port);
      try {
        assert.deepEqual(Object.keys(open).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
        assert.deepEqual(open.upgrades, []);
        assert.equal(open.pingInterval, PING_INTERVAL);
        assert.equal(open.pingTimeout, PING_TIMEOUT);
      } finally {
        ws.close();
      }
    });

    it("WebSocket: a missing or invalid EIO ends the connection", async () => {
      await refusedOrClosed(port, "/socket.io/?transport=websocket");
      await refusedOrClosed(port, "/socket.io/?EIO=abc&transport=websocket");
    });

    it("WebSocket: a missing or invalid transport ends the connection", async () => {
      await refusedOrClosed(port, "/socket.io/?EIO=4");
      await refusedOrClosed(port, "/socket.io/?EIO=4&transport=abc");
    });
  });

  describe("Engine.IO heartbeat", () => {
    it("polling: each GET brings a ping, each POSTed pong is taken", async () => {
      const { ip, open } = await pollOpen();
      for (let i = 0; i < 3; i++) {
        const g = await hreq(port, "GET", sidQ(open.sid), { ip });
        assert.equal(g.status, 200);
        assert.equal(g.body, "2");
        const p = await hreq(port, "POST", sidQ(open.sid), { ip, body: "3" });
        assert.equal(p.status, 200);
      }
    });

    it("polling: no pong closes the session (the sid is then unknown)", async () => {
      const { ip, open } = await pollOpen();
      await sleep(PING_INTERVAL + PING_TIMEOUT + 300);
      // The first GET may still carry the queued ping and close; the session is over after.
      let r = await hreq(port, "GET", sidQ(open.sid), { ip });
      if (r.status === 200) r = await hreq(port, "GET", sidQ(open.sid), { ip });
      assert.equal(r.status, 400);
    });

    it("WebSocket: pings come, pongs keep the session", async () => {
      const { ws } = await wsOpen(port);
      try {
        // Connected to the main namespace first: three ping intervals must
        // not race the connect timeout on a busy machine.
        ws.send("40");
        assert.match(await ws.nextText(), /^40\{"sid":/);
        for (let i = 0; i < 3; i++) {
          assert.equal(await ws.nextText(), "2");
          ws.send("3");
        }
      } finally {
        ws.close();
      }
    });

    it("WebSocket: no pong closes the connection", async () => {
      const { ws } = await wsOpen(port);
      await closedWithin(ws);
    });
  });

  describe("Engine.IO close", () => {
    it("polling: a POSTed close packet ends the session; later requests are 400", async () => {
      const { ip, open } = await pollOpen();
      const get = hreq(port, "GET", sidQ(open.sid), { ip });
      await sleep(50);
      const post = await hreq(port, "POST", sidQ(open.sid), { ip, body: "1" });
      assert.equal(post.status, 200);
      const g = await get;
      assert.equal(g.status, 200);
      assert.equal((await hreq(port, "GET", sidQ(open.sid), { ip })).status, 400);
    });

    it("WebSocket: a close packet closes the connection", async () => {
      const { ws } = await wsOpen(port);
      ws.send("1");
      await closedWithin(ws);
    });
  });

  describe("Engine.IO upgrade", () => {
    const upgraded = async () => {
      const { ip, open } = await pollOpen();
      const ws = await RawWs.connect(port, `${WSQ}&sid=${encodeURIComponent(open.sid)}`, { "x-forwarded-for": ip });
      ws.send("2probe");
      assert.equal(await ws.nextText({ skipPings: true }), "3probe");
      ws.send("5");
      return { ip, sid: open.sid, ws };
    };

    it("polling to WebSocket: 2probe, 3probe, 5, and the session lives on the WebSocket", async () => {
      const { ws } = await upgraded();
      try {
        ws.send("40");
        assert.match(await ws.nextText({ skipPings: true }), /^40\{"sid":/);
      } finally {
        ws.close();
      }
    });

    it("after the upgrade, a polling request with the sid is 400", async () => {
      const { ip, sid, ws } = await upgraded();
      try {
        ws.send("40");
        await ws.nextText({ skipPings: true });
        assert.equal((await hreq(port, "GET", sidQ(sid), { ip })).status, 400);
      } finally {
        ws.close();
      }
    });

    it("after the upgrade, a second WebSocket with the sid is ended", async () => {
      const { ip, sid, ws } = await upgraded();
      try {
        ws.send("40");
        await ws.nextText({ skipPings: true });
        let ws2;
        try {
          ws2 = await RawWs.connect(port, `${WSQ}&sid=${encodeURIComponent(sid)}`, { "x-forwarded-for": ip });
        } catch (e) {
          assert.ok(e.status >= 400);
          return;
        }
        await closedWithin(ws2);
      } finally {
        ws.close();
      }
    });
  });

  describe("Socket.IO connect", () => {
    it("40 connects to the main namespace: 40{sid}", async () => {
      const ws = await sioOpen(port);
      ws.close();
    });

    it("40 with a payload connects to the main namespace", async () => {
      const { ws } = await wsOpen(port);
      try {
        ws.send('40{"token":"123"}');
        assert.match(await ws.nextText({ skipPings: true }), /^40\{"sid":"[^"]+"\}$/);
      } finally {
        ws.close();
      }
    });

    it("an unknown namespace gets 44/<nsp>,{message: Invalid namespace}", async () => {
      const { ws } = await wsOpen(port);
      try {
        ws.send("40/random");
        assert.equal(await ws.nextText({ skipPings: true }), '44/random,{"message":"Invalid namespace"}');
      } finally {
        ws.close();
      }
    });

    it("an invalid handshake (4abc) closes the connection", async () => {
      const { ws } = await wsOpen(port);
      ws.send("4abc");
      await closedWithin(ws);
    });

    it("no Socket.IO handshake closes the connection after the connect timeout", async () => {
      const { ws } = await wsOpen(port);
      const pong = setInterval(() => ws.send("3"), PING_INTERVAL / 2);
      try {
        await closedWithin(ws, CONNECT_TIMEOUT + EVENT_TIMEOUT_MS);
      } finally {
        clearInterval(pong);
      }
    });
  });

  describe("Socket.IO disconnect", () => {
    it("41 leaves the main namespace and the Engine.IO session stays: the next packet is a ping", async () => {
      const ws = await sioOpen(port);
      try {
        ws.send("41");
        assert.equal(await ws.nextText(), "2");
        ws.send("3");
        assert.equal(ws.closed, false);
      } finally {
        ws.close();
      }
    });

    it("after 41, a new 40 connects a new socket with another id", async () => {
      const { ws } = await wsOpen(port);
      try {
        ws.send("40");
        const first = JSON.parse((await ws.nextText({ skipPings: true })).slice(2)).sid;
        ws.send("41");
        ws.send("40");
        const second = JSON.parse((await ws.nextText({ skipPings: true })).slice(2)).sid;
        assert.notEqual(second, first);
        ws.send('42["message",1]');
        assert.equal(ws.closed, false);
      } finally {
        ws.close();
      }
    });

    it("after 41 and no new 40, the connect timeout ends the session", async () => {
      const ws = await sioOpen(port);
      const pong = setInterval(() => ws.send("3"), PING_INTERVAL / 2);
      try {
        ws.send("41");
        await closedWithin(ws, CONNECT_TIMEOUT + EVENT_TIMEOUT_MS);
      } finally {
        clearInterval(pong);
      }
    });
  });

  describe("Socket.IO messages", () => {
    it("a plain-text EVENT is taken and the connection stays", async () => {
      const ws = await sioOpen(port);
      try {
        ws.send('42["message",1,"2",{"3":[true]}]');
        assert.equal(await ws.nextText(), "2");
        ws.send("3");
        assert.equal(ws.closed, false);
      } finally {
        ws.close();
      }
    });

    it("an unknown packet type (4abc) closes the connection", async () => {
      const ws = await sioOpen(port);
      ws.send("4abc");
      await closedWithin(ws);
    });

    it("an invalid payload (42{}) closes the connection", async () => {
      const ws = await sioOpen(port);
      ws.send("42{}");
      await closedWithin(ws);
    });

    it("an invalid ack id (42abc[...]) closes the connection", async () => {
      const ws = await sioOpen(port);
      ws.send('42abc["message-with-ack",1,"2",{"3":[false]}]');
      await closedWithin(ws);
    });
  });
});
