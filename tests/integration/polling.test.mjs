// Engine.IO v4 HTTP long-polling on one signal worker, and the upgrade from
// it to WebSocket (services/signal/src/poll.c, eng.c, session.c; the
// protocol: socket.io docs/engine.io-protocol/v4-current.md).
//
// Worker 1 (index 0) runs with the defaults; worker 2 (index 1) with tight
// limits (small POST bodies, few sessions per address, a CORS list, a short
// HTTP request timeout); worker 3 (index 2, started by the heartbeat tests)
// pings every 300 ms; worker 4 (index 3) serves the socket.io-client cases.
// Every session keeps to the worker that opened it.
//
//   tests/integration/run.sh tests/integration/polling.test.mjs
//   PD_BIN_DIR=build/asan/bin tests/integration/run.sh tests/integration/polling.test.mjs   (after make SAN=1)
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import { io } from "socket.io-client";

import { freePort, httpGet, startCluster } from "../lib/cluster.mjs";
import {
  EVENT_TIMEOUT_MS, QUIET_MS, RawWs, closeAll, connect, createRoom, eventually, join, sleep, uniqueIp, waitFor,
} from "./helpers.mjs";
import { closeOf, metricValue, metrics, rawHttp } from "./wire.mjs";

const Q = "/socket.io/?EIO=4&transport=polling";
const SEP = "\x1e";
const UNKNOWN_SID = { code: 1, message: "Session ID unknown" };

const MAX1 = 1024; // PD_MAX_MESSAGE_BYTES (maxPayload, the POST body cap) of worker 2
const PER_IP1 = 3; // PD_MAX_CONNS_PER_IP of worker 2
const HTTP_TIMEOUT1 = 1000; // PD_HTTP_REQUEST_TIMEOUT_MS of worker 2
const ORIGINS = "http://good.example, https://also.example";
const W_TIGHT = {
  PD_MAX_MESSAGE_BYTES: String(MAX1),
  PD_MAX_CONNS_PER_IP: String(PER_IP1),
  PD_HTTP_REQUEST_TIMEOUT_MS: String(HTTP_TIMEOUT1),
  CORS_ORIGIN: ORIGINS,
};
const PING_INTERVAL = 300;
const PING_TIMEOUT = 400;

const OFFER = { type: "offer", sdp: "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" };
const ANSWER = { type: "answer", sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" };

const closed = (reason) => `privydrop_signal_sessions_closed_total{reason="${reason}"}`;

/**
 * One HTTP request on its own connection; resolves {status, headers, body}.
 * `signal` aborts it (the promise then rejects).
 */
function hreq(port, method, path, { body, headers = {}, timeout = EVENT_TIMEOUT_MS * 2, signal } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined) {
      h["content-type"] ??= "text/plain;charset=UTF-8";
      h["content-length"] = String(Buffer.byteLength(body));
    }
    const req = http.request({ host: "127.0.0.1", port, method, path, headers: h, agent: false, signal }, (res) => {
      const chunks = [];
      res.on("data", (d) => chunks.push(d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`no answer to ${method} ${path} within ${timeout} ms`)));
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const json = (r) => JSON.parse(r.body);

/** A raw polling session: the handshake done, its sid known. */
class Poller {
  static async open(port, { ip = uniqueIp(), headers = {} } = {}) {
    const r = await hreq(port, "GET", Q, { headers: { "x-forwarded-for": ip, ...headers } });
    assert.equal(r.status, 200, `handshake: ${r.status} ${r.body}`);
    assert.equal(r.body[0], "0", `open packet: ${r.body}`);
    const p = new Poller(port, JSON.parse(r.body.slice(1)), ip);
    p.handshake = r;
    return p;
  }

  constructor(port, open, ip) {
    this.port = port;
    this.open = open;
    this.sid = open.sid;
    this.ip = ip;
    this.path = `${Q}&sid=${open.sid}`;
  }

  get(opts = {}) {
    return hreq(this.port, "GET", this.path, opts);
  }

  post(body, opts = {}) {
    return hreq(this.port, "POST", this.path, { ...opts, body });
  }

  /** GET expecting 200: the packets it carried. */
  async packets(opts) {
    const r = await this.get(opts);
    assert.equal(r.status, 200, `GET: ${r.status} ${r.body}`);
    assert.match(r.headers["content-type"] || "", /^text\/plain/);
    return r.body.split(SEP);
  }

  async postOk(body) {
    const r = await this.post(body);
    assert.equal(r.status, 200, `POST ${JSON.stringify(body.slice(0, 40))}: ${r.status} ${r.body}`);
    assert.equal(r.body, "ok");
  }

  /**
   * Socket.IO CONNECT: POST 40, a following GET brings 40{"sid":…}; sets
   * this.socketId. A ping that comes along (a slow machine, a short
   * pingInterval) is answered.
   */
  async connectSio() {
    await this.postOk("40");
    for (;;) {
      const pk = await this.packets();
      for (const x of pk) assert.ok(x === "2" || /^40\{"sid":"[A-Za-z0-9]{8}[A-Za-z0-9_-]{20}"\}$/.test(x), `unexpected packet ${x}`);
      if (pk.includes("2")) await this.postOk("3");
      const c = pk.find((x) => x.startsWith("40"));
      if (c) {
        this.socketId = JSON.parse(c.slice(2)).sid;
        return this.socketId;
      }
    }
  }

  /** Later requests for this sid are refused as unknown. */
  async assertGone(what = "") {
    const g = await this.get();
    assert.equal(g.status, 400, `GET after ${what}: ${g.status} ${g.body}`);
    assert.deepEqual(json(g), UNKNOWN_SID);
    const p = await this.post("6");
    assert.equal(p.status, 400, `POST after ${what}: ${p.status} ${p.body}`);
    assert.deepEqual(json(p), UNKNOWN_SID);
  }
}

/** Resolves "pending" if `promise` has not settled after `ms`. */
async function stillPending(promise, ms = QUIET_MS) {
  return Promise.race([promise.then((v) => ({ settled: v }), (e) => ({ settled: e })), sleep(ms).then(() => "pending")]);
}

/** socket.io-client over the given transports, events recorded like helpers.connect's. */
async function connectVia(url, transports, { ip = uniqueIp() } = {}) {
  const socket = io(url, {
    transports,
    reconnection: false,
    forceNew: true,
    timeout: EVENT_TIMEOUT_MS,
    extraHeaders: { "x-forwarded-for": ip },
  });
  socket.received = new Map();
  socket.waiters = [];
  socket.onAny((name, payload) => {
    if (!socket.received.has(name)) socket.received.set(name, []);
    socket.received.get(name).push(payload);
    for (const w of [...socket.waiters]) w(name, payload);
  });
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`connect over ${transports} timed out`)), EVENT_TIMEOUT_MS);
    socket.once("connect", () => {
      clearTimeout(t);
      resolve();
    });
    socket.once("connect_error", (e) => {
      clearTimeout(t);
      reject(new Error(`connect over ${transports}: ${e.message}`));
    });
  }).catch((e) => {
    socket.close();
    throw e;
  });
  assert.match(socket.id, /^[A-Za-z0-9]{8}[A-Za-z0-9_-]{20}$/);
  return socket;
}

/** a and b in one fresh room; an offer and an answer each way arrive with from = the sender. */
async function exchange(api, a, b) {
  const roomId = await createRoom(api);
  assert.equal((await join(a, roomId)).success, true);
  assert.equal((await join(b, roomId)).success, true);
  await waitFor(a, "ready");
  for (const [x, y] of [[a, b], [b, a]]) {
    x.emit("offer", { peerId: y.id, offer: OFFER });
    assert.deepEqual(await waitFor(y, "offer"), { offer: OFFER, from: x.id, peerId: x.id });
    y.emit("answer", { peerId: x.id, answer: ANSWER });
    assert.deepEqual(await waitFor(x, "answer"), { answer: ANSWER, from: y.id, peerId: y.id });
  }
}

describe("Engine.IO long-polling", { timeout: 120000 }, () => {
  let c;
  let api;
  let p0; // default worker's port
  let p1; // tight worker's port

  before(async () => {
    c = await startCluster({ workers: 2, workerEnv: [{}, W_TIGHT] });
    api = c.roomApi.url;
    p0 = c.workers[0].port;
    p1 = c.workers[1].port;
  });
  after(async () => {
    await c?.stop();
  });

  /** Worker i still runs, answers, and has no sanitizer report. */
  async function healthy(i, what) {
    assert.ok(c.workers[i].proc.running, `worker ${i + 1} still running after ${what}`);
    assert.deepEqual(c.currentProblems(), [], `no crash or sanitizer report after ${what}`);
    assert.equal((await httpGet(`${c.workers[i].url}/healthz`)).status, 200);
  }

  // -------------------------------------------------------------------------
  describe("socket.io-client", () => {
    // Their own worker, pinging every 1.5 s: a GET that reaches the worker
    // after the client's "2probe" waits for the next ping before the
    // upgrade can finish, so a short interval bounds how long that takes.
    let w;
    before(async () => {
      w = await c.startWorker(3, await freePort(), { PD_PING_INTERVAL_MS: "1500" });
    });
    after(async () => {
      await c.stopWorker(3);
      assert.deepEqual(w.proc.exit, { code: 0, signal: null });
    });

    it("default transports: polling first, then the upgrade to WebSocket keeps the ids; signals both ways with a WebSocket-only client", async () => {
      const a = await connectVia(w.url, undefined);
      const b = await connect(w.url);
      try {
        const engine = a.io.engine;
        const id = a.id;
        const engineId = engine.id;
        // socket.io-client connects over polling, then probes and upgrades.
        await eventually("the engine upgraded to websocket", () => engine.transport.name === "websocket", { timeout: EVENT_TIMEOUT_MS + 1500 });
        assert.equal(a.id, id, "socket id unchanged by the upgrade");
        assert.equal(engine.id, engineId, "Engine.IO sid unchanged by the upgrade");
        assert.ok(a.connected);
        // The server still knows the socket by its id: signals reach it on the WebSocket.
        await exchange(api, a, b);
        assert.equal(engine.transport.name, "websocket");
      } finally {
        closeAll(a, b);
      }
    });

    it('transports ["polling"]: stays on polling; signals both ways with a WebSocket-only client', async () => {
      const a = await connectVia(w.url, ["polling"]);
      const b = await connect(w.url);
      try {
        assert.equal(a.io.engine.transport.name, "polling");
        await exchange(api, a, b);
        assert.equal(a.io.engine.transport.name, "polling");
      } finally {
        closeAll(a, b);
      }
    });

    it('transports ["polling", "websocket"]: upgrades; signals both ways with a WebSocket-only client', async () => {
      const a = await connectVia(w.url, ["polling", "websocket"]);
      const b = await connect(w.url);
      try {
        const id = a.id;
        await eventually("the engine upgraded to websocket", () => a.io.engine.transport.name === "websocket", { timeout: EVENT_TIMEOUT_MS + 1500 });
        assert.equal(a.id, id);
        await exchange(api, b, a);
      } finally {
        closeAll(a, b);
      }
    });

    it("two polling-only clients exchange signals both ways", async () => {
      const a = await connectVia(w.url, ["polling"]);
      const b = await connectVia(w.url, ["polling"]);
      try {
        await exchange(api, a, b);
        assert.equal(a.io.engine.transport.name, "polling");
        assert.equal(b.io.engine.transport.name, "polling");
      } finally {
        closeAll(a, b);
      }
    });

    it("a polling client's close tells its room: peer-disconnected", async () => {
      const a = await connectVia(w.url, ["polling"]);
      const b = await connect(w.url);
      try {
        const roomId = await createRoom(api);
        assert.equal((await join(a, roomId)).success, true);
        assert.equal((await join(b, roomId)).success, true);
        const gone = a.id;
        a.close(); // POSTs "1"
        assert.deepEqual(await waitFor(b, "peer-disconnected"), { peerId: gone });
      } finally {
        closeAll(a, b);
      }
    });
  });

  // -------------------------------------------------------------------------
  describe("the raw protocol", () => {
    it("handshake: 0{sid, upgrades [websocket], pingInterval, pingTimeout, maxPayload} as text/plain", async () => {
      const p = await Poller.open(p0);
      assert.match(p.handshake.headers["content-type"], /^text\/plain; charset=UTF-8$/i);
      assert.deepEqual(Object.keys(p.open).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
      assert.match(p.open.sid, /^[A-Za-z0-9_-]{20,}$/);
      assert.deepEqual(p.open.upgrades, ["websocket"]);
      assert.equal(p.open.pingInterval, 25000);
      assert.equal(p.open.pingTimeout, 20000);
      assert.equal(p.open.maxPayload, 65536);
      const t = await Poller.open(p1);
      assert.equal(t.open.maxPayload, MAX1, "maxPayload is PD_MAX_MESSAGE_BYTES");
      await p.postOk("1");
      await t.postOk("1");
    });

    it('POST "40" → ok; the next GET carries 40{"sid":…}, a socket id distinct from the Engine.IO sid', async () => {
      const p = await Poller.open(p0);
      const id = await p.connectSio();
      assert.notEqual(id, p.sid);
      await p.postOk("1");
    });

    it("several packets in one POST (joined by 0x1e) are all handled; one GET returns every queued packet joined by 0x1e", async () => {
      const p = await Poller.open(p0);
      await p.connectSio();
      // Client pings are answered with their data: three in, three out, in order.
      await p.postOk(["2a", "2b", "2c"].join(SEP));
      assert.deepEqual(await p.packets(), ["3a", "3b", "3c"]);
      // Two POSTs before a GET: the one GET carries both answers.
      await p.postOk("2d");
      await p.postOk(`6${SEP}2e`); // a noop is ignored
      assert.deepEqual(await p.packets(), ["3d", "3e"]);
      await p.postOk("1");
    });

    it("a GET waits (long-poll) until a packet is queued: a join answer", async () => {
      const p = await Poller.open(p0);
      await p.connectSio();
      const roomId = await createRoom(api);
      const waiting = p.packets();
      assert.equal(await stillPending(waiting), "pending", "nothing queued: the GET waits");
      await p.postOk(`42["join",{"roomId":"${roomId}"}]`);
      const pk = await waiting;
      assert.deepEqual(JSON.parse(pk[0].slice(2)), ["joinResponse", { success: true, message: "Successfully joined room", roomId }]);
      await p.postOk("1");
    });

    it("signals between a raw polling session and a WebSocket client, both ways", async () => {
      const p = await Poller.open(p0);
      await p.connectSio();
      const b = await connect(c.workers[0].url);
      try {
        const roomId = await createRoom(api);
        await p.postOk(`42["join",{"roomId":"${roomId}"}]`);
        assert.match((await p.packets())[0], /^42\["joinResponse",\{"success":true/);
        assert.equal((await join(b, roomId)).success, true);
        // b's offer reaches the polling session's next GET.
        b.emit("offer", { peerId: p.socketId, offer: OFFER });
        const got = [];
        await eventually("the offer arrived by GET", async () => {
          got.push(...(await p.packets()));
          return got.find((x) => x.startsWith('42["offer"'));
        });
        const off = JSON.parse(got.find((x) => x.startsWith('42["offer"')).slice(2));
        assert.deepEqual(off, ["offer", { offer: OFFER, from: b.id, peerId: b.id }]);
        await p.postOk(`42${JSON.stringify(["answer", { peerId: b.id, answer: ANSWER }])}`);
        assert.deepEqual(await waitFor(b, "answer"), { answer: ANSWER, from: p.socketId, peerId: p.socketId });
      } finally {
        b.close();
        await p.postOk("1");
      }
    });

    it('POST "1" closes the session: later GET and POST → 400 Session ID unknown', async () => {
      const p = await Poller.open(p0);
      await p.connectSio();
      await p.postOk("1");
      await p.assertGone('POST "1"');
    });

    it('POST "1" while a GET waits: the GET ends (close or noop packet) and the session is gone', async () => {
      const p = await Poller.open(p0);
      await p.connectSio();
      const waiting = p.get();
      assert.equal(await stillPending(waiting), "pending");
      await p.postOk("1");
      const g = await waiting;
      assert.equal(g.status, 200);
      // The reference test suite expects a noop ("6") here; "1" ends the client's polling loop as well.
      assert.ok(["1", "6"].includes(g.body), `waiting GET ended with ${JSON.stringify(g.body)}`);
      await p.assertGone('POST "1"');
    });

    it("an invalid packet in a POST closes the session", async () => {
      const p = await Poller.open(p0);
      await p.post("abc");
      await p.assertGone("an invalid packet");
    });

    it("packets after a close in the same POST are not handled", async () => {
      const p = await Poller.open(p0);
      await p.connectSio();
      await p.postOk(`1${SEP}40${SEP}2x`);
      await p.assertGone("close");
    });
  });

  // -------------------------------------------------------------------------
  describe("heartbeat (pingInterval 300 ms, pingTimeout 400 ms)", () => {
    let w;
    before(async () => {
      w = await c.startWorker(2, await freePort(), { PD_PING_INTERVAL_MS: String(PING_INTERVAL), PD_PING_TIMEOUT_MS: String(PING_TIMEOUT) });
    });
    after(async () => {
      await c.stopWorker(2);
      assert.deepEqual(w.proc.exit, { code: 0, signal: null });
    });

    it('the ping "2" comes by GET; answering "3" by POST keeps the session', async () => {
      const p = await Poller.open(w.port);
      assert.equal(p.open.pingInterval, PING_INTERVAL);
      assert.equal(p.open.pingTimeout, PING_TIMEOUT);
      await p.connectSio();
      for (let i = 0; i < 4; i++) {
        assert.deepEqual(await p.packets(), ["2"], `ping ${i + 1}`);
        await p.postOk("3");
      }
      // Still served: more than pingInterval + pingTimeout has passed since the open.
      await p.postOk("2alive");
      const pk = await p.packets();
      assert.ok(pk.includes("3alive"), `ping answered: ${JSON.stringify(pk)}`);
      await p.postOk("1");
    });

    it("no pong: the session is closed (a waiting GET gets 1, a later one 400 Session ID unknown)", async () => {
      const m0 = await metrics(w.url);
      const p = await Poller.open(w.port);
      await p.connectSio();
      assert.deepEqual(await p.packets(), ["2"]);
      // Not answered: the next GET waits until the ping timeout closes the session.
      const g = await p.get();
      assert.equal(g.status, 200);
      assert.equal(g.body, "1");
      await p.assertGone("the ping timeout");
      const m1 = await metrics(w.url);
      assert.ok(metricValue(m1, closed("ping_timeout")) > metricValue(m0, closed("ping_timeout")));
    });

    it("a session nobody polls is closed by the ping timeout too", async () => {
      const p = await Poller.open(w.port);
      await eventually("the unpolled session is closed", async () => (await p.post("6")).status === 400, { timeout: EVENT_TIMEOUT_MS * 2 });
      await p.assertGone("the ping timeout");
    });
  });

  // -------------------------------------------------------------------------
  describe("errors", () => {
    it("unknown sid: GET and POST → 400 code 1", async () => {
      for (const sid of ["AAAAAAAAAAAAAAAAAAAA", "x", "A".repeat(300)]) {
        const g = await hreq(p0, "GET", `${Q}&sid=${sid}`);
        assert.equal(g.status, 400);
        assert.deepEqual(json(g), UNKNOWN_SID);
        const p = await hreq(p0, "POST", `${Q}&sid=${sid}`, { body: "40" });
        assert.equal(p.status, 400);
        assert.deepEqual(json(p), UNKNOWN_SID);
      }
      const e = await hreq(p0, "GET", `${Q}&sid=`);
      assert.equal(e.status, 400);
      assert.deepEqual(json(e), UNKNOWN_SID);
    });

    it("POST or PUT without sid → 400 code 2 Bad handshake method", async () => {
      for (const method of ["POST", "PUT"]) {
        const r = await hreq(p0, method, Q, { body: "40" });
        assert.equal(r.status, 400, method);
        assert.deepEqual(json(r), { code: 2, message: "Bad handshake method" });
      }
    });

    it("a second concurrent GET → 400 and the session closes (the other GET gets the close packet)", async () => {
      const m0 = await metrics(c.workers[0].url);
      const p = await Poller.open(p0);
      await p.connectSio();
      const first = p.get();
      assert.equal(await stillPending(first), "pending");
      const second = await p.get();
      assert.equal(second.status, 400);
      assert.deepEqual(json(second), { code: 3, message: "Bad request" });
      const f = await first;
      assert.equal(f.status, 200);
      assert.equal(f.body, "1");
      await p.assertGone("overlapping GETs");
      const m1 = await metrics(c.workers[0].url);
      assert.equal(metricValue(m1, closed("poll_overlap")), metricValue(m0, closed("poll_overlap")) + 1);
    });

    it("a waiting GET whose client went away: the next GET → 400 and the session is closed", async () => {
      const p = await Poller.open(p0);
      await p.connectSio();
      const ac = new AbortController();
      const first = p.get({ signal: ac.signal }).catch(() => "aborted");
      assert.equal(await stillPending(first), "pending");
      ac.abort();
      assert.equal(await first, "aborted");
      const r = await p.get();
      assert.equal(r.status, 400);
      await p.assertGone("a cancelled GET");
    });

    it("query errors: transport=foo → code 0; EIO=3 or no EIO → code 5; a repeated sid → code 3", async () => {
      const cases = [
        ["/socket.io/?EIO=4&transport=foo", { code: 0, message: "Transport unknown" }],
        ["/socket.io/?EIO=4", { code: 0, message: "Transport unknown" }],
        ["/socket.io/?EIO=4&transport=polling&transport=polling", { code: 0, message: "Transport unknown" }],
        ["/socket.io/?EIO=3&transport=polling", { code: 5, message: "Unsupported protocol version" }],
        ["/socket.io/?transport=polling", { code: 5, message: "Unsupported protocol version" }],
        ["/socket.io/?EIO=abc&transport=polling", { code: 5, message: "Unsupported protocol version" }],
        ["/socket.io/?EIO=4&transport=polling&sid=a&sid=b", { code: 3, message: "Bad request" }],
      ];
      for (const [path, body] of cases) {
        for (const method of ["GET", "POST"]) {
          const r = await hreq(p0, method, path, method === "POST" ? { body: "40" } : {});
          assert.equal(r.status, 400, `${method} ${path}`);
          assert.deepEqual(json(r), body, `${method} ${path}`);
        }
      }
      // A repeated sid is refused even when both name a live session.
      const p = await Poller.open(p0);
      const r = await hreq(p0, "GET", `${Q}&sid=${p.sid}&sid=${p.sid}`);
      assert.equal(r.status, 400);
      assert.deepEqual(json(r), { code: 3, message: "Bad request" });
      await p.postOk("1");
    });
  });

  // -------------------------------------------------------------------------
  describe("hostile", () => {
    it(`a POST body over maxPayload (${MAX1}) → 413; the session is left as it was`, async () => {
      const p = await Poller.open(p1);
      await p.connectSio();
      const big = "2" + "x".repeat(MAX1); // MAX1 + 1 bytes
      const r = await p.post(big);
      assert.equal(r.status, 413);
      // The body never reached the session: it still answers.
      await p.postOk("2still");
      assert.deepEqual(await p.packets(), ["3still"]);
      // A body of exactly maxPayload is accepted.
      const exact = "2" + "y".repeat(62) + SEP + "6" + "z".repeat(MAX1 - 65); // a ping and a noop
      assert.equal(exact.length, MAX1);
      await p.postOk(exact);
      assert.deepEqual(await p.packets(), ["3" + "y".repeat(62)]);
      await p.postOk("1");
      await healthy(1, "an oversized POST");
    });

    it("a trickled POST body is cut by the HTTP request timeout (408); the session is left as it was", async () => {
      const p = await Poller.open(p1);
      await p.connectSio();
      const head = `POST ${p.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n\r\n`;
      const pieces = [head, ...Array.from({ length: 40 }, () => "6")];
      const r = await rawHttp(p1, pieces, { gapMs: 100, timeout: HTTP_TIMEOUT1 * 8 });
      assert.equal(r.status, 408, `answer: ${r.text.slice(0, 200)}`);
      assert.ok(r.ended, "the connection was closed");
      assert.ok(r.sent < pieces.length, `cut before the body was complete (${r.sent}/${pieces.length} pieces)`);
      await p.postOk("2after");
      assert.deepEqual(await p.packets(), ["3after"]);
      await p.postOk("1");
      await healthy(1, "a slow POST");
    });

    it(`handshakes from one address: 429 after PD_MAX_CONNS_PER_IP (${PER_IP1}); other addresses still admitted; a closed session frees its slot`, async () => {
      const ip = uniqueIp();
      const open = [];
      for (let i = 0; i < PER_IP1; i++) open.push(await Poller.open(p1, { ip }));
      for (let i = 0; i < 3; i++) {
        const r = await hreq(p1, "GET", Q, { headers: { "x-forwarded-for": ip } });
        assert.equal(r.status, 429, `handshake ${PER_IP1 + i + 1}: ${r.status} ${r.body}`);
        assert.equal(r.headers["retry-after"], "5");
        assert.deepEqual(json(r), { error: "Too many connections from this address" });
      }
      // The sessions already open are unharmed.
      for (const p of open) {
        await p.postOk("2ok");
        assert.deepEqual(await p.packets(), ["3ok"]);
      }
      // Another address (and a WebSocket from it) is admitted.
      const other = await Poller.open(p1);
      const ws = await connect(c.workers[1].url);
      ws.close();
      // A WebSocket from the full address is refused too: the cap counts sessions, whatever the transport.
      await assert.rejects(RawWs.connect(p1, undefined, { "X-Forwarded-For": ip }), (e) => e.status === 429);
      await open[0].postOk("1");
      const again = await eventually("a slot is free again", async () => {
        const r = await hreq(p1, "GET", Q, { headers: { "x-forwarded-for": ip } });
        return r.status === 200 ? r : null;
      });
      open.push(new Poller(p1, JSON.parse(again.body.slice(1)), ip));
      for (const p of [...open.slice(1), other]) await p.postOk("1");
      await healthy(1, "a handshake flood");
    });

    it("session ids are 20+ URL-safe characters, all distinct", async () => {
      const sids = new Set();
      const sessions = [];
      for (let i = 0; i < 40; i++) {
        const p = await Poller.open(p0);
        assert.match(p.sid, /^[A-Za-z0-9_-]{20,}$/);
        sids.add(p.sid);
        sessions.push(p);
      }
      assert.equal(sids.size, sessions.length, "no sid repeats");
      for (const p of sessions) await p.postOk("1");
    });

    describe("CORS (CORS_ORIGIN lists two origins)", () => {
      it("an allowed Origin is echoed with credentials on the handshake, GET and POST", async () => {
        const origin = "https://also.example";
        const p = await Poller.open(p1, { headers: { origin } });
        const check = (r, what) => {
          assert.equal(r.headers["access-control-allow-origin"], origin, what);
          assert.equal(r.headers["access-control-allow-credentials"], "true", what);
          assert.match(r.headers.vary || "", /Origin/i, what);
        };
        check(p.handshake, "handshake");
        const post = await p.post("40", { headers: { origin } });
        assert.equal(post.status, 200);
        check(post, "POST");
        const get = await p.get({ headers: { origin } });
        assert.equal(get.status, 200);
        check(get, "GET");
        // Errors carry it too, so the browser lets the page read them.
        const bad = await hreq(p1, "GET", `${Q}&sid=AAAAAAAAAAAAAAAAAAAA`, { headers: { origin } });
        assert.equal(bad.status, 400);
        check(bad, "400");
        await p.post("1", { headers: { origin } });
      });

      it("a foreign Origin → 403 for handshake, GET, POST and preflight; no Origin (not a browser) is served without CORS headers", async () => {
        const origin = "http://evil.example";
        const p = await Poller.open(p1);
        assert.equal(p.handshake.headers["access-control-allow-origin"], undefined);
        for (const [method, path, body] of [["GET", Q], ["GET", p.path], ["POST", p.path, "40"], ["OPTIONS", Q]]) {
          const r = await hreq(p1, method, path, { headers: { origin }, body });
          assert.equal(r.status, 403, `${method} ${path}`);
          assert.equal(r.headers["access-control-allow-origin"], undefined);
        }
        // The refused requests did not touch the session.
        await p.postOk("2x");
        assert.deepEqual(await p.packets(), ["3x"]);
        await p.postOk("1");
      });

      it("OPTIONS preflight from an allowed Origin → 204 with methods and headers", async () => {
        const origin = "http://good.example";
        const r = await hreq(p1, "OPTIONS", Q, {
          headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
        });
        assert.equal(r.status, 204);
        assert.equal(r.body, "");
        assert.equal(r.headers["access-control-allow-origin"], origin);
        assert.equal(r.headers["access-control-allow-credentials"], "true");
        assert.match(r.headers["access-control-allow-methods"] || "", /POST/);
        assert.match(r.headers["access-control-allow-headers"] || "", /content-type/i);
      });
    });
  });

  // -------------------------------------------------------------------------
  describe("the upgrade, by raw WebSocket", () => {
    const wsPath = (sid) => `/socket.io/?EIO=4&transport=websocket&sid=${sid}`;

    it('2probe → 3probe, a waiting GET gets the noop "6", "5" moves the session: packets flow on the WebSocket, polling is refused', async () => {
      const p = await Poller.open(p0);
      await p.connectSio();
      const waiting = p.get();
      assert.equal(await stillPending(waiting), "pending");
      const ws = await RawWs.connect(p0, wsPath(p.sid), { "X-Forwarded-For": p.ip });
      try {
        ws.send("2probe");
        assert.equal(await ws.nextText(), "3probe");
        const g = await waiting;
        assert.equal(g.status, 200);
        assert.equal(g.body, "6");
        // While the client is paused, the server queues on the polling side ...
        await p.postOk("2queued");
        ws.send("5");
        // ... and what was queued comes first on the WebSocket.
        assert.equal(await ws.nextText(), "3queued");
        const roomId = await createRoom(api);
        ws.send(`42["join",{"roomId":"${roomId}"}]`);
        const jr = await ws.nextText();
        assert.deepEqual(JSON.parse(jr.slice(2)), ["joinResponse", { success: true, message: "Successfully joined room", roomId }]);
        await p.assertGone("the upgrade");
        // The socket kept its id: a WebSocket peer reaches it.
        const b = await connect(c.workers[0].url);
        try {
          assert.equal((await join(b, roomId)).success, true);
          b.emit("offer", { peerId: p.socketId, offer: OFFER });
          for (;;) {
            const t = await ws.nextText();
            if (!t.startsWith('42["offer"')) continue;
            assert.deepEqual(JSON.parse(t.slice(2)), ["offer", { offer: OFFER, from: b.id, peerId: b.id }]);
            break;
          }
          ws.send(`42${JSON.stringify(["answer", { peerId: b.id, answer: ANSWER }])}`);
          assert.deepEqual(await waitFor(b, "answer"), { answer: ANSWER, from: p.socketId, peerId: p.socketId });
        } finally {
          b.close();
        }
        // A second WebSocket for the upgraded sid finds no polling session.
        await assert.rejects(RawWs.connect(p0, wsPath(p.sid)), (e) => e.status === 400 && JSON.parse(e.rest).code === 1);
      } finally {
        ws.close();
      }
    });

    it("a WebSocket with the sid of a closed session → HTTP 400 code 1", async () => {
      const p = await Poller.open(p0);
      await p.postOk("1");
      await assert.rejects(RawWs.connect(p0, wsPath(p.sid)), (e) => {
        assert.equal(e.status, 400);
        assert.deepEqual(JSON.parse(e.rest), UNKNOWN_SID);
        return true;
      });
    });

    it("a second probe while one is in progress is refused (closed); the first completes", async () => {
      const p = await Poller.open(p0);
      await p.connectSio();
      const ws1 = await RawWs.connect(p0, wsPath(p.sid));
      const ws2 = await RawWs.connect(p0, wsPath(p.sid));
      try {
        assert.equal((await closeOf(ws2)).code, 1008, "the second probe is closed with 1008");
        ws1.send("2probe");
        assert.equal(await ws1.nextText(), "3probe");
        ws1.send("5");
        ws1.send("2after");
        assert.equal(await ws1.nextText(), "3after");
        await p.assertGone("the upgrade");
      } finally {
        ws1.close();
        ws2.close();
      }
    });

    it("a probe that sends anything else is closed; the polling session continues and may probe again", async () => {
      const m0 = await metrics(c.workers[0].url);
      const p = await Poller.open(p0);
      await p.connectSio();
      for (const garbage of ['42["join",{"roomId":"abcdefgh"}]', "3probe", "x"]) {
        const ws = await RawWs.connect(p0, wsPath(p.sid));
        try {
          ws.send(garbage);
          assert.equal((await closeOf(ws)).code, 1002, `probe sending ${garbage}`);
        } finally {
          ws.close();
        }
        await p.postOk("2still");
        assert.deepEqual(await p.packets(), ["3still"], `polling continues after a probe sent ${garbage}`);
      }
      const m1 = await metrics(c.workers[0].url);
      assert.equal(metricValue(m1, 'privydrop_signal_dropped_total{reason="bad_probe"}') - metricValue(m0, 'privydrop_signal_dropped_total{reason="bad_probe"}'), 3);
      // A probe that goes away without a word frees the slot as well.
      const quiet = await RawWs.connect(p0, wsPath(p.sid));
      quiet.close();
      await eventually("a new probe is accepted", async () => {
        const ws = await RawWs.connect(p0, wsPath(p.sid));
        ws.send("2probe");
        try {
          return (await ws.nextText({ timeout: 1000 })) === "3probe" ? (ws.close(), true) : false;
        } catch {
          ws.close();
          return false;
        }
      });
      await p.postOk("1");
    });

    it("the polling session closing under a probe closes the probe", async () => {
      const p = await Poller.open(p0);
      await p.connectSio();
      const ws = await RawWs.connect(p0, wsPath(p.sid));
      try {
        ws.send("2probe");
        assert.equal(await ws.nextText(), "3probe");
        await p.postOk("1");
        assert.ok(await ws.waitClosed(), "the probe is closed with its session");
      } finally {
        ws.close();
      }
      await p.assertGone("the close");
      await healthy(0, "the upgrade cases");
    });
  });
});
