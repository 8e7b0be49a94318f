// Reproducer, not part of the suite (run.sh picks *.test.mjs only): a worker
// that exits at its drain limit (PD_DRAIN_TIMEOUT_MS reached, here 0) skips
// the retire, so its pd:peer:<tag> record outlives it until it expires
// (15 s; docs/architecture.md §Direct links between workers). Other workers
// that look it up meanwhile get a refused connect and fall back to Redis.
// Fails today:
//   PD_BIN_DIR=$PWD/build/bin tests/integration/run.sh tests/integration/peer-links-drain-limit.repro.mjs
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { startCluster } from "../lib/cluster.mjs";
import { eventually } from "./helpers.mjs";

const count = async (c) => (await c.redisCli("KEYS", "pd:peer:*")).split("\n").filter(Boolean).length;

describe("links between workers, a worker that exits at its drain limit", { timeout: 120000 }, () => {
  let c;
  before(async () => {
    c = await startCluster({ workers: 2, signalEnv: { PD_DRAIN_TIMEOUT_MS: "0" } });
    await eventually("two records", async () => (await count(c)) === 2);
  });
  after(async () => {
    await c?.stop();
  });

  it("its record does not outlive it", async () => {
    const exit = await c.stopWorker(0);
    assert.equal(exit.code, 0);
    assert.equal(await count(c), 1);
  });
});
