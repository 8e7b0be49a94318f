// End-to-end: what a person sees when the servers say no — the per-address
// join limit (the page says so and retries by itself) and a full room.
// A real cluster with the join limit on and rooms capped at two sockets.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import { after, before, describe, it } from "node:test";
import { openBrowser, startE2ECluster } from "./harness.mjs";

let env;
let logDir;
const browsers = [];

async function errorText(page, re, timeout) {
  await page.waitForFunction((src) => new RegExp(src, "i").test(document.querySelector('[data-testid="error"]')?.textContent ?? ""),
    re.source, { timeout });
  return page.getByTestId("error").textContent();
}

describe("limits, as the page shows them", { timeout: 5 * 60 * 1000 }, () => {
  before(async () => {
    logDir = fs.mkdtempSync(`${os.tmpdir()}/pd-e2e-limits-`);
    env = await startE2ECluster({ joinRateLimit: true, env: { PD_MAX_ROOM_PEERS: "2" }, keepLogsIn: logDir });
  });

  after(async () => {
    for (const b of browsers) await b.close();
    if (env) await env.stop();
    console.log(`browser console and server logs: ${logDir}`);
  });

  it("explains the join rate limit, retries by itself, then explains a full room", async () => {
    const [front1, front2] = env.fronts;
    // All three browsers start before the first join: the join limit's window
    // is 5 s of real time, and starting a browser on a busy machine can take
    // longer than that.
    for (const n of ["limits-sender", "limits-receiver-1", "limits-receiver-2"]) browsers.push(await openBrowser(n, logDir));
    const [sender, r1, r2] = browsers;
    await sender.page.goto(`${front1.url}/`); // join 1 from 127.0.0.1
    await sender.page.waitForFunction(() => /^[A-Za-z0-9_-]+$/.test(document.querySelector('[data-testid="room-id"]')?.textContent ?? ""));
    const room = await sender.page.getByTestId("room-id").textContent();
    await sender.page.waitForFunction(() => document.querySelector("#signal-status")?.getAttribute("data-state") === "joined");

    await r1.page.goto(`${front2.url}/?room=${room}`); // join 2 within 5 s
    await r1.page.waitForFunction(() => document.querySelector("#signal-status")?.getAttribute("data-state") === "joined", null, { timeout: 15000 });

    const t0 = Date.now();
    await r2.page.goto(`${front2.url}/?room=${room}`); // join 3 within 5 s: limited
    const limited = await errorText(r2.page, /too many attempts/, 10000);
    assert.match(limited, /retrying in \d+ s/i, "says that it will retry");
    // It retries on its own once the window has passed; the room (two
    // sockets at most) is full by then, and the page says that instead.
    const full = await errorText(r2.page, /full/, 20000);
    assert.match(full, /room is full/i);
    assert.ok(Date.now() - t0 < 20000);
    assert.equal(await r2.page.getByTestId("peer-count").textContent(), "0");
    // The first receiver is unaffected.
    await r1.page.getByTestId("offered-item").count();
    assert.equal(await r1.page.locator("#signal-status").getAttribute("data-state"), "joined");
  });
});
