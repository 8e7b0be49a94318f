// Redis Sentinel failover with real processes (docs/architecture.md
// §Failures, "Redis master lost (Sentinel)"): a redis-server master, one
// replica, three sentinels (quorum 2), two signal workers and the room API
// configured with REDIS_SENTINELS. The master is SIGKILLed; the sentinels
// promote the replica; the services follow without a restart.
//
// Every wait is on a mechanism (the replica's link, the sentinels' view of
// each other, the sentinels' answer for the master, the services' own
// readiness), with generous timeouts only as hang guards; the outage lasts
// as long as the test needs, because the sentinels' quorum is raised above
// their number until the gap has been examined.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import { freePort, httpGet, redisCliRaw, startCluster, waitReady } from "../lib/cluster.mjs";
import { closeAll, connect, createRoom, eventually, join, postJson, roomsOpen, sleep, waitFor } from "./helpers.mjs";
import { metrics, metricValue } from "./wire.mjs";

const MASTER = "pdmaster";
const GUARD_MS = 90000; // hang guard for the failover as a whole
const DROPPED = 'privydrop_signal_dropped_total{reason="redis_down"}';
const SIGNAL_CHANGES = "privydrop_signal_redis_master_changes_total";
const API_CHANGES = "privydrop_roomapi_redis_master_changes_total";

/** `SENTINEL master <name>` as an object (field → value). */
async function sentinelMaster(port) {
  const lines = (await redisCliRaw(port, "SENTINEL", "master", MASTER)).split("\n");
  const o = {};
  for (let i = 0; i + 1 < lines.length; i += 2) o[lines[i]] = lines[i + 1];
  return o;
}

async function masterPortPerSentinel(port) {
  const out = (await redisCliRaw(port, "SENTINEL", "get-master-addr-by-name", MASTER)).split("\n");
  return Number(out[1]);
}

/** Poll `url` until stop() and keep every status seen, in order of change. */
function statusRecorder(url, intervalMs) {
  const seen = [];
  let running = true;
  let first;
  const started = new Promise((resolve) => {
    first = resolve;
  });
  const read = async () => {
    let s;
    try {
      s = (await httpGet(url, { timeout: 2000 })).status;
    } catch {
      s = "error";
    }
    if (seen[seen.length - 1] !== s) seen.push(s);
  };
  const loop = (async () => {
    while (running) {
      await read();
      first();
      await sleep(intervalMs);
    }
  })();
  return {
    seen,
    started, // resolves once the first status is in
    async stop() {
      running = false;
      await loop;
      // One last reading at the stop: the loop may have slept through the
      // final change (the caller has just seen it for itself).
      await read();
      return seen;
    },
  };
}

/** A replica of the cluster's Redis and three sentinels watching it; the
 * services are then configured with the sentinels only. */
async function startSentinels(c) {
  const masterPort = c.redisPort;

  const replicaPort = await freePort();
  const replicaDir = path.join(c.dir, "replica");
  fs.mkdirSync(replicaDir);
  const replica = c.startExtra("redis-replica", "redis-server", [
    "--port", String(replicaPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
    "--dir", replicaDir, "--daemonize", "no", "--loglevel", "warning",
    "--replicaof", "127.0.0.1", String(masterPort),
  ], { cwd: replicaDir });
  await waitReady(replica, "replica in sync", async () =>
    /master_link_status:up/.test(await redisCliRaw(replicaPort, "INFO", "replication")));

  const sentinelPorts = [];
  const sentinels = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    sentinelPorts.push(port);
    const dir = path.join(c.dir, `sentinel-${i + 1}`);
    fs.mkdirSync(dir);
    // Sentinel rewrites its configuration file: one each, writable.
    const conf = path.join(dir, "sentinel.conf");
    fs.writeFileSync(conf, [
      `port ${port}`, "bind 127.0.0.1", "daemonize no", `dir ${dir}`, "loglevel notice",
      `sentinel monitor ${MASTER} 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds ${MASTER} 1000`,
      `sentinel failover-timeout ${MASTER} 4000`,
      `sentinel parallel-syncs ${MASTER} 1`, "",
    ].join("\n"));
    sentinels.push(c.startExtra(`sentinel-${i + 1}`, "redis-server", [conf, "--sentinel"], { cwd: dir }));
  }
  // A failover needs a majority that knows each other and the replica.
  for (const [i, port] of sentinelPorts.entries()) {
    await waitReady(sentinels[i], `sentinel ${i + 1} sees 2 other sentinels and the replica`, async () => {
      const m = await sentinelMaster(port);
      return m["num-other-sentinels"] === "2" && m["num-slaves"] === "1";
    }, 60000);
  }

  c.opts.env = {
    REDIS_SENTINELS: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(","),
    REDIS_SENTINEL_MASTER: MASTER,
    // Sentinel mode ignores these; pointing them at the replica proves it.
    REDIS_HOST: "127.0.0.1",
    REDIS_PORT: String(replicaPort),
  };
  c.sentinelSetup = { replicaPort, sentinelPorts };
}

describe("Redis Sentinel: master SIGKILLed, replica promoted", { timeout: 300000 }, () => {
  let c;

  before(async () => {
    c = await startCluster({ workers: 2, beforeServices: startSentinels });
  });

  after(async () => {
    await c?.stop();
  });

  it("fails over: readiness drops and returns, the bus resumes, joins work, losses are counted", async (t) => {
    const api = c.roomApi.url;
    const [w1, w2] = c.workers;
    const { replicaPort, sentinelPorts } = c.sentinelSetup;

    // Before: a room with a (worker 1) and b (worker 2), signals flowing.
    const R = await createRoom(api);
    const R2 = await createRoom(api); // created now, joined only after the failover
    const a = await connect(w1.url);
    const b = await connect(w2.url);
    const late = [];
    try {
      assert.equal((await join(a, R)).success, true);
      assert.equal((await join(b, R)).success, true);
      await waitFor(a, "ready");
      a.emit("offer", { peerId: b.id, offer: { type: "offer", sdp: "before" } });
      assert.equal((await waitFor(b, "offer")).offer.sdp, "before");

      // What the replica has is what survives (docs/architecture.md): make
      // sure it has everything so far, as WAIT does for a careful writer.
      assert.equal(await redisCliRaw(c.redisPort, "WAIT", "1", "10000"), "1");

      const dropped0 = metricValue(await metrics(w1.url), DROPPED);
      for (const [url, name] of [[w1.url, SIGNAL_CHANGES], [w2.url, SIGNAL_CHANGES], [api, API_CHANGES]]) {
        assert.equal(metricValue(await metrics(url), name), 0, `${url}: no master change yet`);
      }
      const rec = [w1, w2].map((w) => statusRecorder(`${w.url}/readyz`, 25));
      const recApi = statusRecorder(`${api}/health/detailed`, 150);
      await Promise.all([...rec, recApi].map((r) => r.started));

      // Hold the failover back while the gap is examined: with a quorum
      // above the number of sentinels the master is never objectively
      // down. (Not a pause of the sentinels: a stopped sentinel enters
      // TILT mode when it resumes.)
      for (const p of sentinelPorts) assert.equal(await redisCliRaw(p, "SENTINEL", "SET", MASTER, "quorum", "4"), "OK");

      // The kill.
      c.redis.expectSignal = "SIGKILL";
      c.redis.child.kill("SIGKILL");
      await c.redis.exited;

      // The workers notice at once (the kernel closes the sockets).
      await eventually("worker 1 not ready", async () => (await httpGet(`${w1.url}/readyz`)).status === 503,
        { timeout: GUARD_MS });

      // Signals sent while worker 1 has no master: each must be either
      // delivered or counted as dropped, never silently lost.
      const OUTAGE = 5;
      const got = [];
      b.on("offer", (o) => {
        if (/^outage-/.test(o.offer?.sdp)) got.push(o.offer.sdp);
      });
      for (let i = 0; i < OUTAGE; i++) a.emit("offer", { peerId: b.id, offer: { type: "offer", sdp: `outage-${i}` } });

      // A join and a room creation in the gap get the documented errors.
      const d = await connect(w2.url);
      late.push(d);
      const jr = await join(d, R);
      assert.equal(jr.success, false);
      assert.equal(jr.error, "redis unavailable");
      await eventually("room API reports Redis down", async () =>
        (await httpGet(`${api}/health/detailed`)).status === 503, { timeout: GUARD_MS });
      const cr = await postJson(api, "/api/create_room", { roomId: `gap${Date.now()}` });
      assert.equal(cr.status, 503, cr.body);
      assert.ok(typeof cr.json?.error === "string", cr.body);

      // Let the failover happen; the sentinels promote the replica...
      for (const p of sentinelPorts) assert.equal(await redisCliRaw(p, "SENTINEL", "SET", MASTER, "quorum", "2"), "OK");
      await eventually("sentinels name the replica as master", async () => {
        for (const p of sentinelPorts) if ((await masterPortPerSentinel(p)) !== replicaPort) return false;
        return true;
      }, { timeout: GUARD_MS, interval: 100 });
      // ...and the services follow: ready means ROLE said master.
      for (const w of [w1, w2]) {
        await eventually(`worker ${w.index + 1} ready again`, async () =>
          (await httpGet(`${w.url}/readyz`)).status === 200, { timeout: GUARD_MS });
      }
      await eventually("room API healthy again", async () =>
        (await httpGet(`${api}/health/detailed`)).status === 200, { timeout: GUARD_MS });
      assert.equal(await redisCliRaw(replicaPort, "ROLE").then((r) => r.split("\n")[0]), "master");

      const seen = await Promise.all(rec.map((r) => r.stop()));
      const seenApi = await recApi.stop();
      for (const [i, s] of seen.entries()) {
        assert.deepEqual([s[0], s.includes(503), s[s.length - 1]], [200, true, 200],
          `worker ${i + 1} /readyz went 200 → 503 → 200 (saw ${s.join(" → ")})`);
      }
      assert.ok(seenApi.includes(503) && seenApi[seenApi.length - 1] === 200,
        `room API /health/detailed went 503 and back (saw ${seenApi.join(" → ")})`);

      // Each process says it followed a master change (the first address
      // it found is not one).
      for (const [url, name] of [[w1.url, SIGNAL_CHANGES], [w2.url, SIGNAL_CHANGES], [api, API_CHANGES]]) {
        assert.ok(metricValue(await metrics(url), name) >= 1, `${url}: ${name} counts the failover`);
      }

      // The bus resumed on the new master, both directions, across workers.
      a.emit("offer", { peerId: b.id, offer: { type: "offer", sdp: "after" } });
      assert.equal((await waitFor(b, "offer", { pred: (o) => o.offer?.sdp === "after" })).from, a.id);
      b.emit("answer", { peerId: a.id, answer: { type: "answer", sdp: "after" } });
      assert.equal((await waitFor(a, "answer")).from, b.id);

      // New joins: into the old room (its state was replicated), into the
      // room created before the kill, and into a room created now.
      const e = await connect(w1.url);
      late.push(e);
      assert.equal((await join(e, R)).success, true);
      e.emit("offer", { peerId: b.id, offer: { type: "offer", sdp: "newcomer" } });
      assert.equal((await waitFor(b, "offer", { pred: (o) => o.offer?.sdp === "newcomer" })).from, e.id);
      const f = await connect(w2.url);
      late.push(f);
      assert.equal((await join(f, R2)).success, true);
      await roomsOpen(api); // the room API holds its room routes a while after a failover
      const R3 = await createRoom(api);
      const g = await connect(w1.url);
      const h = await connect(w2.url);
      late.push(g, h);
      assert.equal((await join(g, R3)).success, true);
      assert.equal((await join(h, R3)).success, true);
      g.emit("offer", { peerId: h.id, offer: { type: "offer", sdp: "fresh" } });
      assert.equal((await waitFor(h, "offer", { pred: (o) => o.offer?.sdp === "fresh" })).from, g.id);

      // Losses: every outage signal delivered or counted, none both. (Any
      // delivered one came before "after": same sender, same channel.)
      const lost = metricValue(await metrics(w1.url), DROPPED) - dropped0;
      t.diagnostic(`outage signals: ${OUTAGE} sent, ${got.length} delivered, ${lost} dropped (redis_down)`);
      assert.ok(lost >= 1, "signals sent without a master are counted as dropped");
      assert.equal(got.length + lost, OUTAGE);

      // Nobody crashed; the original sockets never noticed.
      for (const w of [w1, w2]) assert.ok(w.proc.running, `${w.proc.name} running`);
      assert.ok(c.roomApi.proc.running, "room API running");
      assert.ok(a.connected && b.connected, "sockets joined before the failover are still connected");
      assert.deepEqual(c.currentProblems(), []);
    } finally {
      closeAll(a, b, ...late);
    }
  });
});
