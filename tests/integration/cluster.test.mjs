// Process-level behaviour: command line, SO_REUSEPORT, SIGTERM, Redis faults
// (docs/architecture.md §SIGTERM drain, §Failures).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";

import { binPath, freePort, httpGet, startCluster } from "../lib/cluster.mjs";
import { closeAll, connect, createRoom, eventually, getJson, join, roomsOpen, sleep, waitFor } from "./helpers.mjs";

function run(bin, args) {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: 10000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

describe("command line", () => {
  for (const name of ["privydrop-signal", "privydrop-roomapi"]) {
    it(`${name} --help exits 0 and prints help`, async () => {
      const r = await run(binPath(name), ["--help"]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok((r.stdout + r.stderr).trim().length > 20, "prints help");
    });
    it(`${name} --version exits 0 and prints a version`, async () => {
      const r = await run(binPath(name), ["--version"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout + r.stderr, /\d+\.\d+/);
    });
  }
});

describe("SO_REUSEPORT: two workers on one port", { timeout: 90000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2, sharedPort: true });
  });
  after(async () => {
    await c?.stop();
  });

  it("both become ready on the same port and serve clients", async () => {
    assert.equal(c.workers[0].port, c.workers[1].port);
    assert.ok(c.workers[0].proc.running && c.workers[1].proc.running);
    // Many clients on the shared port; each gets an id and can join.
    const roomId = await createRoom(c.roomApi.url);
    const socks = [];
    try {
      for (let i = 0; i < 6; i++) socks.push(await connect(c.workers[0].url));
      for (const s of socks.slice(0, 2)) assert.equal((await join(s, roomId)).success, true);
      socks[0].emit("offer", { peerId: socks[1].id, offer: { type: "offer", sdp: "x" } });
      assert.deepEqual(await waitFor(socks[1], "offer"), { offer: { type: "offer", sdp: "x" }, from: socks[0].id, peerId: socks[0].id });
      const d = await getJson(c.roomApi.url, "/health/detailed");
      assert.equal(d.json.dependencies.socketio.connections, 6);
    } finally {
      closeAll(socks);
    }
  });

  it("after one worker's SIGTERM (exit 0) the other still answers on the port", async () => {
    const exit = await c.stopWorker(0);
    assert.deepEqual(exit, { code: 0, signal: null });
    for (let i = 0; i < 10; i++) {
      assert.equal((await httpGet(`${c.workers[1].url}/readyz`)).status, 200);
    }
    const s = await connect(c.workers[1].url);
    s.close();
  });
});

describe("SIGTERM", { timeout: 90000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2 });
  });
  after(async () => {
    await c?.stop();
  });

  it("closes the worker's sockets, cleans their Redis state, tells the room, exits 0", async () => {
    const roomId = await createRoom(c.roomApi.url);
    const a = await connect(c.workers[0].url);
    const b = await connect(c.workers[1].url);
    try {
      assert.equal((await join(a, roomId)).success, true);
      assert.equal((await join(b, roomId)).success, true);
      const bid = b.id;
      const gone = new Promise((resolve) => b.once("disconnect", resolve));
      const exit = await c.stopWorker(1);
      assert.deepEqual(exit, { code: 0, signal: null });
      await Promise.race([gone, sleep(3000).then(() => assert.fail("client of the stopped worker was not disconnected"))]);
      assert.equal(await c.redisCli("EXISTS", `socket:${bid}`), "0");
      assert.equal(await c.redisCli("SISMEMBER", `room:${roomId}:sockets`, bid), "0");
      assert.equal(await c.redisCli("SISMEMBER", `room:${roomId}:sockets`, a.id), "1");
      assert.deepEqual(await waitFor(a, "peer-disconnected"), { peerId: bid });
      // Worker 1 is unaffected and the room API counts only what is left.
      assert.equal((await httpGet(`${c.workers[0].url}/readyz`)).status, 200);
      await eventually("connections = 1", async () =>
        (await getJson(c.roomApi.url, "/health/detailed")).json.dependencies.socketio.connections === 1);
    } finally {
      closeAll(a, b);
    }
  });
});

describe("Redis down and back", { timeout: 120000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2 });
  });
  after(async () => {
    await c?.stop();
  });

  it("readyz 503, sockets kept, same-worker relay works, joins get the server error; all recovers", async () => {
    const api = c.roomApi.url;
    const roomId = await createRoom(api);
    const a = await connect(c.workers[0].url);
    const a2 = await connect(c.workers[0].url);
    const b = await connect(c.workers[1].url);
    const late = await connect(c.workers[1].url);
    try {
      for (const s of [a, a2, b]) assert.equal((await join(s, roomId)).success, true);

      await c.stopRedis();
      for (const w of c.workers) {
        await eventually(`${w.url}/readyz → 503`, async () => (await httpGet(`${w.url}/readyz`)).status === 503,
          { timeout: 10000 });
        assert.equal((await httpGet(`${w.url}/healthz`)).status, 200, "liveness unaffected");
      }
      const det = await eventually("/health/detailed → 503 disconnected", async () => {
        const r = await getJson(api, "/health/detailed");
        return r.status === 503 ? r : null;
      }, { timeout: 10000 });
      assert.equal(det.json.dependencies.redis.status, "disconnected");

      assert.ok(a.connected && a2.connected && b.connected, "open sockets are kept");
      a.emit("offer", { peerId: a2.id, offer: { type: "offer", sdp: "during-outage" } });
      assert.deepEqual(await waitFor(a2, "offer"), { offer: { type: "offer", sdp: "during-outage" }, from: a.id, peerId: a.id });

      const r = await join(late, roomId, { timeout: 8000 });
      assert.equal(r.success, false);
      assert.equal(r.message, "Server error while joining room");
      assert.ok("error" in r, "error field present");

      await c.startRedis();
      for (const w of c.workers) {
        await eventually(`${w.url}/readyz → 200`, async () => (await httpGet(`${w.url}/readyz`)).status === 200,
          { timeout: 20000 });
      }
      await eventually("/health/detailed → 200", async () => (await getJson(api, "/health/detailed")).status === 200,
        { timeout: 20000 });
      // Its room routes are held a while after Redis came back (PD_RESTORE_HOLD_MS).
      await roomsOpen(api);

      // The restarted Redis is empty (no persistence): a new room works end to end.
      const r2 = await createRoom(api);
      const p = await connect(c.workers[0].url);
      const q = await connect(c.workers[1].url);
      try {
        assert.equal((await join(p, r2)).success, true);
        assert.equal((await join(q, r2)).success, true);
        assert.deepEqual(await waitFor(p, "ready"), { peerId: q.id });
        q.emit("offer", { peerId: p.id, offer: { type: "offer", sdp: "after" } });
        assert.deepEqual(await waitFor(p, "offer"), { offer: { type: "offer", sdp: "after" }, from: q.id, peerId: q.id });
      } finally {
        closeAll(p, q);
      }
      // Sockets bound before the outage: cross-worker relay resumes after resubscribing.
      await eventually("cross-worker relay for an old room after reconnect", async () => {
        const tag = `old-${Date.now()}`;
        a.emit("offer", { peerId: b.id, offer: { type: "offer", sdp: tag } });
        try {
          await waitFor(b, "offer", { pred: (o) => o.offer.sdp === tag, timeout: 500 });
          return true;
        } catch {
          return false;
        }
      }, { timeout: 10000 });
    } finally {
      closeAll(a, a2, b, late);
    }
  });
});

describe("a short Redis restart", { timeout: 60000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2, roomApi: false });
  });
  after(async () => {
    await c?.stop();
  });

  it("workers are ready again within 10 s after Redis was down for ~100 ms", async () => {
    await c.stopRedis();
    await sleep(100);
    await c.startRedis();
    for (const w of c.workers) {
      await eventually(`${w.url}/readyz → 200`, async () => (await httpGet(`${w.url}/readyz`)).status === 200,
        { timeout: 10000 });
    }
  });
});

describe("a worker with Redis unreachable at start", { timeout: 60000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 1, roomApi: false });
  });
  after(async () => {
    await c?.stop();
  });

  it("is live (healthz 200) but not ready (readyz 503) until Redis is there", async () => {
    const port = await freePort();
    await c.stopRedis();
    const w = await c.startWorker(1, port, {}, { waitForReady: false });
    await eventually("healthz 200", async () => (await httpGet(`${w.url}/healthz`)).status === 200, { timeout: 15000 });
    assert.equal((await httpGet(`${w.url}/readyz`)).status, 503);
    await c.startRedis();
    await eventually("readyz 200 after Redis starts", async () => (await httpGet(`${w.url}/readyz`)).status === 200,
      { timeout: 20000 });
  });
});
