// Signal relay and room broadcasts across two workers (docs/wire-protocol.md
// §Signals, docs/architecture.md §Bus), and what a disconnect leaves in Redis
// (docs/architecture.md §Redis schema).
import assert from "node:assert/strict";
import { after, before, beforeEach, afterEach, describe, it } from "node:test";

import { startCluster } from "../lib/cluster.mjs";
import { RedisConn } from "../lib/redis.mjs";
import { closeAll, connect, createRoom, eventually, expectNothing, join, waitFor } from "./helpers.mjs";
import { metrics, metricValue } from "./wire.mjs";

const OFFER = { type: "offer", sdp: "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" };
const ANSWER = { type: "answer", sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" };
const CANDIDATE = { candidate: "candidate:1 1 udp 2122260223 192.0.2.10 54400 typ host", sdpMid: "0", sdpMLineIndex: 0 };

describe("relay across workers", { timeout: 180000 }, () => {
  let c;
  let api;
  // Per test: room R with a (worker 1) and b (worker 2); room R2 with x (worker 2) and y (worker 1).
  let R;
  let R2;
  let a;
  let b;
  let x;
  let y;
  before(async () => {
    c = await startCluster({ workers: 2 });
    api = c.roomApi.url;
  });
  after(async () => {
    await c?.stop();
  });
  beforeEach(async () => {
    R = await createRoom(api);
    R2 = await createRoom(api);
    a = await connect(c.workers[0].url);
    b = await connect(c.workers[1].url);
    x = await connect(c.workers[1].url);
    y = await connect(c.workers[0].url);
    assert.equal((await join(a, R)).success, true);
    assert.equal((await join(b, R)).success, true);
    assert.equal((await join(x, R2)).success, true);
    assert.equal((await join(y, R2)).success, true);
    await waitFor(a, "ready");
    await waitFor(x, "ready");
  });
  afterEach(() => {
    closeAll(a, b, x, y);
  });

  it("offer reaches the target on the other worker with from = peerId = sender", async () => {
    a.emit("offer", { peerId: b.id, offer: OFFER, from: a.id });
    assert.deepEqual(await waitFor(b, "offer"), { offer: OFFER, from: a.id, peerId: a.id });
    await expectNothing([a, x, y], "offer");
  });

  it("a socket id begins with its worker's tag: the same for sockets of one worker, another for the other", () => {
    const tag = (s) => s.id.slice(0, 8);
    assert.equal(tag(a), tag(y));
    assert.equal(tag(b), tag(x));
    assert.notEqual(tag(a), tag(b));
  });

  it("a signal goes on the target worker's own channel only, naming the room; an id without a tag on the room channel", async () => {
    // What Redis carries (docs/architecture.md §Signals, §Bus): a pattern
    // subscriber sees every pd: channel a worker publishes on.
    const sub = await RedisConn.open(c.redisPort);
    const seen = [];
    try {
      await sub.psubscribe("pd:*", (ch, msg) => seen.push([ch, msg.toString()]));
      a.emit("offer", { peerId: b.id, offer: { ...OFFER, sdp: "marker-1" } });
      await waitFor(b, "offer");
      b.emit("answer", { peerId: a.id, answer: { ...ANSWER, sdp: "marker-2" } });
      await waitFor(a, "answer");
      // A target of the old shape (no tag): sent on the room channel, where
      // a worker holding it would find it.
      const untagged = "Zz0123456789abcdefgh";
      a.emit("offer", { peerId: untagged, offer: { ...OFFER, sdp: "marker-3" } });
      await eventually("the untagged signal is published", () => seen.some(([, m]) => m.includes("marker-3")));
      const carrying = (mark) => seen.filter(([, m]) => m.includes(mark));
      const offer = carrying("marker-1");
      assert.equal(offer.length, 1, JSON.stringify(offer));
      assert.equal(offer[0][0], `pd:eio:${b.id.slice(0, 8)}`);
      assert.ok(offer[0][1].startsWith(`PD1 S `) && offer[0][1].includes(` ${b.id} ${R}\n42["offer",`), offer[0][1]);
      const answer = carrying("marker-2");
      assert.equal(answer.length, 1, JSON.stringify(answer));
      assert.equal(answer[0][0], `pd:eio:${a.id.slice(0, 8)}`);
      assert.ok(answer[0][1].includes(` ${a.id} ${R}\n42["answer",`), answer[0][1]);
      const old = carrying("marker-3");
      assert.equal(old.length, 1, JSON.stringify(old));
      assert.equal(old[0][0], `pd:room:${R}`);
      assert.ok(old[0][1].includes(` ${untagged}\n42["offer",`), old[0][1]);
    } finally {
      sub.close();
    }
  });

  it("a signal to a closed socket of the sender's own worker is dropped as gone, not published", async () => {
    const d = await connect(c.workers[0].url);
    const gone = d.id;
    assert.equal((await join(d, R)).success, true);
    d.close();
    // Its room-mate hears of it once the worker has closed it.
    await waitFor(a, "peer-disconnected", { pred: (p) => p.peerId === gone });
    const before = metricValue(await metrics(c.workers[0].url), 'privydrop_signal_dropped_total{reason="gone"}');
    a.emit("offer", { peerId: gone, offer: OFFER });
    await eventually("counted as gone", async () =>
      metricValue(await metrics(c.workers[0].url), 'privydrop_signal_dropped_total{reason="gone"}') === before + 1);
  });

  it("an envelope on a worker's channel must be a signal naming its room", async () => {
    const pub = await RedisConn.open(c.redisPort);
    const key = 'privydrop_signal_dropped_total{reason="bad_envelope"}';
    try {
      const ch = `pd:eio:${b.id.slice(0, 8)}`;
      const before = metricValue(await metrics(c.workers[1].url), key);
      const pkt = `42["offer",{"offer":{"sdp":"forged"},"from":"x","peerId":"x"}]`;
      await pub.command("PUBLISH", ch, `PD1 S other ${b.id}\n${pkt}`); // no room
      await pub.command("PUBLISH", ch, `PD1 B other - ${R}\n${pkt}`); // not a signal
      await eventually("both refused", async () => metricValue(await metrics(c.workers[1].url), key) === before + 2);
      // Naming another room than the target's: not delivered.
      await pub.command("PUBLISH", ch, `PD1 S other ${b.id} ${R2}\n${pkt}`);
      // Naming the target's room: delivered, as from any worker.
      await pub.command("PUBLISH", ch, `PD1 S other ${b.id} ${R}\n42["offer",{"offer":{"sdp":"ok"},"from":"x","peerId":"x"}]`);
      assert.deepEqual(await waitFor(b, "offer"), { offer: { sdp: "ok" }, from: "x", peerId: "x" });
    } finally {
      pub.close();
    }
  });

  it("answer reaches the target on the other worker", async () => {
    b.emit("answer", { peerId: a.id, answer: ANSWER, from: b.id });
    assert.deepEqual(await waitFor(a, "answer"), { answer: ANSWER, from: b.id, peerId: b.id });
  });

  it("ice-candidate reaches the target on the other worker, both directions", async () => {
    a.emit("ice-candidate", { peerId: b.id, candidate: CANDIDATE, from: a.id });
    assert.deepEqual(await waitFor(b, "ice-candidate"), { candidate: CANDIDATE, from: a.id, peerId: a.id });
    b.emit("ice-candidate", { peerId: a.id, candidate: CANDIDATE });
    assert.deepEqual(await waitFor(a, "ice-candidate"), { candidate: CANDIDATE, from: b.id, peerId: b.id });
  });

  it("a forged or missing `from` is replaced by the sender's id", async () => {
    a.emit("offer", { peerId: b.id, offer: OFFER, from: x.id });
    assert.deepEqual(await waitFor(b, "offer"), { offer: OFFER, from: a.id, peerId: a.id });
    b.emit("answer", { peerId: a.id, answer: ANSWER });
    assert.deepEqual(await waitFor(a, "answer"), { answer: ANSWER, from: b.id, peerId: b.id });
    a.emit("ice-candidate", { peerId: b.id, candidate: CANDIDATE, from: "aaaaaaaaaaaaaaaaaaaa" });
    assert.deepEqual(await waitFor(b, "ice-candidate"), { candidate: CANDIDATE, from: a.id, peerId: a.id });
  });

  it("same-worker peers relay too", async () => {
    const d = await connect(c.workers[0].url);
    try {
      assert.equal((await join(d, R)).success, true);
      a.emit("offer", { peerId: d.id, offer: OFFER });
      assert.deepEqual(await waitFor(d, "offer"), { offer: OFFER, from: a.id, peerId: a.id });
    } finally {
      d.close();
    }
  });

  it("a signal to a socket of another room never arrives (other and same worker)", async () => {
    a.emit("offer", { peerId: x.id, offer: OFFER }); // x: other room, other worker
    a.emit("offer", { peerId: y.id, offer: OFFER }); // y: other room, same worker
    a.emit("answer", { peerId: x.id, answer: ANSWER });
    a.emit("ice-candidate", { peerId: y.id, candidate: CANDIDATE });
    await expectNothing([x, y], "offer");
    await expectNothing([x, y], "answer", { ms: 50 });
    await expectNothing([x, y], "ice-candidate", { ms: 50 });
    // The path itself works: the same sender reaches its own peer afterwards.
    a.emit("offer", { peerId: b.id, offer: OFFER });
    assert.deepEqual(await waitFor(b, "offer"), { offer: OFFER, from: a.id, peerId: a.id });
  });

  it("a socket that joined no room can neither send nor receive signals", async () => {
    const lone = await connect(c.workers[1].url);
    try {
      lone.emit("offer", { peerId: a.id, offer: OFFER });
      a.emit("offer", { peerId: lone.id, offer: OFFER });
      await expectNothing([a], "offer");
      await expectNothing([lone], "offer", { ms: 50 });
    } finally {
      lone.close();
    }
  });

  it("initiator-online {roomId} goes to the others of the sender's room only", async () => {
    a.emit("initiator-online", { roomId: R });
    assert.deepEqual(await waitFor(b, "initiator-online"), { roomId: R });
    await expectNothing([a, x, y], "initiator-online");
  });

  it("initiator-online naming another room is not broadcast there", async () => {
    a.emit("initiator-online", { roomId: R2 });
    await expectNothing([x, y, b], "initiator-online");
    b.emit("initiator-online", { roomId: R });
    assert.deepEqual(await waitFor(a, "initiator-online"), { roomId: R });
  });

  it("recipient-ready {peerId: sender} goes to the others of the sender's room", async () => {
    b.emit("recipient-ready", { roomId: R, peerId: b.id });
    assert.deepEqual(await waitFor(a, "recipient-ready"), { peerId: b.id });
    await expectNothing([b, x, y], "recipient-ready");
  });

  it("recipient-ready naming another room is not broadcast there", async () => {
    b.emit("recipient-ready", { roomId: R2, peerId: b.id });
    await expectNothing([x, y, a], "recipient-ready");
  });

  it("disconnect: peer-disconnected to the others on the other worker; Redis unbound; empty room TTL 800–900", async () => {
    const bid = b.id;
    b.close();
    assert.deepEqual(await waitFor(a, "peer-disconnected"), { peerId: bid });
    await eventually("socket key of b deleted", async () => (await c.redisCli("EXISTS", `socket:${bid}`)) === "0");
    assert.equal(await c.redisCli("SISMEMBER", `room:${R}:sockets`, bid), "0");
    await expectNothing([x, y], "peer-disconnected");
    const busy = Number(await c.redisCli("TTL", `room:${R}`));
    assert.ok(busy > 86000, `room with a member keeps ~24h: ${busy}`);

    const aid = a.id;
    a.close();
    await eventually("room set empty", async () => (await c.redisCli("SCARD", `room:${R}:sockets`)) === "0");
    await eventually("socket key of a deleted", async () => (await c.redisCli("EXISTS", `socket:${aid}`)) === "0");
    assert.equal(await c.redisCli("EXISTS", `room:${R}`), "1", "empty room kept for a while");
    const ttl = Number(await c.redisCli("TTL", `room:${R}`));
    assert.ok(ttl >= 800 && ttl <= 900, `empty room TTL between 800 and 900: ${ttl}`);
  });

  it("a peer that re-joins after a disconnect gets ready to the one left", async () => {
    b.close();
    await waitFor(a, "peer-disconnected");
    const b2 = await connect(c.workers[1].url);
    try {
      assert.equal((await join(b2, R)).success, true);
      assert.deepEqual(await waitFor(a, "ready", { pred: (p) => p.peerId === b2.id }), { peerId: b2.id });
      b2.emit("offer", { peerId: a.id, offer: OFFER });
      assert.deepEqual(await waitFor(a, "offer"), { offer: OFFER, from: b2.id, peerId: b2.id });
    } finally {
      b2.close();
    }
  });

  it("many rooms at once: every pair relays across workers, nothing crosses rooms", async () => {
    const pairs = [];
    try {
      for (let i = 0; i < 8; i++) {
        const roomId = await createRoom(api);
        const p = await connect(c.workers[i % 2].url);
        const q = await connect(c.workers[(i + 1) % 2].url);
        assert.equal((await join(p, roomId)).success, true);
        assert.equal((await join(q, roomId)).success, true);
        pairs.push([p, q]);
      }
      for (const [p, q] of pairs) p.emit("offer", { peerId: q.id, offer: { ...OFFER, sdp: `room-of-${p.id}` } });
      for (const [p, q] of pairs) {
        assert.deepEqual(await waitFor(q, "offer"), { offer: { ...OFFER, sdp: `room-of-${p.id}` }, from: p.id, peerId: p.id });
      }
      await expectNothing(pairs.flat(), "offer", { pred: () => true, ms: 300 });
    } finally {
      closeAll(pairs.flat());
    }
  });
});
