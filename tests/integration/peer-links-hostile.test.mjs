// Links between workers against hostile or failing peers (docs/architecture.md
// §Direct links between workers, docs/wire-protocol.md §Links between workers):
// strangers on the link port cannot keep a worker's link from coming up, a
// peer holding the token cannot crash the owner with malformed requests, and a
// worker stopped (SIGTERM, drained) while its links carry requests exits
// cleanly and deletes its record.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { startCluster } from "../lib/cluster.mjs";
import { startRoundRobinFront } from "../lib/rrfront.mjs";
import { closeAll, connect, createRoom, eventually, join, waitFor } from "./helpers.mjs";
import { forwardPath as path, frame, rawLink, records } from "./peerwire.mjs";

const OFFER = { type: "offer", sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" };

describe("links between workers, hostile peers", { timeout: 180000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2 });
    await eventually("two records", async () => (await records(c)).length === 2);
  });
  after(async () => {
    await c?.stop();
  });

  it("a worker's hello is acknowledged while strangers without the token hold every inbound slot", async () => {
    const [r] = await records(c);
    const strangers = [];
    try {
      // More silent connections than the owner takes inbound links.
      for (let i = 0; i < 300; i++) strangers.push(await rawLink(r.port));
      const s = await rawLink(r.port);
      try {
        s.write(frame(`H ${r.token} Zz9Zz9Zz`));
        await eventually("acknowledged", () => s.got.length >= 14 || s.gone);
        assert.equal(s.gone, false, "the link with the token was refused");
        assert.equal(s.got.subarray(4, 14).toString(), `K ${r.tag}`);
      } finally {
        s.destroy();
      }
    } finally {
      for (const s of strangers) s.destroy();
    }
  });

  it("malformed requests from a peer holding the token do not hurt the owner", async () => {
    const [r] = await records(c);
    const me = "Qq9Qq9Qq";
    const bodies = [
      `Q G ${me} `,
      `Q G ${me} 1`,
      `Q G ${me} 1 `,
      `Q P ${me} 1 ${r.tag}`,
      `Q P ${me} 1 ${r.tag}\n`,
      `Q X ${me} 1 ${r.tag}abcdefgh\n42["x"]`,
      `Q GG ${me} 1 ${r.tag}abcdefgh\n`,
      `Q P ${me} 99999999999999999999999999999999 ${r.tag}abcdefgh\n4`,
      `Q P ${me} 1 ${r.tag}${"a".repeat(500)}\n4hello`,
      `Q G ${me} 1 ${r.tag}\u0000\u0001\n`,
      Buffer.concat([Buffer.from(`Q P ${me} 2 ${r.tag}abcdefgh\n`), Buffer.alloc(70000, 0xff)]),
    ];
    for (const b of bodies) {
      const s = await rawLink(r.port);
      s.write(frame(`H ${r.token} ${me}`));
      await eventually("acknowledged", () => s.got.length >= 14);
      s.write(frame(b));
      // A frame that is not a Q in our name afterwards: the link closes
      // once the owner read everything before it.
      s.write(frame("Z"));
      await eventually("closed", () => s.gone);
      s.destroy();
    }
    assert.deepEqual(c.currentProblems(), []);
  });
});

describe("links between workers, a worker stopped with links carrying requests", { timeout: 180000 }, () => {
  let c;
  let front;
  before(async () => {
    c = await startCluster({ workers: 2, signalEnv: { PD_DRAIN_NOTICE_MS: "0", PD_DRAIN_SPREAD_MS: "200" } });
    front = await startRoundRobinFront([c.workers[0].port, c.workers[1].port]);
    await eventually("two records", async () => (await records(c)).length === 2);
  });
  after(async () => {
    await front?.close();
    await c?.stop();
  });

  it("SIGTERM while forwarded requests ride the links: a clean exit, its record gone", async () => {
    const clients = [];
    for (let i = 0; i < 6; i++) clients.push(await connect(front.url, { transports: ["polling"] }));
    const room = await createRoom(c.roomApi.url);
    for (const s of clients) assert.equal((await join(s, room)).success, true);
    await eventually("links carry requests", async () => {
      clients[0].emit("offer", { peerId: clients[1].id, offer: OFFER });
      return (await path(c.workers[0], "link")) + (await path(c.workers[1], "link")) > 0;
    });
    const tags = (await records(c)).map((r) => r.tag);
    let going = true;
    const traffic = (async () => {
      for (let i = 0; going; i++) {
        const from = clients[i % clients.length];
        const to = clients[(i + 1) % clients.length];
        if (from.connected && to.connected) from.emit("offer", { peerId: to.id, offer: OFFER });
        await new Promise((res) => setImmediate(res));
      }
    })();
    const exit = await c.stopWorker(0);
    going = false;
    await traffic;
    closeAll(...clients);
    assert.equal(exit.code, 0);
    const left = (await records(c)).map((r) => r.tag);
    assert.equal(left.length, 1, `records left: ${left} (of ${tags})`);
    // The other worker still answers.
    const p = await connect(c.workers[1].url, { transports: ["polling"] });
    closeAll(p);
  });
});
