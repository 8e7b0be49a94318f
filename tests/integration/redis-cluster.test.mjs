// Redis Cluster with real processes (docs/architecture.md §Redis Cluster): six
// redis-server nodes made into three masters with a replica each
// (`redis-cli --cluster create … --cluster-replicas 1`), two signal workers
// and the room API configured with REDIS_CLUSTER_NODES (two of the six; the
// rest is learnt from CLUSTER SLOTS). Rooms are chosen so that their keys
// and bus channels live on different masters; signals cross workers in each.
// Then the master of one room is SIGKILLed: its replica is promoted, the
// services follow the new map, joins and cross-worker relay resume.
//
// Every wait is on a mechanism (the cluster's own state, the replica's
// link, the slot map's answer, the services' readiness, the shard's count
// of subscribers); timeouts are hang guards only.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import { freePort, httpGet, redisCliRaw, startCluster, waitReady } from "../lib/cluster.mjs";
import { startRoundRobinFront } from "../lib/rrfront.mjs";
import { closeAll, connect, createRoom, eventually, join, roomsOpen, uniqueRoomId, waitFor } from "./helpers.mjs";
import { metrics, metricValue } from "./wire.mjs";

const GUARD_MS = 90000;

function redisCliCluster(args) {
  return new Promise((resolve, reject) => {
    execFile("redis-cli", args, { timeout: 60000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli ${args.join(" ")}: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The masters that serve slots, from CLUSTER NODES: [{port, ranges:[[a,b]…]}]. */
async function masters(port) {
  const out = await redisCliRaw(port, "CLUSTER", "NODES");
  const list = [];
  for (const line of out.split("\n")) {
    const f = line.trim().split(" ");
    if (f.length < 9 || !f[2].includes("master") || f[2].includes("fail")) continue;
    const p = Number(f[1].split("@")[0].split(":").pop());
    const ranges = f.slice(8).filter((r) => /^\d/.test(r)).map((r) => r.split("-").map(Number))
      .map(([a, b]) => [a, b ?? a]);
    if (ranges.length) list.push({ port: p, ranges });
  }
  return list;
}

async function ownerPort(anyPort, key) {
  const slot = Number(await redisCliRaw(anyPort, "CLUSTER", "KEYSLOT", key));
  for (const m of await masters(anyPort)) if (m.ranges.some(([a, b]) => slot >= a && slot <= b)) return m.port;
  return 0;
}

/** `cmd key ...rest` sent to the master that owns key's slot now. */
async function onOwner(seed, cmd, key, ...rest) {
  return redisCliRaw(await ownerPort(seed, key), cmd, key, ...rest);
}

async function startRedisCluster(c) {
  const ports = [];
  c.nodeProcs = new Map();
  for (let i = 0; i < 6; i++) {
    const port = await freePort();
    ports.push(port);
    const dir = path.join(c.dir, `node-${i + 1}`);
    fs.mkdirSync(dir);
    const p = c.startExtra(`redis-node-${i + 1}`, "redis-server", [
      "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--dir", dir, "--daemonize", "no", "--loglevel", "warning",
      "--cluster-enabled", "yes", "--cluster-config-file", path.join(dir, "nodes.conf"),
      "--cluster-node-timeout", "2000",
      // The bus port is chosen free like the client port: by default it is
      // port + 10000, which another process may hold.
      "--cluster-port", String(await freePort()),
    ], { cwd: dir });
    c.nodeProcs.set(port, p);
    await waitReady(p, `cluster node on ${port}`, async () => (await redisCliRaw(port, "PING")) === "PONG");
  }
  await redisCliCluster(["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`),
    "--cluster-replicas", "1", "--cluster-yes"]);
  for (const port of ports) {
    await waitReady(c.nodeProcs.get(port), `cluster state ok on ${port}`, async () =>
      /cluster_state:ok/.test(await redisCliRaw(port, "CLUSTER", "INFO")), 60000);
  }
  const ms = await masters(ports[0]);
  assert.equal(ms.length, 3, "three masters serve the slots");
  // Every replica in sync before anything is written.
  for (const port of ports) {
    if (ms.some((m) => m.port === port)) continue;
    await waitReady(c.nodeProcs.get(port), `replica ${port} in sync`, async () =>
      /master_link_status:up/.test(await redisCliRaw(port, "INFO", "replication")), 60000);
  }
  c.opts.env = {
    // Two seeds are enough: the rest comes from CLUSTER SLOTS.
    REDIS_CLUSTER_NODES: `127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}`,
    // Cluster mode ignores these; the plain Redis of the harness is not used.
    REDIS_HOST: "127.0.0.1",
    REDIS_PORT: String(c.redisPort),
  };
  c.clusterPorts = ports;
}

/** Move one slot (with its keys) from the master on `from` to the one on
 * `to`, as redis-cli --cluster reshard does for each slot: IMPORTING,
 * MIGRATING, MIGRATE every key, then the new owner told to every master. */
async function migrateSlot(slot, from, to, allMasters) {
  const fromId = await redisCliRaw(from, "CLUSTER", "MYID");
  const toId = await redisCliRaw(to, "CLUSTER", "MYID");
  assert.equal(await redisCliRaw(to, "CLUSTER", "SETSLOT", slot, "IMPORTING", fromId), "OK");
  assert.equal(await redisCliRaw(from, "CLUSTER", "SETSLOT", slot, "MIGRATING", toId), "OK");
  for (;;) {
    const keys = (await redisCliRaw(from, "CLUSTER", "GETKEYSINSLOT", slot, 100)).split("\n").filter(Boolean);
    if (!keys.length) break;
    assert.equal(await redisCliRaw(from, "MIGRATE", "127.0.0.1", to, "", 0, 5000, "KEYS", ...keys), "OK");
  }
  for (const p of [to, from, ...allMasters.filter((m) => m !== to && m !== from)]) {
    assert.equal(await redisCliRaw(p, "CLUSTER", "SETSLOT", slot, "NODE", toId), "OK");
  }
}

/** Room ids whose room keys (and so their join steps) live on two different masters. */
async function roomsOnTwoMasters(port) {
  const first = uniqueRoomId("c");
  const p1 = await ownerPort(port, `room:{${first}}`);
  for (let i = 0; i < 200; i++) {
    const id = uniqueRoomId("c");
    const p2 = await ownerPort(port, `room:{${id}}`);
    if (p2 && p2 !== p1) return [[first, p1], [id, p2]];
  }
  throw new Error("no two rooms on different masters in 200 tries");
}

function assertJoined(r) {
  assert.equal(r.success, true, JSON.stringify(r));
}

async function relayOk(from, to, sdp) {
  from.emit("offer", { peerId: to.id, offer: { type: "offer", sdp } });
  const o = await waitFor(to, "offer", { pred: (x) => x.offer?.sdp === sdp });
  assert.equal(o.from, from.id);
}

describe("Redis Cluster: three masters with a replica each", { timeout: 300000 }, () => {
  let c;

  before(async () => {
    c = await startCluster({ workers: 2, beforeServices: startRedisCluster });
    // The harness waits for the workers' readiness (every master answered);
    // the room API's is its detailed health.
    await waitReady(c.roomApi.proc, "room API on the cluster", async () =>
      (await httpGet(`${c.roomApi.url}/health/detailed`)).status === 200);
  });

  after(async () => {
    await c?.stop();
  });

  /** A room from the room API with a member on each of two workers, both
   * joined; the sockets go into `socks` for closing. */
  async function pairInRoom(wa, wb, socks) {
    const R = await createRoom(c.roomApi.url);
    const a = await connect(wa.url);
    const b = await connect(wb.url);
    socks.push(a, b);
    assertJoined(await join(a, R));
    assertJoined(await join(b, R));
    return { R, a, b };
  }

  it("routes rooms to their shards, relays across workers, follows a failover", async (t) => {
    const api = c.roomApi.url;
    const [w1, w2] = c.workers;
    const seed = c.clusterPorts[0];
    const socks = [];
    try {
      const [[R1, m1], [R2, m2]] = await roomsOnTwoMasters(seed);
      t.diagnostic(`room ${R1} on master ${m1}, room ${R2} on master ${m2}`);
      await createRoom(api, R1);
      await createRoom(api, R2);
      // The room's key is where its slot says, under its cluster name.
      assert.equal(await redisCliRaw(m1, "HEXISTS", `room:{${R1}}`, "created_at"), "1");
      assert.equal(await redisCliRaw(m2, "HEXISTS", `room:{${R2}}`, "created_at"), "1");
      // get_room hands out an id the cluster holds.
      const gr = await httpGet(`${api}/api/get_room`);
      assert.equal(gr.status, 200, gr.body);
      const got = JSON.parse(gr.body).roomId;
      assert.ok(got, gr.body);
      assert.equal(await onOwner(seed, "EXISTS", `room:{${got}}`), "1");

      const a = await connect(w1.url);
      const b = await connect(w2.url);
      const x = await connect(w1.url);
      const y = await connect(w2.url);
      socks.push(a, b, x, y);
      for (const [s, r] of [[a, R1], [b, R1], [x, R2], [y, R2]]) assertJoined(await join(s, r));
      await relayOk(a, b, "r1-a-to-b");
      await relayOk(b, a, "r1-b-to-a");
      await relayOk(x, y, "r2-x-to-y");
      await relayOk(y, x, "r2-y-to-x");

      // The bus is sharded: both workers hear R1's channel on the master of
      // its slot, and only there.
      const chan = `pd:room:${R1}`;
      const chanOwner = await ownerPort(seed, chan);
      const numsub = async (port) => Number((await redisCliRaw(port, "PUBSUB", "SHARDNUMSUB", chan)).split("\n")[1]);
      assert.equal(await numsub(chanOwner), 2, "two workers subscribed on the channel's shard");
      for (const m of await masters(seed)) if (m.port !== chanOwner) assert.equal(await numsub(m.port), 0);

      // Kill the master of R1's keys, once its replica has everything.
      const victim = m1;
      assert.equal(await redisCliRaw(victim, "WAIT", "1", "10000"), "1");
      const changes = [[w1.url, "privydrop_signal_redis_master_changes_total"], [w2.url, "privydrop_signal_redis_master_changes_total"],
        [api, "privydrop_roomapi_redis_master_changes_total"]];
      for (const [url, name] of changes) assert.equal(metricValue(await metrics(url), name), 0, `${url}: no change yet`);
      // Hold the failover back while the gap is examined (as the Sentinel
      // test raises its quorum): replicas that may not fail over.
      const masterPorts = (await masters(seed)).map((m) => m.port);
      const replicaPorts = c.clusterPorts.filter((p) => !masterPorts.includes(p));
      for (const p of replicaPorts) {
        assert.equal(await redisCliRaw(p, "CONFIG", "SET", "cluster-replica-no-failover", "yes"), "OK");
      }
      const proc = c.nodeProcs.get(victim);
      proc.expectSignal = "SIGKILL";
      proc.child.kill("SIGKILL");
      await proc.exited;
      const alive = c.clusterPorts.filter((p) => p !== victim);

      // The workers notice (their link to that master is gone) and say so.
      for (const w of [w1, w2]) {
        await eventually(`worker ${w.index + 1} not ready`, async () =>
          (await httpGet(`${w.url}/readyz`)).status === 503, { timeout: GUARD_MS });
      }
      await eventually("room API unhealthy", async () =>
        (await httpGet(`${api}/health/detailed`)).status === 503, { timeout: GUARD_MS });
      // A join meanwhile gets the documented answer.
      const gap = await connect(w2.url);
      socks.push(gap);
      const jr = await join(gap, R2);
      assert.equal(jr.success, false);
      assert.equal(jr.error, "redis unavailable");
      // Now let the replica take over.
      for (const p of replicaPorts) {
        assert.equal(await redisCliRaw(p, "CONFIG", "SET", "cluster-replica-no-failover", "no"), "OK");
      }
      const releasedAt = Date.now();
      // The cluster promotes the replica...
      await eventually("a replica promoted: three masters again, every slot served", async () => {
        const ms = await masters(alive[0]);
        return ms.length === 3 && !ms.some((m) => m.port === victim) &&
          /cluster_state:ok/.test(await redisCliRaw(alive[0], "CLUSTER", "INFO"));
      }, { timeout: GUARD_MS, interval: 200 });
      // ...and the services follow the new map.
      for (const w of [w1, w2]) {
        await eventually(`worker ${w.index + 1} ready again`, async () =>
          (await httpGet(`${w.url}/readyz`)).status === 200, { timeout: GUARD_MS });
      }
      await eventually("room API healthy again", async () =>
        (await httpGet(`${api}/health/detailed`)).status === 200, { timeout: GUARD_MS });
      t.diagnostic(`failover allowed → both workers and the room API ready again: ${Date.now() - releasedAt} ms (cluster-node-timeout 2000)`);
      // Each process took a map that moved the dead master's slots.
      for (const [url, name] of changes) assert.ok(metricValue(await metrics(url), name) >= 1, `${url}: ${name} counts it`);
      const newOwner = await ownerPort(alive[0], `room:{${R1}}`);
      assert.notEqual(newOwner, victim);
      assert.equal(await redisCliRaw(newOwner, "HEXISTS", `room:{${R1}}`, "created_at"), "1", "the room survived");

      // Relay resumes in both rooms, across workers, on the same sockets.
      await relayOk(a, b, "after-a-to-b");
      await relayOk(b, a, "after-b-to-a");
      await relayOk(x, y, "after-x-to-y");
      // The channel followed its slot to the promoted replica.
      const chanOwnerNow = await ownerPort(alive[0], chan);
      assert.equal(await numsub(chanOwnerNow), 2, "both workers resubscribed on the channel's new shard");

      // New joins into both rooms and into a room created now.
      const e = await connect(w1.url);
      const f = await connect(w2.url);
      socks.push(e, f);
      assertJoined(await join(e, R1));
      assertJoined(await join(f, R2));
      await relayOk(e, b, "newcomer-r1");
      await relayOk(f, x, "newcomer-r2");
      await roomsOpen(api); // the room API holds its room routes a while after a failover
      const R3 = await createRoom(api);
      const g = await connect(w1.url);
      const h = await connect(w2.url);
      socks.push(g, h);
      assertJoined(await join(g, R3));
      assertJoined(await join(h, R3));
      await relayOk(g, h, "fresh");

      // The sockets' bindings live with their worker's keys.
      const bindKey = `socket:{${w1.id}}:${e.id}`;
      assert.equal(await redisCliRaw(await ownerPort(alive[0], bindKey), "GET", bindKey), R1);

      for (const w of [w1, w2]) assert.ok(w.proc.running, `${w.proc.name} running`);
      assert.ok(c.roomApi.proc.running, "room API running");
      assert.ok(a.connected && b.connected && x.connected && y.connected, "sockets joined before the kill still connected");
      assert.deepEqual(c.currentProblems(), []);
    } finally {
      closeAll(...socks);
    }
  });

  it("resharding: a room's key slot, its channel's slot and the workers' own channels move to another master while in use", async () => {
    const [w1, w2] = c.workers;
    const seed = c.clusterPorts.find((p) => c.nodeProcs.get(p).running);
    const socks = [];
    try {
      const { R, a, b } = await pairInRoom(w1, w2, socks);
      await relayOk(a, b, "before-reshard");
      const ms = (await masters(seed)).map((m) => m.port);
      const key = `room:{${R}}`;
      const chan = `pd:room:${R}`;
      // Signals go on the target worker's own channel (docs/architecture.md
      // §Signals): move both workers' channels too.
      const ownChans = [`pd:eio:${a.id.slice(0, 8)}`, `pd:eio:${b.id.slice(0, 8)}`];
      for (const name of [key, chan, ...ownChans]) {
        const slot = Number(await redisCliRaw(seed, "CLUSTER", "KEYSLOT", name));
        const from = await ownerPort(seed, name);
        const to = ms.find((p) => p !== from);
        await migrateSlot(slot, from, to, ms);
        assert.equal(await ownerPort(seed, name), to);
      }
      // The channel's old master dropped its subscribers on giving the slot
      // away; both workers subscribe on the new one.
      const numsub = async (port, ch = chan) => Number((await redisCliRaw(port, "PUBSUB", "SHARDNUMSUB", ch)).split("\n")[1]);
      const chanOwner = await ownerPort(seed, chan);
      await eventually("both workers subscribed on the channel's new master", async () => (await numsub(chanOwner)) === 2,
        { timeout: GUARD_MS });
      for (const own of ownChans) {
        const owner = await ownerPort(seed, own);
        await eventually(`${own} subscribed on its new master`, async () => (await numsub(owner, own)) === 1, { timeout: GUARD_MS });
      }
      await relayOk(a, b, "after-reshard");
      await relayOk(b, a, "after-reshard-back");
      // The room's key moved: a join follows MOVED (or the new map).
      const d = await connect(w1.url);
      socks.push(d);
      assertJoined(await join(d, R));
      assert.equal(await redisCliRaw(await ownerPort(seed, key), "SISMEMBER", `room:{${R}}:sockets`, d.id), "1");
      await relayOk(d, b, "newcomer-after-reshard");
      for (const w of [w1, w2]) assert.equal((await httpGet(`${w.url}/readyz`)).status, 200);
    } finally {
      closeAll(...socks);
    }
  });

  it("long-polling without affinity: forwarded requests cross workers over sharded channels", async () => {
    // Every request goes to the next worker in turn, so the session's owner
    // hears them on its pd:eio:<tag> channel (SPUBLISH) and the forwarder
    // checks the owner's liveness with the NUMSUB fan-out.
    const front = await startRoundRobinFront([c.workers[0].port, c.workers[1].port]);
    const socks = [];
    try {
      const p = await connect(front.url, { transports: ["polling"] });
      const q = await connect(c.workers[1].url);
      socks.push(p, q);
      const R = await createRoom(c.roomApi.url);
      assertJoined(await join(p, R));
      assertJoined(await join(q, R));
      await relayOk(p, q, "polling-to-ws");
      await relayOk(q, p, "ws-to-polling");
      assert.equal(p.io.engine.transport.name, "polling");
      assert.ok(front.counts[0] > 0 && front.counts[1] > 0, `both workers served it (${front.counts})`);
    } finally {
      closeAll(...socks);
      await front.close();
    }
  });

  it("a worker SIGKILLed: the reaper's per-slot steps take its sockets out of their rooms", async () => {
    const [w1, w2] = c.workers;
    const seed = c.clusterPorts.find((p) => c.nodeProcs.get(p).running);
    const socks = [];
    try {
      const { R, a, b } = await pairInRoom(w1, w2, socks);
      await relayOk(b, a, "before-kill");
      const bid = b.id; // the client forgets it once disconnected
      const sockets = `room:{${R}}:sockets`;
      assert.equal(await onOwner(seed, "SISMEMBER", sockets, b.id), "1");
      await c.killWorker(1);
      // Once its heartbeat expires, a reaper (a worker or the room API)
      // tells the room; the other member hears it.
      const gone = await waitFor(a, "peer-disconnected", { pred: (x) => x.peerId === bid, timeout: GUARD_MS });
      assert.equal(gone.peerId, bid);
      assert.equal(await onOwner(seed, "SISMEMBER", sockets, bid), "0");
      const bind = `socket:{${w2.id}}:${bid}`;
      assert.equal(await onOwner(seed, "EXISTS", bind), "0");
      await eventually("the dead worker forgotten by the fleet", async () =>
        (await onOwner(seed, "SISMEMBER", "pd:{fleet}:workers", w2.id)) === "0",
        { timeout: GUARD_MS });
      assert.ok(w1.proc.running && c.roomApi.proc.running);
      assert.deepEqual(c.currentProblems(), []);
    } finally {
      closeAll(...socks);
    }
  });

  it("a worker SIGKILLed and restarted at once under the same id: the new run takes the dead run's sockets out, per slot", async () => {
    const w1 = c.workers[0];
    const { id, port } = c.workers[1];
    const seed = c.clusterPorts.find((p) => c.nodeProcs.get(p).running);
    const socks = [];
    try {
      let w2 = await c.startWorker(1, port, { PD_WORKER_ID: id });
      const { R, a, b } = await pairInRoom(w1, w2, socks);
      const bid = b.id;
      await c.killWorker(1);
      b.close();
      w2 = await c.startWorker(1, port, { PD_WORKER_ID: id });
      const gone = await waitFor(a, "peer-disconnected", { pred: (x) => x.peerId === bid, timeout: GUARD_MS });
      assert.equal(gone.peerId, bid);
      const sockets = `room:{${R}}:sockets`;
      assert.equal(await onOwner(seed, "SISMEMBER", sockets, bid), "0");
      const bind = `socket:{${id}}:${bid}`;
      assert.equal(await onOwner(seed, "EXISTS", bind), "0");
      // A socket of the new run stays bound.
      const b2 = await connect(w2.url);
      socks.push(b2);
      assertJoined(await join(b2, R));
      const wsocks = `pd:worker:{${id}}:sockets`;
      assert.equal(await onOwner(seed, "SMEMBERS", wsocks), b2.id);
      await relayOk(b2, a, "after-restart");
      assert.deepEqual(c.currentProblems(), []);
    } finally {
      closeAll(...socks);
    }
  });

  it("a room with live members is renewed per slot (PD_ROOM_REFRESH_MS 1000 on one worker)", async () => {
    const w1 = c.workers[0];
    const { id, port } = c.workers[1];
    const seed = c.clusterPorts.find((p) => c.nodeProcs.get(p).running);
    const socks = [];
    try {
      await c.killWorker(1);
      const w2 = await c.startWorker(1, port, { PD_WORKER_ID: id, PD_ROOM_REFRESH_MS: "1000" });
      const { R, a, b } = await pairInRoom(w1, w2, socks);
      const room = `room:{${R}}`;
      const bind = `socket:{${id}}:${b.id}`;
      const ttl = async (k) => Number(await onOwner(seed, "TTL", k));
      for (const k of [room, bind]) await onOwner(seed, "EXPIRE", k, "120");
      await eventually("renewed", async () => (await ttl(room)) > 80000 && (await ttl(bind)) > 85000, { timeout: 60000 });
      await relayOk(b, a, "renewed");
    } finally {
      closeAll(...socks);
    }
  });

  it("rooms the cluster lost are restored per slot from their live members; a room a stranger created meanwhile is not joined", async () => {
    const [w1, w2] = c.workers;
    const seed = c.clusterPorts.find((p) => c.nodeProcs.get(p).running);
    const socks = [];
    try {
      const { R: R1, a, b } = await pairInRoom(w1, w2, socks);
      const { R: R2, a: x, b: y } = await pairInRoom(w1, w2, socks);
      // As if the shards had restarted empty: the rooms and the bindings are gone...
      const binds = [[w1, a], [w2, b], [w1, x], [w2, y]].map(([w, s]) => `socket:{${w.id}}:${s.id}`);
      for (const k of [`room:{${R1}}`, `room:{${R1}}:sockets`, `room:{${R2}}`, `room:{${R2}}:sockets`, ...binds]) {
        assert.equal(await onOwner(seed, "DEL", k), "1", k);
      }
      // ...and a stranger created R2 meanwhile.
      await onOwner(seed, "HSET", `room:{${R2}}`, "created_at", String(Date.now()));
      await onOwner(seed, "EXPIRE", `room:{${R2}}`, "600");
      // Every client's command link dropped: the workers reconnect, and
      // their first refresh once ready may restore.
      for (const m of await masters(seed)) await redisCliRaw(m.port, "CLIENT", "KILL", "TYPE", "normal");
      const members = async (r) => (await onOwner(seed, "SMEMBERS", `room:{${r}}:sockets`)).split("\n").filter(Boolean).sort().join(" ");
      await eventually("R1 restored with both members", async () => (await members(R1)) === [a.id, b.id].sort().join(" "),
        { timeout: GUARD_MS });
      assert.equal(await onOwner(seed, "HEXISTS", `room:{${R1}}`, "restored"), "1");
      assert.equal(await onOwner(seed, "GET", binds[0]), R1);
      assert.equal(await onOwner(seed, "GET", binds[1]), R1);
      await relayOk(a, b, "restored");
      // R2's refreshes were sent in the same sweeps; a few round trips later
      // they are done (were they not, this would pass without proving).
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(await members(R2), "", "the stranger's room holds none of the old members");
      assert.equal(await onOwner(seed, "HEXISTS", `room:{${R2}}`, "restored"), "0");
      for (const k of binds.slice(2)) assert.equal(await onOwner(seed, "EXISTS", k), "0", `${k}: bound to no room`);
      await roomsOpen(c.roomApi.url); // its links were dropped too: it held its room routes
      assert.deepEqual(c.currentProblems(), []);
    } finally {
      closeAll(...socks);
    }
  });
});
