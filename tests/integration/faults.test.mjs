// Faults against real processes (issue 4): Redis stopped, restarted, frozen or
// answering with a dropped connection; a worker SIGKILLed; SIGTERM drain;
// missed pongs. The cluster must recover by itself.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { after, before, describe, it } from "node:test";

import { freePort, httpGet, startCluster } from "../lib/cluster.mjs";
import { RedisConn } from "../lib/redis.mjs";
import {
  closeAll, connect, createRoom, eventually, expectNothing, getJson, join, postJson, sleep, uniqueIp, waitFor,
} from "./helpers.mjs";
import { closeOf, metricValue, metrics, nextTextStarting, rawJoin, rawSession } from "./wire.mjs";

const ready = async (w) => (await httpGet(`${w.url}/readyz`).catch(() => ({ status: 0 }))).status;

/** Keep relaying offers a → b every `ms` until stop(); every one must arrive. */
function relayLoop(a, b, ms = 150) {
  let n = 0;
  let stopped = false;
  const failures = [];
  const run = (async () => {
    while (!stopped) {
      const tag = `loop-${++n}`;
      a.emit("offer", { peerId: b.id, offer: { type: "offer", sdp: tag } });
      try {
        await waitFor(b, "offer", { pred: (o) => o.offer?.sdp === tag, timeout: 3000 });
      } catch (e) {
        failures.push(e.message);
      }
      await sleep(ms);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await run;
      return { sent: n, failures };
    },
  };
}

/** Cross-worker relay a → b works (retried until `timeout`). */
async function crossRelays(a, b, what, timeout = 10000) {
  await eventually(what, async () => {
    const tag = `x-${Date.now()}-${Math.random()}`;
    a.emit("offer", { peerId: b.id, offer: { type: "offer", sdp: tag } });
    try {
      await waitFor(b, "offer", { pred: (o) => o.offer?.sdp === tag, timeout: 700 });
      return true;
    } catch {
      return false;
    }
  }, { timeout });
}

describe("Redis stops and restarts (for real)", { timeout: 120000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2 });
  });
  after(async () => {
    await c?.stop();
  });

  it("workers and room API stay up and not-ready, joins get the server error, same-worker relay never stops; all re-register, re-subscribe and relay across workers again", async () => {
    const api = c.roomApi.url;
    const rooms = [await createRoom(api), await createRoom(api), await createRoom(api)];
    const pairs = [];
    const sameRoom = await createRoom(api);
    const s1 = await connect(c.workers[0].url);
    const s2 = await connect(c.workers[0].url);
    const late = await connect(c.workers[1].url);
    const all = [s1, s2, late];
    try {
      for (const r of rooms) {
        const a = await connect(c.workers[0].url);
        const b = await connect(c.workers[1].url);
        all.push(a, b);
        assert.equal((await join(a, r)).success, true);
        assert.equal((await join(b, r)).success, true);
        pairs.push([a, b, r]);
      }
      assert.equal((await join(s1, sameRoom)).success, true);
      assert.equal((await join(s2, sameRoom)).success, true);
      const loop = relayLoop(s1, s2);

      await c.stopRedis();
      for (const w of c.workers) {
        await eventually(`${w.url} not ready`, async () => (await ready(w)) === 503, { timeout: 10000 });
        assert.equal((await httpGet(`${w.url}/healthz`)).status, 200);
      }
      const det = await eventually("/health/detailed 503", async () => {
        const r = await getJson(api, "/health/detailed");
        return r.status === 503 ? r : null;
      }, { timeout: 10000 });
      assert.equal(det.json.dependencies.redis.status, "disconnected");
      const cr = await postJson(api, "/api/create_room", { roomId: "outage-room-1" }, { headers: { "x-forwarded-for": uniqueIp() } });
      assert.equal(cr.status, 503);
      assert.deepEqual(cr.json, { error: "Service temporarily unavailable" });
      // Answered while Redis is down (it is started again only after this):
      // refused on the spot, not queued until Redis returns.
      const jr = await join(late, rooms[0], { timeout: 15000 });
      assert.equal(jr.success, false);
      assert.equal(jr.message, "Server error while joining room");
      // Down for longer than several backoff periods.
      await sleep(4000);
      assert.ok(c.workers.every((w) => w.proc.running) && c.roomApi.proc.running, "every service is still up");

      await c.startRedis();
      const tUp = Date.now();
      for (const w of c.workers) await eventually(`${w.url} ready again`, async () => (await ready(w)) === 200, { timeout: 12000 });
      console.log(`# workers ready ${Date.now() - tUp} ms after Redis came back`);

      // Re-registered: heartbeat, membership, connection counts.
      for (const w of c.workers) {
        assert.equal(await c.redisCli("SISMEMBER", "pd:workers", w.id), "1", `${w.id} re-registered`);
        assert.equal(await c.redisCli("EXISTS", `pd:worker:${w.id}:hb`), "1");
      }
      await eventually("pd:conns counts repaired", async () =>
        Number(await c.redisCli("HGET", "pd:conns", c.workers[0].id)) === 5
        && Number(await c.redisCli("HGET", "pd:conns", c.workers[1].id)) === 4, { timeout: 10000 });
      // Re-subscribed: every room channel that has a member is subscribed again.
      await eventually("every room channel re-subscribed", async () => {
        const chans = (await c.redisCli("PUBSUB", "CHANNELS", "pd:room:*")).split("\n");
        return [...rooms, sameRoom].every((r) => chans.includes(`pd:room:${r}`));
      }, { timeout: 10000 });
      for (const [a, b, r] of pairs) {
        assert.equal(await c.redisCli("PUBSUB", "NUMSUB", `pd:room:${r}`).then((x) => x.split("\n")[1]), "2",
          `both workers subscribed to ${r}`);
        await crossRelays(a, b, `relay ${r} w1 → w2`);
        await crossRelays(b, a, `relay ${r} w2 → w1`);
      }
      // Redis came back empty: the rooms are restored from their live
      // members (each worker binds its own), so their ids are taken again
      // and cannot be handed to a stranger.
      for (const [a, b, r] of pairs) {
        await eventually(`room ${r} restored with both members`, async () =>
          (await c.redisCli("SMEMBERS", `room:${r}:sockets`)).split("\n").sort().join(" ") === [a.id, b.id].sort().join(" "),
          { timeout: 10000 });
        assert.equal(await c.redisCli("GET", `socket:${a.id}`), r);
        assert.equal(await c.redisCli("SISMEMBER", `pd:worker:${c.workers[1].id}:sockets`, b.id), "1");
        const ttl = Number(await c.redisCli("TTL", `room:${r}`));
        assert.ok(ttl > 86000, `restored with the full life (${ttl})`);
        // The room API reconnects on its own schedule, then holds its room
        // routes for PD_RESTORE_HOLD_MS (15 s).
        const again = await eventually("the room API answers", async () => {
          const x = await postJson(api, "/api/check_room", { roomId: r }, { headers: { "x-forwarded-for": uniqueIp() } });
          return x.status === 200 ? x : null;
        }, { timeout: 60000, interval: 200 });
        assert.equal(again.json.available, false, `${r} is taken again`);
      }
      const jr2 = await join(late, rooms[0]);
      assert.equal(jr2.success, true, "a room with live members exists again for a late joiner");
      const res = await loop.stop();
      assert.deepEqual(res.failures, [], `same-worker relay never stopped (${res.sent} offers)`);
      assert.ok(res.sent >= 20);
    } finally {
      closeAll(all);
    }
  });
});

describe("rooms with live members are renewed (PD_ROOM_REFRESH_MS 1000)", { timeout: 90000 }, () => {
  let c;
  before(async () => {
    // A short hold, so that a stranger can create a room before the frozen
    // workers are back (what the hold normally prevents; see the next describe).
    c = await startCluster({ workers: 2, signalEnv: { PD_ROOM_REFRESH_MS: "1000" }, roomApiEnv: { PD_RESTORE_HOLD_MS: "2000" } });
  });
  after(async () => {
    await c?.stop();
  });
  const ttl = async (k) => Number(await c.redisCli("TTL", k));
  const members = async (r) => (await c.redisCli("SMEMBERS", `room:${r}:sockets`)).split("\n").filter(Boolean).sort().join(" ");

  it("a room nears the end of its life while its members stay: renewed, bindings too, and its id is not free", async () => {
    const api = c.roomApi.url;
    const r = await createRoom(api);
    const a = await connect(c.workers[0].url);
    const b = await connect(c.workers[1].url);
    try {
      assert.equal((await join(a, r)).success, true);
      assert.equal((await join(b, r)).success, true);
      // As if 24 h had nearly passed since the last join.
      for (const k of [`room:${r}`, `room:${r}:sockets`, `socket:${a.id}`, `socket:${b.id}`]) await c.redisCli("EXPIRE", k, "120");
      // Each worker renews the room and its own members' bindings.
      await eventually("renewed by both workers", async () => (await ttl(`room:${r}`)) > 80000
        && (await ttl(`room:${r}:sockets`)) > 80000
        && (await ttl(`socket:${a.id}`)) > 85000 && (await ttl(`socket:${b.id}`)) > 85000, { timeout: 60000 });
      assert.equal(await members(r), [a.id, b.id].sort().join(" "));
      const again = await postJson(api, "/api/check_room", { roomId: r }, { headers: { "x-forwarded-for": uniqueIp() } });
      assert.equal(again.json.available, false);
      // Both leave through the room API: the refreshes do not undo that.
      for (const s of [a, b]) {
        const lr = await postJson(api, "/api/leave_room", { roomId: r, socketId: s.id }, { headers: { "x-forwarded-for": uniqueIp() } });
        assert.equal(lr.json.success, true);
      }
      await sleep(2500); // more than two refresh periods
      assert.ok((await ttl(`room:${r}`)) <= 900, "an emptied room keeps its 900 s");
      assert.equal(await members(r), "");
      for (const s of [a, b]) assert.equal(await c.redisCli("EXISTS", `socket:${s.id}`), "0");
    } finally {
      closeAll(a, b);
    }
  });

  it("a room Redis lost is restored from its members; one someone else created meanwhile is never joined", async () => {
    const api = c.roomApi.url;
    const [r1, r2] = [await createRoom(api), await createRoom(api)];
    const [a, b, d, e] = [await connect(c.workers[0].url), await connect(c.workers[1].url),
      await connect(c.workers[0].url), await connect(c.workers[1].url)];
    const frozen = [];
    try {
      for (const [s, r] of [[a, r1], [b, r1], [d, r2], [e, r2]]) assert.equal((await join(s, r)).success, true);
      // Redis restarts empty while both workers are held still, and a
      // stranger creates r2 before they are back.
      for (const w of c.workers) { process.kill(w.pid, "SIGSTOP"); frozen.push(w.pid); }
      await c.stopRedis();
      await c.startRedis();
      const cr = await eventually("the room API back", async () => {
        const x = await postJson(api, "/api/create_room", { roomId: r2 }, { headers: { "x-forwarded-for": uniqueIp() } });
        return x.status === 200 ? x : null;
      }, { timeout: 30000, interval: 200 });
      assert.equal(cr.json.message, "create room success");
      await c.redisCli("EXPIRE", `room:${r2}`, "60");
      for (const pid of frozen.splice(0)) process.kill(pid, "SIGCONT");
      await eventually("r1 restored", async () => (await members(r1)) === [a.id, b.id].sort().join(" "), { timeout: 15000 });
      assert.equal(await c.redisCli("GET", `socket:${b.id}`), r1);
      assert.equal(await c.redisCli("HEXISTS", `room:${r1}`, "restored"), "1");
      assert.ok((await ttl(`room:${r1}`)) > 80000);
      await crossRelays(a, b, "a restored room still relays");
      await sleep(2500); // more than two refresh periods
      assert.equal(await members(r2), "", "the stranger's room holds none of the old members");
      assert.equal(await c.redisCli("HEXISTS", `room:${r2}`, "restored"), "0");
      assert.ok((await ttl(`room:${r2}`)) <= 60, "and the old members do not keep it alive");
    } finally {
      for (const pid of frozen) process.kill(pid, "SIGCONT");
      closeAll(a, b, d, e);
    }
  });
});

describe("a worker with more rooms than one refresh pass takes", { timeout: 240000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 1 });
  });
  after(async () => {
    await c?.stop();
  });

  it("after Redis restarts empty, every one of its 1 100 rooms comes back with its member (1 024 per pass, the rest in the next)", async () => {
    const N = 1100;
    const rooms = Array.from({ length: N }, (_, i) => `many-${i}`);
    await c.redisCli("EVAL", "for i = 1, #ARGV do redis.call('HSET', 'room:' .. ARGV[i], 'created_at', '1') "
      + "redis.call('EXPIRE', 'room:' .. ARGV[i], 86400) end return 0", "0", ...rooms);
    const member = new Map();
    try {
      for (let i = 0; i < N; i += 100) {
        await Promise.all(rooms.slice(i, i + 100).map(async (r) => {
          const s = await connect(c.workers[0].url);
          member.set(r, s);
          assert.equal((await join(s, r)).success, true, r);
        }));
      }
      await c.stopRedis();
      await c.startRedis();
      const restored = async () => Number(await c.redisCli("EVAL", "return #redis.call('KEYS', 'room:many-*:sockets')", "0"));
      await eventually(`all ${N} rooms restored`, async () => (await restored()) === N, { timeout: 120000, interval: 500 });
      for (const r of [rooms[0], rooms[1023], rooms[1024], rooms[N - 1]]) {
        assert.equal(await c.redisCli("SMEMBERS", `room:${r}:sockets`), member.get(r).id, r);
        assert.equal(await c.redisCli("GET", `socket:${member.get(r).id}`), r);
      }
    } finally {
      closeAll(...member.values());
    }
  });
});

describe("the room API holds its room routes after Redis comes back (PD_RESTORE_HOLD_MS 120000)", { timeout: 90000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 1, roomApiEnv: { PD_RESTORE_HOLD_MS: "120000", PD_API_RATE: "1", PD_API_BURST: "3" } });
  });
  after(async () => {
    await c?.stop();
  });

  it("none at its first connection; while Redis is away and once it is back, get/create/check/leave answer 503 with Retry-After, the other routes as usual", async () => {
    const api = c.roomApi.url;
    const from = () => ({ headers: { "x-forwarded-for": uniqueIp() } });
    const heldGauge = async () => metricValue(await metrics(api), "privydrop_roomapi_rooms_held");
    const first = await getJson(api, "/api/get_room", from());
    assert.equal(first.status, 200, "no hold at the first connection");
    assert.deepEqual((await getJson(api, "/health/detailed")).json.rooms, { status: "open" });
    assert.equal(await heldGauge(), 0);

    await c.stopRedis();
    await eventually("the room API sees Redis gone", async () => (await getJson(api, "/health/detailed")).status === 503,
      { timeout: 30000, interval: 200 });
    const away = await getJson(api, "/api/get_room", from());
    assert.equal(away.status, 503);
    assert.equal(away.headers["retry-after"], "120", "the whole hold is still ahead");
    assert.equal(await heldGauge(), 1);
    await c.startRedis();
    const det = await eventually("the room API back", async () => {
      const d = await getJson(api, "/health/detailed");
      return d.status === 200 ? d : null;
    }, { timeout: 30000, interval: 200 });
    assert.equal(det.json.status, "healthy", "a hold is no health failure");
    assert.equal(det.json.rooms.status, "restoring");
    assert.ok(det.json.rooms.retry_after_s >= 1 && det.json.rooms.retry_after_s <= 120, JSON.stringify(det.json.rooms));
    const held = {
      get_room: await getJson(api, "/api/get_room", from()),
      create_room: await postJson(api, "/api/create_room", { roomId: "held-room" }, from()),
      check_room: await postJson(api, "/api/check_room", { roomId: first.json.roomId }, from()),
      leave_room: await postJson(api, "/api/leave_room", { roomId: first.json.roomId, socketId: "held-sid" }, from()),
    };
    for (const [route, r] of Object.entries(held)) {
      assert.equal(r.status, 503, `${route} held`);
      assert.deepEqual(r.json, { error: "Service temporarily unavailable" });
      const ra = Number(r.headers["retry-after"]);
      assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 120, `${route}: Retry-After ${r.headers["retry-after"]}`);
    }
    assert.equal(await c.redisCli("EXISTS", "room:held-room"), "0", "nothing was created while held");
    // Held before the per-address limit (burst 3): one address keeps
    // hearing the hold, not "too many requests".
    const ip = uniqueIp();
    for (let i = 0; i < 6; i++) {
      const r = await getJson(api, "/api/get_room", { headers: { "x-forwarded-for": ip } });
      assert.equal(r.status, 503, `request ${i + 1} from one address`);
    }
    assert.equal(await heldGauge(), 1);
    assert.equal(await c.redisCli("EXISTS", "pd:short:seeded"), "0", "no id was handed out while held");
    assert.equal((await getJson(api, "/api/ice_servers", from())).status, 200);
    assert.equal((await getJson(api, "/health")).status, 200);
    assert.equal((await postJson(api, "/api/set_track", { ref: "held" }, from())).status, 200);
  });
});

describe("Redis frozen (SIGSTOP) and thawed", { timeout: 90000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2 });
  });
  after(async () => {
    await c?.stop();
  });

  it("the watchdog declares it dead, joins fail fast, same-worker relay continues; after SIGCONT all recovers", async () => {
    const api = c.roomApi.url;
    const room = await createRoom(api);
    const a = await connect(c.workers[0].url);
    const a2 = await connect(c.workers[0].url);
    const b = await connect(c.workers[1].url);
    const late = await connect(c.workers[0].url);
    try {
      for (const s of [a, a2, b]) assert.equal((await join(s, room)).success, true);
      const loop = relayLoop(a, a2);
      c.pauseRedis();
      const t0 = Date.now();
      for (const w of c.workers) await eventually(`${w.url} not ready`, async () => (await ready(w)) === 503, { timeout: 8000 });
      console.log(`# not ready ${Date.now() - t0} ms after Redis froze`);
      // Answered while Redis is still frozen, without writing to it: had the
      // worker sent the join anyway, Redis would run it on thawing and the
      // socket would show up in the room (checked below). That, not a time
      // limit, tells "failed fast" from "waited for the watchdog".
      const jr = await join(late, room, { timeout: 15000 });
      assert.equal(jr.message, "Server error while joining room");
      const d = await getJson(api, "/health/detailed", { timeout: 8000 });
      assert.equal(d.status, 503, "room API reports the frozen Redis");
      await sleep(2000);
      c.resumeRedis();
      for (const w of c.workers) await eventually(`${w.url} ready`, async () => (await ready(w)) === 200, { timeout: 12000 });
      assert.equal(await c.redisCli("EXISTS", `socket:${late.id}`), "0", "the refused join never reached Redis");
      assert.equal(await c.redisCli("SISMEMBER", `room:${room}:sockets`, late.id), "0");
      await crossRelays(a, b, "cross-worker relay after the thaw");
      await crossRelays(b, a, "cross-worker relay after the thaw (back)");
      assert.equal((await join(late, room)).success, true);
      const res = await loop.stop();
      assert.deepEqual(res.failures, [], "same-worker relay never stopped");
    } finally {
      closeAll(a, a2, b, late);
    }
  });
});

describe("Redis that accepts and drops every connection", { timeout: 60000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 1, roomApi: false });
  });
  after(async () => {
    c?.resumeRedis();
    await c?.stop();
  });

  it("reconnects back off (capped, jittered) instead of hammering it", async () => {
    await c.stopRedis();
    // In Redis's place: a server that reads the first command, then hangs up.
    const attempts = [];
    const srv = net.createServer((s) => {
      const t = Date.now();
      s.once("data", (d) => {
        attempts.push({ t, kind: /SUBSCRIBE/i.test(d.toString()) ? "sub" : "cmd" });
        s.destroy();
      });
      s.on("error", () => {});
      setTimeout(() => s.destroy(), 2000);
    });
    await new Promise((r) => srv.listen(c.redisPort, "127.0.0.1", r));
    const windowMs = 12000;
    await sleep(windowMs);
    await new Promise((r) => srv.close(r));
    for (const kind of ["cmd", "sub"]) {
      const ts = attempts.filter((x) => x.kind === kind).map((x) => x.t);
      const gaps = ts.slice(1).map((t, i) => t - ts[i]);
      console.log(`# ${kind} link: ${ts.length} attempts in ${windowMs} ms, gaps ${JSON.stringify(gaps)}`);
      // 100 ms doubling to a 5 s cap: about 8 attempts in 12 s; a fixed
      // 100 ms retry would be over a hundred.
      assert.ok(ts.length >= 3 && ts.length <= 16, `${kind}: ${ts.length} attempts in ${windowMs} ms`);
      assert.ok(gaps.every((g) => g <= 5000 * 1.25 + 3500), `${kind}: every gap within the cap (+ connect deadline)`);
      assert.ok(gaps[gaps.length - 1] >= 4 * gaps[0], `${kind}: the delay grows`);
    }
    // Jittered: the two links do not retry in lockstep.
    const g = (kind) => {
      const ts = attempts.filter((x) => x.kind === kind).map((x) => x.t);
      return ts.slice(1).map((t, i) => t - ts[i]);
    };
    const [gc, gs] = [g("cmd"), g("sub")];
    const n = Math.min(gc.length, gs.length);
    assert.ok(gc.slice(0, n).some((x, i) => Math.abs(x - gs[i]) > 20), `gaps differ between links: ${gc} / ${gs}`);
    await c.startRedis();
    await eventually("ready again", async () => (await ready(c.workers[0])) === 200, { timeout: 12000 });
  });
});

describe("a worker SIGKILLed", { timeout: 90000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2 });
  });
  after(async () => {
    await c?.stop();
  });

  it("within 30 s its peers get peer-disconnected once and its sockets are gone from every room", async () => {
    const api = c.roomApi.url;
    const r1 = await createRoom(api);
    const r2 = await createRoom(api);
    const r3 = await createRoom(api);
    const a = await connect(c.workers[0].url);
    const d = await connect(c.workers[0].url);
    const b = await connect(c.workers[1].url);
    const e = await connect(c.workers[1].url);
    const lone = await connect(c.workers[1].url);
    try {
      assert.equal((await join(a, r1)).success, true);
      assert.equal((await join(b, r1)).success, true);
      assert.equal((await join(d, r2)).success, true);
      assert.equal((await join(e, r2)).success, true);
      assert.equal((await join(lone, r3)).success, true);
      const victim = c.workers[1];
      const [aid, bid, did, eid] = [a.id, b.id, d.id, e.id]; // socket.io-client forgets ids on disconnect
      const gone = [bid, eid, lone.id];
      const t0 = Date.now();
      assert.deepEqual(await c.killWorker(1), { code: null, signal: "SIGKILL" });
      const [pa, pd] = await Promise.all([
        waitFor(a, "peer-disconnected", { timeout: 30000 }),
        waitFor(d, "peer-disconnected", { timeout: 30000 }),
      ]);
      const ms = Date.now() - t0;
      console.log(`# peers told ${ms} ms after SIGKILL`);
      assert.deepEqual(pa, { peerId: bid });
      assert.deepEqual(pd, { peerId: eid });
      assert.ok(ms < 30000);
      for (const sid of gone) assert.equal(await c.redisCli("EXISTS", `socket:${sid}`), "0", `socket:${sid} reaped`);
      assert.equal(await c.redisCli("SMEMBERS", `room:${r1}:sockets`), aid);
      assert.equal(await c.redisCli("SMEMBERS", `room:${r2}:sockets`), did);
      assert.equal(await c.redisCli("SCARD", `room:${r3}:sockets`), "0");
      const ttl = Number(await c.redisCli("TTL", `room:${r3}`));
      assert.ok(ttl > 0 && ttl <= 900, `a room left empty by the reaper gets the 900 s TTL (${ttl})`);
      assert.equal(await c.redisCli("SISMEMBER", "pd:workers", victim.id), "0");
      assert.equal(await c.redisCli("HEXISTS", "pd:conns", victim.id), "0");
      assert.equal(await c.redisCli("EXISTS", `pd:worker:${victim.id}:sockets`), "0");
      await expectNothing([a, d], "peer-disconnected", { ms: 6000 }); // one more reaper period: told once
      const det = await getJson(api, "/health/detailed");
      assert.equal(det.json.dependencies.socketio.connections, 2);
      // The survivors still relay, and a new peer can take the seat.
      const b2 = await connect(c.workers[0].url);
      try {
        assert.equal((await join(b2, r1)).success, true);
        const b2id = b2.id;
        assert.deepEqual(await waitFor(a, "ready", { pred: (x) => x.peerId === b2id }), { peerId: b2id });
      } finally {
        b2.close();
      }
    } finally {
      closeAll(a, b, d, e, lone);
    }
  });
});

describe("a worker SIGKILLed and restarted at once under the same id", { timeout: 90000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2 });
  });
  after(async () => {
    await c?.stop();
  });

  // Its heartbeat never lapses (the new run renews it), so no reaper takes
  // the dead run's sockets: the new run does, before its first heartbeat.
  it("the new run unbinds what the dead run left: peers are told once, the rooms and its set hold only live sockets", async () => {
    const api = c.roomApi.url;
    const r1 = await createRoom(api);
    const a = await connect(c.workers[0].url);
    const b = await connect(c.workers[1].url);
    try {
      assert.equal((await join(a, r1)).success, true);
      assert.equal((await join(b, r1)).success, true);
      const [aid, bid] = [a.id, b.id];
      const victim = c.workers[1];
      assert.equal(await c.redisCli("SISMEMBER", `pd:worker:${victim.id}:sockets`, bid), "1");
      assert.deepEqual(await c.killWorker(1), { code: null, signal: "SIGKILL" });
      b.close();
      const t0 = Date.now();
      const w2 = await c.startWorker(1, victim.port, { PD_WORKER_ID: victim.id });
      // Only the new run can tell: it renews the heartbeat, so no reaper ever would.
      assert.deepEqual(await waitFor(a, "peer-disconnected", { timeout: 30000 }), { peerId: bid });
      console.log(`# peers told ${Date.now() - t0} ms after the restart`);
      assert.equal(await c.redisCli("EXISTS", `socket:${bid}`), "0");
      assert.equal(await c.redisCli("SMEMBERS", `room:${r1}:sockets`), aid);
      assert.equal(await c.redisCli("SISMEMBER", "pd:workers", w2.id), "1", "the new run is registered");
      // A socket of the new run joins, and is left alone.
      const b2 = await connect(w2.url);
      try {
        assert.equal((await join(b2, r1)).success, true);
        const b2id = b2.id;
        assert.deepEqual(await waitFor(a, "ready", { pred: (x) => x.peerId === b2id }), { peerId: b2id });
        assert.equal(await c.redisCli("SMEMBERS", `pd:worker:${w2.id}:sockets`), b2id);
        await expectNothing([a], "peer-disconnected", { ms: 6000 }); // told once, and the new socket stays
        assert.equal(await c.redisCli("SCARD", `room:${r1}:sockets`), "2");
      } finally {
        b2.close();
      }
    } finally {
      closeAll(a, b);
    }
  });
});

describe("SIGTERM drain", { timeout: 90000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 3, workerEnv: [{}, {}, { PD_DRAIN_TIMEOUT_MS: "800" }] });
  });
  after(async () => {
    await c?.stop();
  });

  /** A keep-alive HTTP connection that answers request(path) → {status, body, headers}. */
  function keepAlive(port) {
    const s = net.connect({ host: "127.0.0.1", port });
    let buf = "";
    let waiter = null;
    s.on("data", (d) => {
      buf += d.toString("latin1");
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0 || !waiter) return;
      const len = Number(/content-length: (\d+)/i.exec(buf.slice(0, end))?.[1] || 0);
      if (buf.length < end + 4 + len) return;
      const head = buf.slice(0, end);
      const body = buf.slice(end + 4, end + 4 + len);
      buf = buf.slice(end + 4 + len);
      const w = waiter;
      waiter = null;
      w({ status: Number(head.split(" ")[1]), head, body });
    });
    s.on("error", () => {});
    return {
      ready: new Promise((r) => s.on("connect", r)),
      request(path) {
        return new Promise((resolve, reject) => {
          waiter = resolve;
          s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
          setTimeout(() => reject(new Error("no answer on the keep-alive connection")), 3000);
        });
      },
      close: () => s.destroy(),
    };
  }

  it("not ready while draining, stops accepting, closes sockets (1001), cleans Redis, tells rooms, exits 0", async () => {
    const api = c.roomApi.url;
    const room = await createRoom(api);
    const w = c.workers[1];
    const stay = await connect(c.workers[0].url);
    const leaving = await connect(w.url);
    const raw = await rawSession(w.port);
    const ka = keepAlive(w.port);
    try {
      await ka.ready;
      assert.equal((await ka.request("/readyz")).status, 200);
      assert.equal((await join(stay, room)).success, true);
      assert.equal((await join(leaving, room)).success, true);
      assert.equal((await rawJoin(raw, room)).success, true);
      const leavingId = leaving.id; // socket.io-client forgets it on disconnect
      // Redis stays frozen until the drain has been seen under way, so the
      // drain cannot finish before we look, however slow this machine is;
      // the cleanup it queued runs once Redis thaws.
      c.pauseRedis();
      const t0 = Date.now();
      let exit;
      try {
        exit = c.stopWorker(1);
        // Ready until the worker has taken the SIGTERM, then never again.
        let r;
        for (;;) {
          r = await ka.request("/readyz");
          if (r.status !== 200) break;
          await sleep(20);
        }
        assert.equal(r.status, 503, "not ready while draining");
        assert.match(r.body, /"draining":true/);
        assert.match(r.head, /Connection: close/i);
        await assert.rejects(new Promise((resolve, reject) => {
          const s = net.connect({ host: "127.0.0.1", port: w.port });
          s.on("connect", () => {
            s.destroy();
            resolve();
          });
          s.on("error", reject);
        }), /ECONNREFUSED/, "no longer accepting");
      } finally {
        c.resumeRedis();
      }
      const cl = await closeOf(raw, 15000);
      assert.equal(cl.code, 1001, "sockets closed with 1001 (going away)");
      await eventually("socket.io client disconnected", async () => !leaving.connected, { timeout: 15000 });
      assert.deepEqual(await exit, { code: 0, signal: null });
      console.log(`# drained and exited ${Date.now() - t0} ms after SIGTERM (Redis frozen until the drain was seen)`);
      // Cleaned and told (the commands queued while Redis was frozen ran):
      // the drain finished its work rather than running out of time.
      for (const sid of [leavingId, raw.sid]) {
        assert.equal(await c.redisCli("EXISTS", `socket:${sid}`), "0");
        assert.equal(await c.redisCli("SISMEMBER", `room:${room}:sockets`, sid), "0");
      }
      assert.equal(await c.redisCli("SISMEMBER", "pd:workers", w.id), "0", "retired");
      assert.equal(await c.redisCli("EXISTS", `pd:worker:${w.id}:hb`), "0");
      assert.equal(await c.redisCli("HEXISTS", "pd:conns", w.id), "0");
      const told = [await waitFor(stay, "peer-disconnected"), await waitFor(stay, "peer-disconnected")].map((x) => x.peerId).sort();
      assert.deepEqual(told, [leavingId, raw.sid].sort());
    } finally {
      ka.close();
      raw.close();
      closeAll(stay, leaving);
    }
  });

  it("a drain that cannot finish stops at PD_DRAIN_TIMEOUT_MS (800) and still exits 0", async () => {
    const w = c.workers[2];
    const s = await connect(w.url);
    const room = await createRoom(c.roomApi.url);
    try {
      assert.equal((await join(s, room)).success, true);
      // Redis stays frozen until the worker has exited, so its drain can
      // never finish: an exit at all is the drain limit's doing, and no
      // upper bound on the time (which a busy machine stretches) is needed.
      c.pauseRedis();
      const t0 = Date.now();
      let exit;
      try {
        exit = await c.stopWorker(2);
      } finally {
        c.resumeRedis();
      }
      const ms = Date.now() - t0;
      console.log(`# exited ${ms} ms after SIGTERM with Redis frozen`);
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.ok(ms >= 700, `waited for the drain limit before giving up (${ms} ms)`);
    } finally {
      s.close();
    }
    await eventually("Redis back for the others", async () => (await ready(c.workers[0])) === 200, { timeout: 10000 });
  });
});

describe("missed pongs", { timeout: 60000 }, () => {
  let c;
  before(async () => {
    // Pings come often, so a silent client is found soon; the time allowed
    // for each answer is long, so that the socket.io clients (which do
    // answer) are never late on a busy machine.
    c = await startCluster({ workers: 2, workerEnv: [{}, { PD_PING_INTERVAL_MS: "300", PD_PING_TIMEOUT_MS: "3000" }] });
  });
  after(async () => {
    await c?.stop();
  });

  it("the session is closed once, Redis cleaned once, peers told once", async () => {
    const room = await createRoom(c.roomApi.url);
    const w = c.workers[1];
    const near = await connect(w.url); // socket.io-client answers pings
    const far = await connect(c.workers[0].url);
    let raw = null;
    const mon = spawn("redis-cli", ["-h", "127.0.0.1", "-p", String(c.redisPort), "MONITOR"], { stdio: ["ignore", "pipe", "ignore"] });
    let monitor = "";
    mon.stdout.on("data", (d) => {
      monitor += d.toString();
    });
    try {
      await eventually("monitor attached", async () => {
        await c.redisCli("PING");
        return monitor.includes('"PING"');
      });
      assert.equal((await join(near, room)).success, true);
      assert.equal((await join(far, room)).success, true);
      const before = await metrics(w.url);
      // Open, connect and join answering pings (however long that takes on
      // a busy machine), then never answer them again.
      raw = await rawSession(w.port, { pongs: true });
      assert.equal((await rawJoin(raw, room)).success, true);
      raw.stopPongs();
      const cl = await closeOf(raw, 15000);
      assert.equal(cl.code, 1000);
      assert.match(cl.reason, /ping timeout/);
      assert.deepEqual(await waitFor(near, "peer-disconnected"), { peerId: raw.sid });
      assert.deepEqual(await waitFor(far, "peer-disconnected"), { peerId: raw.sid });
      await sleep(1500);
      assert.equal(near.received.get("peer-disconnected").length, 1, "same-worker peer told once");
      assert.equal(far.received.get("peer-disconnected").length, 1, "other-worker peer told once");
      assert.ok(near.connected && far.connected, "the peers that answer pings are kept");
      const m = await metrics(w.url);
      assert.equal(metricValue(m, 'privydrop_signal_sessions_closed_total{reason="ping_timeout"}')
        - metricValue(before, 'privydrop_signal_sessions_closed_total{reason="ping_timeout"}'), 1, "closed once");
      assert.equal(await c.redisCli("EXISTS", `socket:${raw.sid}`), "0");
      assert.equal(await c.redisCli("SISMEMBER", `room:${room}:sockets`, raw.sid), "0");
      const leaves = monitor.split("\n").filter((l) => l.includes("local removed") && l.includes(raw.sid));
      assert.equal(leaves.length, 1, `one Redis cleanup for the socket:\n${leaves.join("\n")}`);
      const publishes = monitor.split("\n").filter((l) => l.includes('"PUBLISH"') && l.includes("peer-disconnected") && l.includes(raw.sid));
      assert.equal(publishes.length, 1, "one peer-disconnected published");
      assert.equal(Number(await c.redisCli("HGET", "pd:conns", w.id)), 1, "the connection count dropped by one");
    } finally {
      mon.kill();
      raw?.close();
      closeAll(near, far);
    }
  });
});

describe("a worker that cannot keep up with the bus", { timeout: 60000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2 });
  });
  after(async () => {
    await c?.stop();
  });

  // HUB_PRESSURE_HOLD_MS: how long one notice holds a worker back.
  const HOLD_MS = 150;
  const PEER_BEHIND = 'privydrop_signal_backpressure_total{cause="peer_behind"}';

  it("its pressure notices hold the others back: signals wait, none is lost, and flow resumes", async () => {
    // What a worker behind on its subscriber link publishes is played here by
    // the test, on one held Redis connection, in the name of a worker that
    // does not exist. Every verdict below follows from the order in which
    // the worker must handle things, never from how fast this machine is:
    // a room message published right after a notice reaches the worker after
    // it (one subscriber link, in order), so once b has that message the
    // worker has taken the notice; a slow machine only makes things later.
    const room = await createRoom(c.roomApi.url);
    const w = c.workers[0];
    const bus = await RedisConn.open(c.redisPort);
    const a = await connect(w.url);
    const b = await connect(w.url);
    let mark = 0;
    /** Publish `notices` on pd:pressure, then a room message; resolves when b has it. */
    const noticesThenMark = async (...notices) => {
      const tag = ++mark;
      const seen = waitFor(b, "pd-mark", { pred: (n) => n === tag, timeout: 15000 });
      const envelope = `PD1 B some-slow-worker -\n42${JSON.stringify(["pd-mark", tag])}`;
      await bus.pipeline([...notices.map((n) => ["PUBLISH", "pd:pressure", n]), ["PUBLISH", `pd:room:${room}`, envelope]]);
      await seen;
    };
    const offer = (sdp) => a.emit("offer", { peerId: b.id, offer: { type: "offer", sdp } });
    const arrival = (sdp) => waitFor(b, "offer", { pred: (o) => o.offer?.sdp === sdp, timeout: 15000 }).then(() => performance.now());
    const count = (sdp) => (b.received.get("offer") ?? []).filter((o) => o.offer?.sdp === sdp).length;
    try {
      assert.equal((await join(a, room)).success, true);
      assert.equal((await join(b, room)).success, true);
      // The worker subscribes to the room's channel on its subscriber link,
      // which a join's answer (on the command link) may overtake: the marks
      // below are published only once Redis has the subscription.
      await eventually("the worker subscribed to the room", async () =>
        Number((await bus.command("PUBSUB", "NUMSUB", `pd:room:${room}`))[1]) >= 1, { timeout: 15000 });
      const before = await metrics(w.url);

      // One notice, taken by the worker before "first" is sent. The read that
      // carries "first" is still handled, then the worker stops reading a
      // until HOLD_MS after the notice: "held" cannot reach b sooner.
      const t1 = performance.now();
      await noticesThenMark("some-slow-worker");
      const firstAt = arrival("first");
      offer("first");
      await firstAt;
      const heldAt = arrival("held");
      offer("held");
      const arrived = await heldAt; // it does arrive: held back, not lost
      assert.ok(arrived - t1 >= HOLD_MS,
        `held back for the hold after the notice (arrived ${(arrived - t1).toFixed(0)} ms after it, hold ${HOLD_MS} ms)`);
      assert.equal(count("first"), 1);
      assert.equal(count("held"), 1);
      const m = await metrics(w.url);
      assert.ok(metricValue(m, PEER_BEHIND) - metricValue(before, PEER_BEHIND) >= 1, "the hold is counted");

      // Its own notices are ignored: a worker never holds itself back. The
      // hold above is over ("held" was read again only once it had lapsed)
      // and no other notice came since, so had it taken its own, the first
      // would have started a hold and been counted.
      const c2 = metricValue(await metrics(w.url), PEER_BEHIND);
      await noticesThenMark(...Array(5).fill(w.id));
      assert.equal(metricValue(await metrics(w.url), PEER_BEHIND), c2, "its own notices start no hold");
      // The same check can fail: another worker's notice does start one.
      await noticesThenMark("some-slow-worker");
      assert.equal(metricValue(await metrics(w.url), PEER_BEHIND), c2 + 1, "another worker's notice starts a hold");
      const afterAt = arrival("after");
      offer("after");
      await afterAt;
      assert.equal(count("after"), 1);
    } finally {
      closeAll(a, b);
      bus.close();
    }
  });
});
