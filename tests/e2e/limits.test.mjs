// End-to-end: what a person sees when the servers say no — the per-address
// join limit (the page says so and retries by itself) and a full room.
// A real cluster with the join limit on and rooms capped at two sockets.
//
// Every browser here joins from the same address. The limit counts joins in
// a sliding window (a sorted set per address in Redis), and starting a
// Chromium on a busy machine can take longer than that window, so the test
// does not race it: once two joins have passed, it fills the address's
// window with two more entries dated far in the future (as if two joins had
// just happened and never aged), so the third browser's join is refused
// however late it lands. Keyspace notifications show which key the joins
// use, so the test writes to the key the servers read, not to one it guessed.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import { after, before, describe, it } from "node:test";
import { RedisConn } from "../lib/redis.mjs";
import { openBrowser, startE2ECluster } from "./harness.mjs";

let env;
let logDir;
let sub;
let cmd;
const browsers = [];

// The text is taken in the same look that matched it: the page changes it
// by itself (it retries), and a second look may come after that.
async function errorText(page, re, timeout) {
  const h = await page.waitForFunction((src) => {
    const t = document.querySelector('[data-testid="error"]')?.textContent ?? "";
    return new RegExp(src, "i").test(t) ? t : null;
  }, re.source, { timeout });
  return h.jsonValue();
}

const joined = (page) => page.waitForFunction(
  () => document.querySelector("#signal-status")?.getAttribute("data-state") === "joined", null, { timeout: 60000 });

describe("limits, as the page shows them", { timeout: 5 * 60 * 1000 }, () => {
  before(async () => {
    logDir = fs.mkdtempSync(`${os.tmpdir()}/pd-e2e-limits-`);
    env = await startE2ECluster({ joinRateLimit: true, env: { PD_MAX_ROOM_PEERS: "2" }, keepLogsIn: logDir });
  });

  after(async () => {
    for (const b of browsers) await b.close();
    sub?.close();
    cmd?.close();
    if (env) await env.stop();
    console.log(`browser console and server logs: ${logDir}`);
  });

  it("explains the join rate limit, retries by itself, then explains a full room", async () => {
    const [front1, front2] = env.fronts;
    const redisPort = env.cluster.redisPort;
    cmd = await RedisConn.open(redisPort);
    sub = await RedisConn.open(redisPort);
    // Each join counted against an address adds to its sorted set (ZADD).
    const counted = []; // key of each counted join, in order
    const waiters = [];
    await cmd.command("CONFIG", "SET", "notify-keyspace-events", "Kz");
    await sub.psubscribe("__keyspace@0__:ratelimit:join:*", (channel, event) => {
      if (event !== "zadd") return;
      counted.push(channel.slice("__keyspace@0__:".length));
      for (const w of [...waiters]) w();
    });
    const countedAtLeast = (n) => new Promise((resolve, reject) => {
      const check = () => {
        if (counted.length < n) return;
        waiters.splice(waiters.indexOf(check), 1);
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(() => reject(new Error(`only ${counted.length} joins counted, waited for ${n}`)), 60000);
      waiters.push(check);
      check();
    });

    const sender = await openBrowser("limits-sender", logDir);
    browsers.push(sender);
    await sender.page.goto(`${front1.url}/`); // join 1
    await sender.page.waitForFunction(() => /^[A-Za-z0-9_-]+$/.test(document.querySelector('[data-testid="room-id"]')?.textContent ?? ""));
    const room = await sender.page.getByTestId("room-id").textContent();
    await joined(sender.page);
    await countedAtLeast(1);
    const key = counted[0];

    const r1 = await openBrowser("limits-receiver-1", logDir);
    browsers.push(r1);
    await r1.page.goto(`${front2.url}/?room=${room}`); // join 2
    await joined(r1.page);
    await countedAtLeast(2);
    assert.deepEqual(counted, [key, key], "both joins counted against one address");

    // Two more joins in the window that never age: whatever the clock, the
    // next one from this address is the window's third or later.
    const future = Date.now() + 3600 * 1000;
    await cmd.pipeline([
      ["ZADD", key, future, "test-join-a", future, "test-join-b"],
      ["PERSIST", key], // outlive the TTL the last join set
    ]);

    const r2 = await openBrowser("limits-receiver-2", logDir);
    browsers.push(r2);
    await r2.page.goto(`${front2.url}/?room=${room}`); // join 3: limited
    const limited = await errorText(r2.page, /too many attempts/, 60000);
    assert.match(limited, /retrying in \d+ s/i, "says that it will retry");
    await countedAtLeast(4); // two joins, the test's two entries, the refused join
    assert.ok(counted.every((k) => k === key), `every join counted against one address (${[...new Set(counted)].join(", ")})`);
    // Let the window drain: the page retries on its own once its own refused
    // attempt has aged out; the room (two sockets at most) is full by then,
    // and the page says that instead.
    await cmd.command("ZREM", key, "test-join-a", "test-join-b");
    const full = await errorText(r2.page, /full/, 90000);
    assert.match(full, /room is full/i);
    assert.equal(await r2.page.getByTestId("peer-count").textContent(), "0");
    // The first receiver is unaffected.
    assert.equal(await r1.page.locator("#signal-status").getAttribute("data-state"), "joined");
  });
});
