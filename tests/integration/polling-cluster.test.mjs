// Long-polling with no sticky sessions (docs/architecture.md §Long-polling
// across workers): two workers behind a front that sends every HTTP request
// and every WebSocket upgrade to the next worker in turn, so a session's
// requests keep landing on the worker that does not own it.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { startCluster } from "../lib/cluster.mjs";
import { startRoundRobinFront } from "../lib/rrfront.mjs";
import { closeAll, connect, createRoom, eventually, join, waitFor } from "./helpers.mjs";

const OFFER = { type: "offer", sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" };
const ANSWER = { type: "answer", sdp: "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" };

/** a and b in one room, then an offer one way and an answer the other. */
async function signalBothWays(api, a, b) {
  const room = await createRoom(api);
  assert.equal((await join(a, room)).success, true);
  assert.equal((await join(b, room)).success, true);
  a.emit("offer", { peerId: b.id, offer: OFFER });
  assert.deepEqual(await waitFor(b, "offer"), { offer: OFFER, from: a.id, peerId: a.id });
  b.emit("answer", { peerId: a.id, answer: ANSWER });
  assert.deepEqual(await waitFor(a, "answer"), { answer: ANSWER, from: b.id, peerId: b.id });
}

const transportOf = (s) => s.io.engine.transport.name;

describe("long-polling across workers, no affinity", { timeout: 120000 }, () => {
  let c;
  let api;
  let front;
  before(async () => {
    c = await startCluster({ workers: 2 });
    api = c.roomApi.url;
    front = await startRoundRobinFront([c.workers[0].port, c.workers[1].port]);
  });
  after(async () => {
    await front?.close();
    await c?.stop();
  });

  it("socket.io-client with its default transports: polling, then the upgrade, whichever worker each request reaches", async () => {
    const before = [...front.counts];
    const p = await connect(front.url, { transports: ["polling", "websocket"] });
    const ws = await connect(c.workers[0].url);
    try {
      await eventually("upgraded to websocket", () => transportOf(p) === "websocket");
      await signalBothWays(api, p, ws);
      assert.ok(front.counts[0] > before[0] && front.counts[1] > before[1], `both workers served it (${front.counts})`);
    } finally {
      closeAll(p, ws);
    }
  });

  it("transports: ['polling'] only — every request alternates workers, signals flow both ways with a WebSocket client", async () => {
    const p = await connect(front.url, { transports: ["polling"] });
    const ws = await connect(c.workers[1].url);
    try {
      await signalBothWays(api, p, ws);
      assert.equal(transportOf(p), "polling");
    } finally {
      closeAll(p, ws);
    }
  });

  it("two polling clients signal each other", async () => {
    const p = await connect(front.url, { transports: ["polling"] });
    const q = await connect(front.url, { transports: ["polling"] });
    try {
      await signalBothWays(api, p, q);
    } finally {
      closeAll(p, q);
    }
  });
});

describe("long-polling: the upgrade lands on the other worker; the owner dies", { timeout: 120000 }, () => {
  let c;
  let api;
  before(async () => {
    c = await startCluster({ workers: 2 });
    api = c.roomApi.url;
  });
  after(async () => {
    await c?.stop();
  });

  it("the handshake on worker 1, every later request and the WebSocket on worker 2: the session is tunnelled, signals flow", async () => {
    const front = await startRoundRobinFront([c.workers[0].port, c.workers[1].port], { route: (n) => (n === 0 ? 0 : 1) });
    const p = await connect(front.url, { transports: ["polling", "websocket"] });
    const ws = await connect(c.workers[0].url);
    try {
      await eventually("upgraded to websocket", () => transportOf(p) === "websocket");
      await signalBothWays(api, ws, p);
    } finally {
      closeAll(p, ws);
      await front.close();
    }
  });

  it("when the owner is killed, the client is told (Session ID unknown), and reconnects cleanly on the other worker", async () => {
    const front = await startRoundRobinFront([c.workers[0].port, c.workers[1].port], { route: (n) => (n === 0 ? 0 : 1) });
    const p = await connect(front.url, { transports: ["polling"], reconnection: true });
    try {
      const first = p.id;
      const reasons = [];
      p.on("disconnect", (r) => reasons.push(r));
      await c.killWorker(0);
      await eventually("disconnected", () => reasons.length > 0, { timeout: 20000 });
      assert.equal(reasons[0], "transport error");
      await eventually("reconnected", () => p.connected && p.id !== first, { timeout: 20000 });
      const ws = await connect(c.workers[1].url);
      try {
        await signalBothWays(api, p, ws);
      } finally {
        ws.close();
      }
    } finally {
      p.close();
      await front.close();
    }
  });
});
