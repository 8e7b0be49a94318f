// Direct links between workers for forwarded long-polling requests
// (docs/architecture.md §Long-polling across workers, docs/wire-protocol.md
// §Links between workers): a polling session's requests that reach the
// other worker go to the owner over a TCP link of their own once it is up,
// Redis otherwise; the link port takes nothing but a hello with the token
// the owner published in Redis.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { startCluster } from "../lib/cluster.mjs";
import { startRoundRobinFront } from "../lib/rrfront.mjs";
import { closeAll, connect, createRoom, eventually, join, waitFor } from "./helpers.mjs";
import { forwardPath as path, frame, linksUp as links, rawLink, records } from "./peerwire.mjs";

const OFFER = { type: "offer", sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" };

/** Offers back and forth until `done()` holds (each one must arrive). */
async function signalUntil(api, p, q, done) {
  const room = await createRoom(api);
  assert.equal((await join(p, room)).success, true);
  assert.equal((await join(q, room)).success, true);
  for (let i = 0; i < 200 && !(await done()); i++) {
    const [from, to] = i % 2 ? [q, p] : [p, q];
    const got = waitFor(to, "offer");
    from.emit("offer", { peerId: to.id, offer: OFFER });
    assert.deepEqual(await got, { offer: OFFER, from: from.id, peerId: from.id });
  }
  assert.ok(await done(), "condition reached while signalling");
}

describe("links between workers", { timeout: 120000 }, () => {
  let c;
  let api;
  let front;
  before(async () => {
    c = await startCluster({ workers: 2 });
    api = c.roomApi.url;
    front = await startRoundRobinFront([c.workers[0].port, c.workers[1].port]);
  });
  after(async () => {
    await front?.close();
    await c?.stop();
  });

  it("each worker publishes its link address with a token", async () => {
    await eventually("two records", async () => (await records(c)).length === 2);
    for (const r of await records(c)) {
      assert.match(r.tag, /^[A-Za-z0-9]{8}$/);
      assert.equal(r.ip, "127.0.0.1");
      assert.ok(r.port > 0 && r.port < 65536);
      assert.match(r.token, /^[A-Za-z0-9]{32}$/);
      const ttl = Number(await c.redisCli("PTTL", `pd:peer:${r.tag}`));
      assert.ok(ttl > 0 && ttl <= 15000, `the record expires (${ttl})`);
    }
  });

  it("forwarded polling requests go on the link once it is up, and signals still flow", async () => {
    const p = await connect(front.url, { transports: ["polling"] });
    const q = await connect(front.url, { transports: ["polling"] });
    try {
      const linked = async () => (await path(c.workers[0], "link")) + (await path(c.workers[1], "link")) > 0;
      await signalUntil(api, p, q, linked);
      // The first request to an owner went through Redis while the link was set up.
      assert.ok((await path(c.workers[0], "redis")) + (await path(c.workers[1], "redis")) > 0);
      assert.ok((await links(c.workers[0], "in")) + (await links(c.workers[1], "in")) >= 1);
      assert.ok((await links(c.workers[0], "out")) + (await links(c.workers[1], "out")) >= 1);
    } finally {
      closeAll(p, q);
    }
  });

  it("a hello with the token is acknowledged with the owner's tag; a request in another worker's name closes the link", async () => {
    const [r] = await records(c);
    const s = await rawLink(r.port);
    try {
      s.write(frame(`H ${r.token} Zz9Zz9Zz`));
      await eventually("acknowledged", () => s.got.length >= 4 + 10);
      assert.equal(s.got.readUInt32BE(0), 10);
      assert.equal(s.got.subarray(4, 14).toString(), `K ${r.tag}`);
      s.write(frame(`Q G Yy9Yy9Yy 1 ${r.tag}abcdef\n`));
      await eventually("closed", () => s.gone);
    } finally {
      s.destroy();
    }
  });

  it("a wrong token, an oversized frame, a frame other than a hello, or silence: the link is closed", async () => {
    const [r] = await records(c);
    const wrong = r.token.slice(0, 31) + (r.token[31] === "a" ? "b" : "a");
    const cases = [
      frame(`H ${wrong} Zz9Zz9Zz`),
      Buffer.from([0x7f, 0xff, 0xff, 0xff]),
      frame(`Q G Zz9Zz9Zz 1 ${r.tag}abcdef\n`),
      frame(`H ${r.token}`),
    ];
    for (const bytes of cases) {
      const s = await rawLink(r.port);
      s.write(bytes);
      await eventually("closed", () => s.gone);
      assert.equal(s.got.length, 0, "nothing answered");
      s.destroy();
    }
    const quiet = await rawLink(r.port);
    await eventually("a silent link is closed", () => quiet.gone, { timeout: 10000 });
    quiet.destroy();
  });
});

describe("links between workers switched off", { timeout: 120000 }, () => {
  let c;
  let front;
  before(async () => {
    c = await startCluster({ workers: 2, signalEnv: { PD_PEER_LINKS: "0" } });
    front = await startRoundRobinFront([c.workers[0].port, c.workers[1].port]);
  });
  after(async () => {
    await front?.close();
    await c?.stop();
  });

  it("PD_PEER_LINKS=0: no record, no link, every forwarded request through Redis", async () => {
    const p = await connect(front.url, { transports: ["polling"] });
    const q = await connect(front.url, { transports: ["polling"] });
    try {
      const enough = async () => (await path(c.workers[0], "redis")) + (await path(c.workers[1], "redis")) >= 10;
      await signalUntil(c.roomApi.url, p, q, enough);
      assert.equal((await path(c.workers[0], "link")) + (await path(c.workers[1], "link")), 0);
      assert.equal((await records(c)).length, 0);
    } finally {
      closeAll(p, q);
    }
  });
});
