// Redis losing its script cache or its process under load: scripts go by
// digest and are re-sent as text (docs/architecture.md §Redis), and the
// subscriber link parses its own stream; neither may lose, duplicate or
// reorder what clients see.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { httpGet, startCluster } from "../lib/cluster.mjs";
import { closeAll, connect, createRoom, eventually, join, sleep } from "./helpers.mjs";

const ready = async (w) => (await httpGet(`${w.url}/readyz`).catch(() => ({ status: 0 }))).status;

describe("Redis churn", { timeout: 180000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2, signalEnv: { PD_EVENT_RATE: "100000", PD_EVENT_BURST: "100000" } });
  });
  after(async () => {
    await c?.stop();
  });

  it("joins and room creation all succeed while SCRIPT FLUSH runs over and over", async () => {
    let flushing = true;
    const flusher = (async () => {
      while (flushing) {
        await c.redisCli("SCRIPT", "FLUSH");
        await sleep(2);
      }
    })();
    const socks = [];
    try {
      const results = [];
      for (let round = 0; round < 6; round++) {
        // Every round starts on an empty script cache: its first calls by
        // digest meet NOSCRIPT, whatever the background flusher's timing.
        await c.redisCli("SCRIPT", "FLUSH");
        const rooms = await Promise.all(Array.from({ length: 4 }, () => createRoom(c.roomApi.url)));
        const pairs = await Promise.all(rooms.map(async (R, i) => {
          const a = await connect(c.workers[i % 2].url);
          const b = await connect(c.workers[(i + 1) % 2].url);
          socks.push(a, b);
          return [a, b, R];
        }));
        results.push(...(await Promise.all(pairs.flatMap(([a, b, R]) => [join(a, R), join(b, R)]))));
      }
      const bad = results.filter((r) => !r.success);
      assert.deepEqual(bad, []);
    } finally {
      flushing = false;
      await flusher;
      closeAll(...socks);
    }
  });

  it("a Redis killed and restarted mid-relay: every signal after recovery arrives once and in order", async () => {
    const R = await createRoom(c.roomApi.url);
    const a = await connect(c.workers[0].url, { reconnection: false });
    const b = await connect(c.workers[1].url, { reconnection: false });
    try {
      assert.equal((await join(a, R)).success, true);
      assert.equal((await join(b, R)).success, true);
      const got = [];
      b.on("offer", (o) => got.push(o.offer.sdp));
      let n = 0;
      let sending = true;
      const sender = (async () => {
        while (sending) {
          a.emit("offer", { peerId: b.id, offer: { type: "offer", sdp: String(++n) } });
          await sleep(5);
        }
      })();
      await sleep(300);
      c.redis.expectSignal = "SIGKILL";
      c.redis.child.kill("SIGKILL");
      await c.redis.exited;
      await sleep(300);
      await c.startRedis();
      await eventually("both workers ready", async () => (await ready(c.workers[0])) === 200 && (await ready(c.workers[1])) === 200, { timeout: 15000 });
      await sleep(1500);
      sending = false;
      await sender;
      const mark = `end-${n + 1}`;
      a.emit("offer", { peerId: b.id, offer: { type: "offer", sdp: mark } });
      await eventually("last offer", () => got.includes(mark), { timeout: 5000 });
      const nums = got.filter((x) => x !== mark).map(Number);
      console.log(`# sent ${n}, received ${nums.length}`);
      // Never twice, never out of order (some may be lost while Redis is down).
      assert.equal(new Set(nums).size, nums.length, "no duplicates");
      for (let i = 1; i < nums.length; i++) assert.ok(nums[i] > nums[i - 1], `in order at ${i}: ${nums[i - 1]} then ${nums[i]}`);
      // Relay is back: a burst sent now arrives whole, once, in order.
      const before = got.length;
      for (let i = 0; i < 50; i++) a.emit("offer", { peerId: b.id, offer: { type: "offer", sdp: `post-${i}` } });
      await eventually("the burst", () => got.length >= before + 50, { timeout: 5000 });
      assert.deepEqual(got.slice(before), Array.from({ length: 50 }, (_, i) => `post-${i}`));
    } finally {
      closeAll(a, b);
    }
  });
});
