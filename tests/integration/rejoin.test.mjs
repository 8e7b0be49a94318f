// A rolling restart must never lock users out (README "Draining"): a socket
// closed by a draining worker gets a re-join credit for its room and client
// address before it is told to go, and its re-join on another worker spends
// the credit instead of counting against the per-address join limit (2 joins
// per 5 s). Genuinely new joins, and sockets that leave by themselves, count
// as before (join.test.mjs). Three workers with the join limit on; each move
// is a real SIGTERM.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { freePort, httpGet, startCluster } from "../lib/cluster.mjs";
import { closeAll, connect, createRoom, eventually, join, uniqueIp, waitFor } from "./helpers.mjs";

const credit = (c, room, ip) => c.redisCli("GET", `pd:rejoin:${room}:${ip}`);

function closed(socket) {
  return new Promise((resolve) => {
    if (!socket.connected) resolve("already");
    else socket.once("disconnect", resolve);
  });
}

describe("re-join after a drain", { timeout: 120000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 3 });
  });
  after(async () => {
    await c?.stop();
  });

  it("a peer moved by two drains in a row re-joins its room each time, and its peer hears it", async () => {
    const room = await createRoom(c.roomApi.url);
    const ip = uniqueIp();
    const sockets = [];
    try {
      const peer = await connect(c.workers[2].url);
      sockets.push(peer);
      assert.equal((await join(peer, room)).success, true);

      let s = await connect(c.workers[0].url, { ip });
      sockets.push(s);
      assert.equal((await join(s, room)).success, true, "first join (paid)");

      // Two moves: worker 1 drains, the client lands on worker 2, which
      // drains next; it ends on worker 3. Without credits the third join
      // from this address within 5 s is refused ("Rate limit exceeded").
      for (const [from, to] of [[0, 1], [1, 2]]) {
        const gone = closed(s);
        const exit = c.stopWorker(from);
        await gone;
        assert.equal(await credit(c, room, ip), "1", "the credit is in Redis before the client is told to go");
        s = await connect(c.workers[to].url, { ip });
        sockets.push(s);
        const r = await join(s, room);
        assert.equal(r.success, true, `re-join after the drain of worker ${from + 1}: ${r.message}`);
        assert.equal(await credit(c, room, ip), "", "the re-join spent the credit");
        assert.deepEqual(await exit, { code: 0, signal: null });
        await c.startWorker(from, c.workers[from].port);
      }
      // The peer that stayed sees the mover come back (ready) each time.
      await eventually("ready for the first join and each re-join",
        async () => (peer.received.get("ready") || []).length >= 3);
    } finally {
      closeAll(sockets);
    }
  });

  it("a credit pays only for its own room, and a socket that leaves by itself earns none", async () => {
    const room = await createRoom(c.roomApi.url);
    const other = await createRoom(c.roomApi.url);
    const ip = uniqueIp();
    const sockets = [];
    try {
      const s = await connect(c.workers[0].url, { ip });
      sockets.push(s);
      assert.equal((await join(s, room)).success, true);
      const gone = closed(s);
      const exit = c.stopWorker(0);
      await gone;
      assert.equal(await credit(c, room, ip), "1");
      // Another room from the same address: a genuinely new join, counted.
      const t = await connect(c.workers[1].url, { ip });
      sockets.push(t);
      assert.equal((await join(t, other)).success, true);
      assert.equal(await credit(c, room, ip), "1", "the credit of the first room is untouched");
      assert.ok(Number(await c.redisCli("ZCARD", `ratelimit:join:${ip}`)) >= 1, "counted by the limit");
      assert.deepEqual(await exit, { code: 0, signal: null });
      await c.startWorker(0, c.workers[0].port);

      // A client that closes its own socket gets nothing to spend.
      const ip2 = uniqueIp();
      const u = await connect(c.workers[1].url, { ip: ip2 });
      sockets.push(u);
      assert.equal((await join(u, room)).success, true);
      const sid = u.id;
      u.close();
      await eventually("the server saw the close", async () => (await c.redisCli("EXISTS", `socket:${sid}`)) === "0");
      assert.equal(await c.redisCli("EXISTS", `pd:rejoin:${room}:${ip2}`), "0");
    } finally {
      closeAll(sockets);
    }
  });

  it("a draining worker is out of rotation before it tells its clients to go, and serves them until then", async () => {
    // A long notice, so that what is checked during it cannot race its end.
    const w = await c.startWorker(3, await freePort(), {
      PD_DRAIN_NOTICE_MS: "12000", PD_DRAIN_SPREAD_MS: "0", PD_DRAIN_TIMEOUT_MS: "30000",
    });
    const room = await createRoom(c.roomApi.url);
    const ip = uniqueIp();
    const sockets = [];
    try {
      const a = await connect(w.url, { ip });
      const b = await connect(c.workers[0].url);
      const late = await connect(w.url); // connected, not yet joined, when the drain begins
      sockets.push(a, b, late);
      assert.equal((await join(a, room)).success, true);
      assert.equal((await join(b, room)).success, true);
      const gone = closed(a);
      const exit = c.stopWorker(3);
      // Out of rotation: a balancer's probe finds no listener (or a 503).
      await eventually("no longer ready", async () => {
        try {
          return (await httpGet(`${w.url}/readyz`, { timeout: 1000 })).status === 503;
        } catch (e) {
          return /ECONNREFUSED/.test(e.message);
        }
      });
      // Its clients are still served: a signal reaches a, which is not yet
      // told to go and has no credit yet.
      assert.equal(a.connected, true, "still connected during the notice");
      assert.equal(await credit(c, room, ip), "");
      b.emit("offer", { peerId: a.id, offer: { type: "offer", sdp: "v=0" }, from: b.id });
      assert.equal((await waitFor(a, "offer")).from, b.id);
      // A join reaching the draining worker is not answered "Server error"
      // (the page would wait 3 s to retry there): the socket is closed at
      // once, and its client reconnects to a worker that stays.
      const lateGone = closed(late);
      late.emit("join", { roomId: room });
      await lateGone;
      assert.equal(late.received.get("joinResponse"), undefined, "no joinResponse, just the close");
      // Then a is told to go, its credit already in Redis.
      await gone;
      assert.equal(await credit(c, room, ip), "1");
      assert.deepEqual(await exit, { code: 0, signal: null });
    } finally {
      closeAll(sockets);
    }
  });
});
