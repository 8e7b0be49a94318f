// A bus message is never longer than what the subscriber links accept
// (docs/architecture.md §Redis). A signal the general path re-encodes can
// come out several times longer than it came in (jansson writes 1e16 as
// 10000000000000000.0); one over the bound must be dropped by its sender,
// not cost every subscribed worker its subscriber link.
import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, it } from "node:test";

import { startCluster } from "../lib/cluster.mjs";
import { connect, createRoom, join, RawWs, uniqueIp, waitFor } from "./helpers.mjs";
import { metrics, metricValue, nextTextStarting } from "./wire.mjs";

describe("bus messages within the subscriber bound", { timeout: 120000 }, () => {
  let c;
  before(async () => {
    // 300 000-byte messages; the send queue keeps its 1 MiB default, so
    // the subscriber bound is 1 MiB + 4 KiB.
    c = await startCluster({ workers: 2, signalEnv: { PD_MAX_MESSAGE_BYTES: "300000" } });
  });
  after(async () => {
    await c?.stop();
  });

  it("a signal that grows past the bound when re-encoded is dropped by its sender; every subscriber link stays", async () => {
    const R = await createRoom(c.roomApi.url);
    const b = await connect(c.workers[1].url);
    const ws = await RawWs.connect(c.workers[0].port, undefined, { "X-Forwarded-For": uniqueIp() });
    try {
      assert.equal((await join(b, R)).success, true);
      await ws.nextText();
      ws.send("40");
      const aid = JSON.parse((await ws.nextText({ skipPings: true })).slice(2)).sid;
      ws.send(`42["join",{"roomId":"${R}"}]`);
      await nextTextStarting(ws, '42["joinResponse"');
      const logs = c.workers.map((w) => fs.readFileSync(w.proc.stderrPath, "utf8").length);
      // An escape in the target id sends the signal down the general path,
      // which parses and re-encodes it: 5 bytes per element become 20.
      const esc = `\\u00${b.id.charCodeAt(0).toString(16).padStart(2, "0")}${b.id.slice(1)}`;
      const big = `[${Array(55000).fill("1e16").join(",")}]`;
      ws.send(`42["offer",{"peerId":"${esc}","offer":${big}}]`);
      ws.send(`42["offer",{"peerId":"${b.id}","offer":{"type":"offer","sdp":"small"}}]`);
      const o = await waitFor(b, "offer");
      assert.deepEqual(o, { offer: { type: "offer", sdp: "small" }, from: aid, peerId: aid }, "the big one never arrives");
      assert.equal(metricValue(await metrics(c.workers[0].url), 'privydrop_signal_dropped_total{reason="too_large"}'), 1);
      c.workers.forEach((w, i) => {
        const log = fs.readFileSync(w.proc.stderrPath, "utf8").slice(logs[i]);
        assert.doesNotMatch(log, /redis unavailable/, `worker ${i + 1}'s Redis links stayed up`);
      });
    } finally {
      ws.close();
      b.close();
    }
  });
});
