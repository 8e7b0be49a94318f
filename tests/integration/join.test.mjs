// join rules (docs/wire-protocol.md §Join), in their order, with the peers of
// a room on different workers.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { startCluster } from "../lib/cluster.mjs";
import { closeAll, connect, createRoom, expectNothing, join, sleep, uniqueIp, uniqueRoomId, waitFor } from "./helpers.mjs";

const RATE_RE = /^Rate limit exceeded\. Try again in (\d+)s\. Attempts left: 0\.$/;

describe("join", { timeout: 120000 }, () => {
  let c;
  let api;
  let w1;
  let w2;
  before(async () => {
    c = await startCluster({ workers: 2 });
    api = c.roomApi.url;
    w1 = c.workers[0].url;
    w2 = c.workers[1].url;
  });
  after(async () => {
    await c?.stop();
  });

  it("success: joinResponse to the joiner, ready {peerId} to the others across workers", async () => {
    const roomId = await createRoom(api);
    const a = await connect(w1);
    const b = await connect(w2);
    const d = await connect(w1);
    try {
      assert.deepEqual(await join(a, roomId), { success: true, message: "Successfully joined room", roomId });
      assert.deepEqual(await join(b, roomId), { success: true, message: "Successfully joined room", roomId });
      assert.deepEqual(await waitFor(a, "ready"), { peerId: b.id });
      assert.deepEqual(await join(d, roomId), { success: true, message: "Successfully joined room", roomId });
      assert.deepEqual(await waitFor(a, "ready", { pred: (p) => p.peerId === d.id }), { peerId: d.id });
      assert.deepEqual(await waitFor(b, "ready"), { peerId: d.id });
      // The joiner never gets its own ready.
      for (const s of [a, b, d]) {
        assert.ok(!(s.received.get("ready") || []).some((p) => p.peerId === s.id), `${s.id} got its own ready`);
      }
      // Redis: bound both ways, TTLs refreshed.
      assert.equal(await c.redisCli("SCARD", `room:${roomId}:sockets`), "3");
      for (const s of [a, b, d]) {
        assert.equal(await c.redisCli("GET", `socket:${s.id}`), roomId);
        assert.equal(await c.redisCli("SISMEMBER", `room:${roomId}:sockets`, s.id), "1");
      }
    } finally {
      closeAll(a, b, d);
    }
  });

  it("join refreshes the room TTL to ~86400 and sets socket:<sid> TTL ~90000", async () => {
    const roomId = await createRoom(api);
    await c.redisCli("EXPIRE", `room:${roomId}`, 1000);
    const a = await connect(w2);
    try {
      assert.equal((await join(a, roomId)).success, true);
      const ttl = Number(await c.redisCli("TTL", `room:${roomId}`));
      assert.ok(ttl > 86000 && ttl <= 86400, `room TTL refreshed: ${ttl}`);
      const sttl = Number(await c.redisCli("TTL", `room:${roomId}:sockets`));
      assert.ok(sttl > 86000 && sttl <= 86400, `room set TTL: ${sttl}`);
      const kttl = Number(await c.redisCli("TTL", `socket:${a.id}`));
      assert.ok(kttl > 89000 && kttl <= 90000, `socket key TTL: ${kttl}`);
    } finally {
      a.close();
    }
  });

  it("missing room → 'Room does not exist'", async () => {
    const a = await connect(w1);
    try {
      const roomId = uniqueRoomId("missing");
      assert.deepEqual(await join(a, roomId), { success: false, message: "Room does not exist", roomId });
      assert.equal(await c.redisCli("EXISTS", `socket:${a.id}`), "0");
      assert.equal(await c.redisCli("EXISTS", `room:${roomId}:sockets`), "0");
    } finally {
      a.close();
    }
  });

  it("bound to another room → 'Socket is already bound to another room'; no ready leaks", async () => {
    const r1 = await createRoom(api);
    const r2 = await createRoom(api);
    const a = await connect(w1);
    const other = await connect(w2);
    try {
      assert.equal((await join(other, r2)).success, true);
      assert.equal((await join(a, r1)).success, true);
      assert.deepEqual(await join(a, r2), { success: false, message: "Socket is already bound to another room", roomId: r2 });
      assert.equal(await c.redisCli("GET", `socket:${a.id}`), r1);
      assert.equal(await c.redisCli("SISMEMBER", `room:${r2}:sockets`, a.id), "0");
      await expectNothing([other], "ready");
    } finally {
      closeAll(a, other);
    }
  });

  it("re-join of the same room succeeds and is not rate limited", async () => {
    const ip = uniqueIp();
    const roomId = await createRoom(api);
    const a = await connect(w1, { ip });
    const b = await connect(w2, { ip });
    try {
      assert.equal((await join(a, roomId)).success, true); // 1st counted join from ip
      assert.equal((await join(b, roomId)).success, true); // 2nd
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(await join(a, roomId), { success: true, message: "Successfully joined room", roomId }, `re-join ${i}`);
      }
      assert.equal(await c.redisCli("SCARD", `room:${roomId}:sockets`), "2");
    } finally {
      closeAll(a, b);
    }
  });

  it("rate limit: 3rd join within 5 s from one client IP (across workers)", async () => {
    const ip = uniqueIp();
    const roomId = await createRoom(api);
    const s = [await connect(w1, { ip }), await connect(w2, { ip }), await connect(w1, { ip }), await connect(w2, { ip })];
    const fresh = await connect(w2); // another IP: unaffected
    try {
      assert.equal((await join(s[0], roomId)).success, true);
      assert.equal((await join(s[1], roomId)).success, true);
      const r3 = await join(s[2], roomId);
      assert.equal(r3.success, false);
      assert.equal(r3.roomId, roomId);
      const m = RATE_RE.exec(r3.message);
      assert.ok(m, `rate limit message: ${JSON.stringify(r3.message)}`);
      const wait = Number(m[1]);
      assert.ok(wait >= 1 && wait <= 5, `retry-after seconds within the window: ${wait}`);
      assert.equal(await c.redisCli("SISMEMBER", `room:${roomId}:sockets`, s[2].id), "0");
      assert.equal((await join(fresh, roomId)).success, true, "another IP is not limited");
      // Rate limit comes before "room missing".
      const missing = uniqueRoomId("nope");
      const r4 = await join(s[3], missing);
      assert.equal(r4.success, false);
      assert.match(r4.message, RATE_RE);
      // Redis key of the limiter.
      assert.equal(await c.redisCli("TYPE", `ratelimit:join:${ip}`), "zset");
      const ttl = Number(await c.redisCli("TTL", `ratelimit:join:${ip}`));
      assert.ok(ttl > 0 && ttl <= 5, `ratelimit key TTL ≤ 5: ${ttl}`);
      // The window slides: 5 s after the last attempt from ip, a join works again.
      const tLast = Date.now();
      await sleep(5300 - (Date.now() - tLast));
      assert.deepEqual(await join(s[2], roomId), { success: true, message: "Successfully joined room", roomId },
        "joins allowed again once the window has passed");
    } finally {
      closeAll(s, fresh);
    }
  });

  it("order: 'already bound' is checked before the rate limit", async () => {
    const ip = uniqueIp();
    const r1 = await createRoom(api);
    const r2 = await createRoom(api);
    const a = await connect(w1, { ip });
    const b = await connect(w2, { ip });
    try {
      assert.equal((await join(a, r1)).success, true);
      assert.equal((await join(b, r1)).success, true);
      // A third counted join from ip would be limited, but a is bound elsewhere.
      assert.deepEqual(await join(a, r2), { success: false, message: "Socket is already bound to another room", roomId: r2 });
    } finally {
      closeAll(a, b);
    }
  });

  it("joins failing for a missing room count towards the limit", async () => {
    const ip = uniqueIp();
    const a = await connect(w1, { ip });
    const b = await connect(w2, { ip });
    try {
      assert.equal((await join(a, uniqueRoomId("m"))).message, "Room does not exist");
      assert.equal((await join(b, uniqueRoomId("m"))).message, "Room does not exist");
      const roomId = await createRoom(api);
      assert.match((await join(a, roomId)).message, RATE_RE);
    } finally {
      closeAll(a, b);
    }
  });
});

describe("join rate limit: client IP from X-Forwarded-For only for trusted proxies", { timeout: 60000 }, () => {
  let c;
  before(async () => {
    // 127.0.0.1 is not trusted here, so every client is 127.0.0.1 whatever it claims.
    c = await startCluster({ workers: 2, signalEnv: { PD_TRUSTED_PROXIES: "192.0.2.1/32" } });
  });
  after(async () => {
    await c?.stop();
  });

  it("an untrusted peer's X-Forwarded-For is ignored", async () => {
    const roomId = await createRoom(c.roomApi.url);
    const s = [await connect(c.workers[0].url), await connect(c.workers[1].url), await connect(c.workers[0].url)];
    try {
      assert.notEqual(s[0].ip, s[1].ip);
      assert.equal((await join(s[0], roomId)).success, true);
      assert.equal((await join(s[1], roomId)).success, true);
      assert.match((await join(s[2], roomId)).message, RATE_RE);
      const keys = (await c.redisCli("KEYS", "ratelimit:join:*")).split("\n").filter(Boolean);
      assert.deepEqual(keys, ["ratelimit:join:127.0.0.1"]);
    } finally {
      closeAll(s);
    }
  });
});

describe("join: DISABLE_JOIN_RATE_LIMIT=1", { timeout: 60000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2, roomApi: true, signalEnv: { DISABLE_JOIN_RATE_LIMIT: "1" } });
  });
  after(async () => {
    await c?.stop();
  });

  it("many joins from one IP all succeed", async () => {
    const roomId = await createRoom(c.roomApi.url);
    const ip = uniqueIp();
    const socks = [];
    try {
      for (let i = 0; i < 6; i++) {
        const s = await connect(c.workers[i % 2].url, { ip });
        socks.push(s);
        assert.deepEqual(await join(s, roomId), { success: true, message: "Successfully joined room", roomId });
      }
    } finally {
      closeAll(socks);
    }
  });
});
