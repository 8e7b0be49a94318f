// get_room from a pool of reserved ids (docs/architecture.md, "get_room from
// a pool"): real redis-server and room API; what a client and Redis see.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { startCluster } from "../lib/cluster.mjs";
import { connect, closeAll, eventually, getJson, join, postJson, request, roomsOpen, sleep } from "./helpers.mjs";

const RESERVE_S = 120; // PD_POOL_RESERVE_S
const DAY_S = 86400;

async function metric(api, name) {
  const r = await request(api, "GET", "/metrics");
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(r.body);
  return m ? Number(m[1]) : NaN;
}

async function getRoom(api) {
  const r = await getJson(api, "/api/get_room");
  assert.equal(r.status, 200, r.body);
  return r.json.roomId;
}

describe("get_room from the pool (PD_ROOM_POOL 8)", { timeout: 180000 }, () => {
  let c;
  let api;
  before(async () => {
    c = await startCluster({
      workers: 1,
      roomApiEnv: { PD_ROOM_POOL: "8", PD_RESTORE_HOLD_MS: "0", PD_API_RATE: "100000", PD_API_BURST: "100000" },
      // Many joins from one test address; the limit has its own tests.
      // A wait for claims far longer than any claim takes, even on a busy
      // machine: the tests assert that joins wait, not how fast claims land.
      signalEnv: { DISABLE_JOIN_RATE_LIMIT: "1", PD_JOIN_RESERVED_WAIT_MS: "15000" },
    });
    api = c.roomApi.url;
  });
  after(async () => {
    await c?.stop();
  });

  /** Every pooled id answered so far has had its claim answered by Redis. */
  async function claimsDone() {
    await eventually("the claims answered", async () => (await metric(api, "privydrop_roomapi_pool_claims_pending")) === 0);
  }

  it("hands out each reserved id once, claimed for a day right after the answer; the rest are taken, short-lived and closed to joins", async () => {
    const handed = [];
    for (let i = 0; i < 40; i++) handed.push(await getRoom(api));
    await eventually("the pool holds ids", async () => (await metric(api, "privydrop_roomapi_pool_ids")) > 0);
    assert.ok((await metric(api, "privydrop_roomapi_pool_ids")) <= 8);
    const hits0 = await metric(api, "privydrop_roomapi_pool_hits_total");
    handed.push(await getRoom(api));
    assert.equal(await metric(api, "privydrop_roomapi_pool_hits_total"), hits0 + 1, "answered from the pool");
    assert.equal(new Set(handed).size, handed.length, `unique: ${handed.join(",")}`);
    // The claims follow the answers: every handed-out room lives a day.
    await claimsDone();
    for (const id of handed) {
      assert.match(id, /^\d{4}$/);
      assert.ok(Number(await c.redisCli("TTL", `room:${id}`)) > DAY_S - 60, `room:${id} claimed`);
      assert.equal(await c.redisCli("HEXISTS", `room:${id}`, "reserved"), "0");
    }
    // The reserved ones still in the pool: rooms that exist (nobody else
    // gets them), with the reservation's life only, and no join gets in.
    const reserved = await eventually("ids reserved again", async () => {
      const all = (await c.redisCli("KEYS", "room:*")).split("\n").filter(Boolean).map((k) => k.slice(5));
      const r = all.filter((id) => !handed.includes(id));
      return r.length > 0 ? r : null;
    });
    assert.ok(reserved.length <= 8, `reserved: ${reserved.join(",")}`);
    const eve = await connect(c.workers[0].url);
    try {
      for (const id of reserved) {
        const ttl = Number(await c.redisCli("TTL", `room:${id}`));
        assert.ok(ttl > 0 && ttl <= RESERVE_S, `room:${id} TTL ${ttl}`);
        assert.deepEqual((await postJson(api, "/api/check_room", { roomId: id })).json, { available: false });
        assert.equal((await postJson(api, "/api/create_room", { roomId: id })).json.success, false);
      }
      // The worker waits for a claim (PD_JOIN_RESERVED_WAIT_MS, 15 s here), none
      // comes: refused as a room that does not exist.
      const r = await join(eve, reserved[0], { timeout: 60000 });
      assert.equal(r.success, false, JSON.stringify(r));
      assert.equal(r.message, "Room does not exist");
      assert.equal(await c.redisCli("SCARD", `room:${reserved[0]}:sockets`), "0");
      assert.equal(await c.redisCli("HEXISTS", `room:${reserved[0]}`, "reserved"), "1", "still reserved");
      const waits = await request(c.workers[0].url, "GET", "/metrics");
      assert.match(waits.body, /^privydrop_signal_join_waits_total\{result="timeout"\} 1$/m);
    } finally {
      closeAll(eve);
    }
  });

  it("Redis emptied under a live link (FLUSHALL): every id answered after it exists, claimed, and goes out once", async () => {
    for (let i = 0; i < 20; i++) await getRoom(api);
    await eventually("the pool holds ids", async () => (await metric(api, "privydrop_roomapi_pool_ids")) > 0);
    await claimsDone();
    const created0 = await metric(api, 'privydrop_roomapi_pool_claims_total\\{result="created"\\}');
    await c.redisCli("FLUSHALL");
    const ids = [];
    for (let i = 0; i < 60; i++) {
      const id = await getRoom(api);
      ids.push(id);
      await claimsDone();
      assert.equal(await c.redisCli("HEXISTS", `room:${id}`, "reserved"), "0", `room:${id} claimed`);
      assert.ok(Number(await c.redisCli("TTL", `room:${id}`)) > DAY_S - 60, `room:${id} lives a day`);
    }
    assert.equal(new Set(ids).size, ids.length, `unique: ${ids.join(",")}`);
    // The first id after the FLUSHALL came from the old pool: its claim
    // created the room again, and the pool started over.
    assert.ok((await metric(api, 'privydrop_roomapi_pool_claims_total\\{result="created"\\}')) > created0);
  });

  it("a client that joins the moment get_room answers gets in, every time", async () => {
    const sockets = [];
    const hits0 = await metric(api, "privydrop_roomapi_pool_hits_total");
    const waits = async (result) => metric(c.workers[0].url, `privydrop_signal_join_waits_total\\{result="${result}"\\}`) || 0;
    const [timeouts0, gone0] = [await waits("timeout"), await waits("gone")];
    try {
      for (let round = 0; round < 5; round++) {
        const results = await Promise.all(Array.from({ length: 20 }, async () => {
          const s = await connect(c.workers[0].url);
          sockets.push(s);
          const id = await getRoom(api);
          return { id, r: await join(s, id, { timeout: 20000 }) };
        }));
        for (const { id, r } of results) assert.equal(r.success, true, `${id}: ${JSON.stringify(r)}`);
        assert.equal(new Set(results.map((x) => x.id)).size, results.length);
      }
      // Each round found the pool refilled since the one before.
      assert.ok((await metric(api, "privydrop_roomapi_pool_hits_total")) >= hits0 + 5, "answered from the pool");
      assert.equal(await waits("timeout"), timeouts0, "no join waited in vain");
      assert.equal(await waits("gone"), gone0);
    } finally {
      closeAll(sockets);
    }
  });

  it("Redis refusing writes with the link up (no replicas to write to): every get_room is answered, none waits on reservations sent again and again", async () => {
    // Every write refused (NOREPLICAS: this Redis has no replica), as a
    // Redis out of memory refuses some.
    await c.redisCli("CONFIG", "SET", "min-replicas-to-write", "1");
    let res;
    try {
      // Without a pause between failed reservations, a get_room waiting
      // for ids stayed parked as long as Redis refused (here: until the
      // request's own timeout).
      res = await Promise.all(Array.from({ length: 30 }, () => getJson(api, "/api/get_room", { timeout: 15000 })));
    } finally {
      await c.redisCli("CONFIG", "SET", "min-replicas-to-write", "0");
    }
    for (const r of res) assert.ok([200, 500, 503].includes(r.status), `${r.status} ${r.body}`);
    // The pool's 8 ids at most were answered; the rest met the refusal.
    assert.ok(res.filter((r) => r.status !== 200).length >= 30 - 8, res.map((r) => r.status).join(","));
    await eventually("nothing left waiting", async () => (await metric(api, "privydrop_roomapi_requests_inflight")) === 0);
    // And the pool serves again once Redis does.
    await eventually("get_room answered again", async () => (await getJson(api, "/api/get_room")).status === 200);
  });

  it("get_rooms that find the pool empty wait for the ids on their way, and each gets one of them", async () => {
    const waits = async (result) => (await metric(api, `privydrop_roomapi_pool_waits_total\\{result="${result}"\\}`)) || 0;
    const received = async () => metric(api, 'privydrop_roomapi_requests_total\\{route="get_room"\\}');
    // From a pool that works: refilled since any earlier trouble (a
    // get_room starts a refill, not sooner than 100 ms after a failed one).
    await eventually("the pool holds ids", async () => {
      await getRoom(api);
      return (await metric(api, "privydrop_roomapi_pool_ids")) > 0;
    });
    const [pooled0, redis0, unavailable0, got0] = [await waits("pooled"), await waits("redis"), await waits("unavailable"), await received()];
    const N = 20; // the pool holds 8: the rest find it empty
    // Redis holds every command (the room API's link stays up: its
    // watchdog gives a PING 3 s): the reservations sent meanwhile stay on
    // their way until UNPAUSE.
    await c.redisCli("CLIENT", "PAUSE", "2500", "ALL");
    const t0 = Date.now();
    const pending = Array.from({ length: N }, () => getJson(api, "/api/get_room", { timeout: 20000 }));
    await eventually("the room API has every get_room", async () => (await received()) >= got0 + N);
    const allInPause = Date.now() - t0 < 2000;
    await c.redisCli("CLIENT", "UNPAUSE");
    const res = await Promise.all(pending);
    for (const r of res) assert.equal(r.status, 200, r.body);
    const ids = res.map((r) => r.json.roomId);
    assert.equal(new Set(ids).size, N, `unique: ${ids.join(",")}`);
    // Those that waited got pooled ids; none was left without one (the
    // reservations all came back) or turned away.
    if (allInPause) assert.ok((await waits("pooled")) > pooled0, "some get_rooms waited for ids on their way");
    else console.log("# the get_rooms took over 2 s to arrive: whether any waited is not asserted");
    assert.equal(await waits("redis"), redis0);
    assert.equal(await waits("unavailable"), unavailable0);
    await claimsDone();
    for (const id of ids) {
      assert.ok(Number(await c.redisCli("TTL", `room:${id}`)) > DAY_S - 60, `room:${id} claimed`);
      assert.equal(await c.redisCli("HEXISTS", `room:${id}`, "reserved"), "0");
    }
  });

  it("a room from the pool is joined like any other", async () => {
    const id = await getRoom(api);
    const [a, b] = [await connect(c.workers[0].url), await connect(c.workers[0].url)];
    try {
      await join(a, id);
      await join(b, id);
      assert.equal(await c.redisCli("SCARD", `room:${id}:sockets`), "2");
    } finally {
      closeAll(a, b);
    }
  });

  it("Redis restarted empty: no id reserved before is handed out", async () => {
    for (let i = 0; i < 10; i++) await getRoom(api);
    await eventually("the pool holds ids", async () => (await metric(api, "privydrop_roomapi_pool_ids")) > 0);
    await c.stopRedis();
    await c.startRedis();
    await eventually("the room API back on Redis", async () =>
      (await getJson(api, "/health/detailed")).json?.dependencies?.redis?.status === "connected");
    await roomsOpen(api);
    for (let i = 0; i < 10; i++) {
      const id = await getRoom(api);
      assert.equal(await c.redisCli("HEXISTS", `room:${id}`, "created_at"), "1", `room:${id} exists`);
    }
  });

});

describe("get_room with the pool off (PD_ROOM_POOL 0)", { timeout: 60000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 1, roomApiEnv: { PD_ROOM_POOL: "0" } });
  });
  after(async () => {
    await c?.stop();
  });

  it("reserves nothing: every room in Redis is one handed out, with a day to live", async () => {
    const ids = [];
    for (let i = 0; i < 20; i++) ids.push(await getRoom(c.roomApi.url));
    await sleep(50);
    const all = (await c.redisCli("KEYS", "room:*")).split("\n").filter(Boolean).map((k) => k.slice(5));
    assert.deepEqual(all.sort(), [...ids].sort());
    assert.equal(await metric(c.roomApi.url, "privydrop_roomapi_pool_hits_total"), 0);
  });
});
