// The subscriber link against a hostile or broken path to Redis
// (docs/architecture.md §Redis): worker 2 reaches a real redis-server
// through a proxy that can split, stall, dribble or corrupt what the server
// sends on the pub/sub connection. Whatever it does, the worker must not
// crash, must not deliver a garbled signal, and must get its subscriptions
// back (relay works again) once the path is sane.
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import { after, before, describe, it } from "node:test";

import { freePort, startCluster } from "../lib/cluster.mjs";
import { closeAll, connect, createRoom, eventually, join, sleep, waitFor } from "./helpers.mjs";

/** A TCP proxy to Redis; `mode` decides what the subscriber connection
 * (the one whose first command is a SUBSCRIBE) receives. */
class SubProxy {
  constructor(redisPort) {
    this.redisPort = redisPort;
    this.mode = "pass"; // pass | bytewise | hold
    this.subConns = 0; // subscriber connections seen
    this.live = new Set();
    this.srv = net.createServer((client) => this._accept(client));
  }

  async listen() {
    this.port = await freePort();
    await new Promise((r) => this.srv.listen(this.port, "127.0.0.1", r));
  }

  _accept(client) {
    const up = net.connect(this.redisPort, "127.0.0.1");
    const conn = { client, up, sub: null, held: false };
    this.live.add(conn);
    const end = () => {
      this.live.delete(conn);
      client.destroy();
      up.destroy();
    };
    client.on("error", end).on("close", end);
    up.on("error", end).on("close", end);
    client.on("data", (d) => {
      if (conn.sub === null) {
        conn.sub = /SUBSCRIBE/i.test(d.toString("latin1"));
        if (conn.sub) this.subConns++;
      }
      up.write(d);
    });
    up.on("data", (d) => {
      if (conn.held) return; // the server's bytes are swallowed from then on
      if (!conn.sub || this.mode === "pass") return client.write(d);
      if (this.mode === "bytewise") {
        for (const b of d) client.write(Buffer.from([b]));
      }
    });
  }

  /** Every live subscriber connection gets `bytes` now, and nothing more from Redis. */
  hold(bytes) {
    for (const conn of this.live) {
      if (!conn.sub) continue;
      conn.held = true;
      if (bytes) conn.client.write(bytes);
    }
  }

  /** Every live subscriber connection gets `bytes` (in between Redis's). */
  inject(bytes) {
    for (const conn of this.live) if (conn.sub && !conn.held) conn.client.write(bytes);
  }

  /** One more byte to every held subscriber connection. */
  dribble(byte = "x") {
    for (const conn of this.live) if (conn.sub && conn.held && !conn.client.destroyed) conn.client.write(byte);
  }

  close() {
    for (const conn of this.live) {
      conn.client.destroy();
      conn.up.destroy();
    }
    return new Promise((r) => this.srv.close(r));
  }
}

describe("subscriber link behind a hostile proxy", { timeout: 120000 }, () => {
  let c;
  let proxy;
  let api;
  before(async () => {
    c = await startCluster({ workers: 1 });
    proxy = new SubProxy(c.redisPort);
    await proxy.listen();
    await c.startWorker(1, await freePort(), { REDIS_PORT: String(proxy.port) });
    api = c.roomApi.url;
  });
  after(async () => {
    await proxy?.close();
    await c?.stop();
  });

  /** a on worker 1, b on worker 2 (behind the proxy), in one room. */
  async function pair() {
    const R = await createRoom(api);
    const a = await connect(c.workers[0].url);
    const b = await connect(c.workers[1].url);
    assert.equal((await join(a, R)).success, true);
    assert.equal((await join(b, R)).success, true);
    return { a, b };
  }

  async function relays(a, b, tag, timeout) {
    a.emit("offer", { peerId: b.id, offer: { type: "offer", sdp: tag } });
    const o = await waitFor(b, "offer", { pred: (x) => x.offer?.sdp === tag, timeout });
    assert.deepEqual(o, { from: a.id, peerId: a.id, offer: { type: "offer", sdp: tag } });
  }

  it("a stream split into single bytes still relays every signal whole and in order", async () => {
    const { a, b } = await pair();
    try {
      proxy.mode = "bytewise";
      const got = [];
      b.on("offer", (o) => got.push(o.offer.sdp));
      for (let i = 0; i < 20; i++) a.emit("offer", { peerId: b.id, offer: { type: "offer", sdp: `s${i}-${"y".repeat(i * 50)}` } });
      await eventually("20 offers", () => got.length >= 20, { timeout: 15000 });
      assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `s${i}-${"y".repeat(i * 50)}`));
    } finally {
      proxy.mode = "pass";
      closeAll(a, b);
    }
  });

  for (const [name, junk] of [
    ["a bulk length over the bound", "*3\r\n$7\r\nmessage\r\n$3\r\nabc\r\n$999999999999\r\n"],
    ["a negative bulk length", "*3\r\n$7\r\nmessage\r\n$-5\r\n"],
    ["a nested array", "*3\r\n*3\r\n*3\r\n*3\r\n"],
    ["an unknown push kind", "*3\r\n$4\r\nlpop\r\n$1\r\na\r\n:1\r\n"],
    ["a long channel name", `*3\r\n$7\r\nmessage\r\n$5000\r\n${"c".repeat(5000)}\r\n$1\r\nx\r\n`],
  ]) {
    it(`${name} drops the link, which comes back with its subscriptions`, async () => {
      const { a, b } = await pair();
      try {
        await relays(a, b, `before-${name}`);
        const before = proxy.subConns;
        proxy.inject(junk);
        await eventually("a new subscriber connection", () => proxy.subConns > before, { timeout: 15000 });
        assert.ok(c.workers[1].proc.running, "worker 2 still runs");
        await eventually("relay works again", async () => {
          try {
            await relays(a, b, `after-${name}-${Date.now()}`, 1000);
            return true;
          } catch {
            return false;
          }
        }, { timeout: 15000 });
      } finally {
        closeAll(a, b);
      }
    });
  }

  it("a flood of messages faster than the worker reads keeps its memory bounded and the link usable", async () => {
    const { a, b } = await pair();
    try {
      const rss = () => Number(fs.readFileSync(`/proc/${c.workers[1].pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)[1]);
      const before = rss();
      // 64 MiB of whole messages on a channel nobody subscribed, in 1 MiB writes.
      const one = `*3\r\n$7\r\nmessage\r\n$9\r\npd:nobody\r\n$1000\r\n${"z".repeat(1000)}\r\n`;
      const chunk = Buffer.from(one.repeat(Math.floor((1 << 20) / one.length)));
      for (let i = 0; i < 64; i++) proxy.inject(chunk);
      await relays(a, b, "after-flood", 30000);
      const grown = rss() - before;
      assert.ok(grown < 16 * 1024, `RSS grew ${grown} KiB`);
    } finally {
      closeAll(a, b);
    }
  });

  it("a link that dribbles a frame a byte at a time is given up like a silent one", async () => {
    const { a, b } = await pair();
    try {
      await relays(a, b, "before-dribble");
      const before = proxy.subConns;
      // The start of a message whose payload never completes, then one
      // byte of it every 300 ms: bytes arrive, signals never do.
      proxy.hold("*3\r\n$7\r\nmessage\r\n$4\r\nnone\r\n$100000\r\n");
      const t = setInterval(() => proxy.dribble(), 300);
      try {
        // The watchdog gives up on a subscriber link whose probe has not
        // come back for three periods (1 s each) and that delivered nothing
        // meanwhile; a dribble is not a delivery.
        await eventually("the dribbling link replaced", () => proxy.subConns > before, { timeout: 20000 });
      } finally {
        clearInterval(t);
      }
      await eventually("relay works again", async () => {
        try {
          await relays(a, b, `after-dribble-${Date.now()}`, 1000);
          return true;
        } catch {
          return false;
        }
      }, { timeout: 15000 });
    } finally {
      closeAll(a, b);
    }
  });

  it("a link that stalls mid-frame is replaced", async () => {
    const { a, b } = await pair();
    try {
      await relays(a, b, "before-stall");
      const before = proxy.subConns;
      proxy.hold("*3\r\n$7\r\nmessage\r\n$4\r\nno");
      await eventually("the stalled link replaced", () => proxy.subConns > before, { timeout: 20000 });
      await sleep(50);
      assert.ok(c.workers[1].proc.running);
    } finally {
      closeAll(a, b);
    }
  });
});
