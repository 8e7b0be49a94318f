// End-to-end where WebSocket is blocked: every front refuses WebSocket
// upgrades (403, as some corporate proxies do) and spreads requests over
// both signal workers in plain round robin, with no affinity. The web
// client falls back to HTTP long-polling; its requests keep landing on the
// worker that does not own the session (which forwards them through Redis),
// and the transfer still completes, SHA-256 checked.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { httpGet } from "../lib/cluster.mjs";
import { openBrowser, sha256, sha256File, startE2ECluster } from "./harness.mjs";

const MiB = 1024 * 1024;
const FILE = "behind-a-proxy.bin";
const TEXT = "sent while WebSocket was blocked\n";

describe("web client with WebSocket refused at the ingress", { timeout: 5 * 60 * 1000 }, () => {
  let env;
  let work;
  let logDir;
  const browsers = [];
  let data;

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "pd-e2e-poll-"));
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-e2e-poll-logs-"));
    data = crypto.randomBytes(8 * MiB + 123);
    fs.writeFileSync(path.join(work, FILE), data);
    env = await startE2ECluster({ keepLogsIn: logDir, frontOptions: { allWorkers: true, refuseWebSocket: true } });
  });

  after(async () => {
    for (const b of browsers) await b.close();
    await env?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it("the front really refuses WebSocket", async () => {
    const r = await new Promise((resolve, reject) => {
      import("node:http").then(({ default: http }) => {
        const req = http.request(`${env.fronts[0].url}/socket.io/?EIO=4&transport=websocket`, {
          headers: { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" },
        });
        req.on("response", (res) => resolve(res.statusCode));
        req.on("upgrade", () => resolve(101));
        req.on("error", reject);
        req.end();
      });
    });
    assert.equal(r, 403);
  });

  it("moves text and a file over long-polling, every request in turn to the next worker", async () => {
    const before = await Promise.all(env.cluster.workers.map((w) => httpGet(`${w.url}/metrics`)));
    const sender = await openBrowser("poll-sender", logDir);
    browsers.push(sender);
    await sender.page.goto(`${env.fronts[0].url}/`);
    await sender.page.waitForFunction(() => /^[A-Za-z0-9_-]+$/.test(document.querySelector('[data-testid="room-id"]')?.textContent ?? ""), null, { timeout: 30000 });
    const roomId = (await sender.page.getByTestId("room-id").textContent()).trim();
    await sender.page.getByTestId("file-input").setInputFiles([path.join(work, FILE)]);
    await sender.page.getByTestId("text-input").fill(TEXT);

    const receiver = await openBrowser("poll-receiver", logDir);
    browsers.push(receiver);
    const p = receiver.page;
    await p.goto(`${env.fronts[1].url}/?room=${encodeURIComponent(roomId)}`);
    await p.locator('[data-testid="offered-item"]').first().waitFor({ timeout: 60000 });
    await p.getByTestId("received-text").waitFor({ timeout: 30000 });
    assert.equal(await p.getByTestId("received-text").textContent(), TEXT);

    const item = p.locator('[data-testid="offered-item"]').filter({ has: p.locator(".name", { hasText: FILE }) });
    const [dl] = await Promise.all([p.waitForEvent("download", { timeout: 120000 }), item.locator('[data-testid="download-button"]').click()]);
    const file = await dl.path();
    assert.equal(fs.statSync(file).size, data.length);
    assert.equal(await sha256File(file), sha256(data), "SHA-256 of the received file");

    // Both workers served polling requests (forwarded ones included): the
    // sessions were split across workers by the round robin.
    const after = await Promise.all(env.cluster.workers.map((w) => httpGet(`${w.url}/metrics`)));
    const forwarded = (t) => Number(/^privydrop_signal_poll_forwarded_total (\d+)/m.exec(t)?.[1] ?? 0);
    const total = after.reduce((n, r, i) => n + forwarded(r.body) - forwarded(before[i].body), 0);
    assert.ok(total > 0, `polling requests were forwarded between workers (${total})`);
  });
});
