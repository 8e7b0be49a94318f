// End-to-end: a deployment whose Content-Security-Policy refuses WebAssembly
// to the web client's disk worker (its script served with `script-src 'self'`,
// no 'wasm-unsafe-eval'). The worker needs none: it writes the received file
// and hashes it block by block with WebCrypto (docs/datachannel-protocol.md
// §7, services/web/README.md). The sending page here has no worker at all,
// so it reads and hashes the blocks it sends itself, the other way the item
// digest is made; the file still verifies.

import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { openBrowser, pageSide, sha256File, shareFrom, startE2ECluster } from "./harness.mjs";

const MiB = 1024 * 1024;
const NAME = "under-policy.bin";

describe("disk worker refused WebAssembly by the deployment's policy", () => {
  let env;
  let browser;
  let work;
  let logDir;

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "pd-e2e-policy-"));
    logDir = path.join(work, "logs");
    fs.mkdirSync(logDir);
    env = await startE2ECluster({ keepLogsIn: logDir, frontOptions: { workerPolicy: "script-src 'self'" } });
    browser = await openBrowser("policy", logDir);
  });

  after(async () => {
    await browser?.close();
    await env?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("moves a file hashed by the receiver's disk worker and by the sending page, and verifies it", async () => {
    const file = path.join(work, NAME);
    // Not a whole number of 1 MiB blocks: the last block is short.
    fs.writeFileSync(file, crypto.randomBytes(9 * MiB + 4321));
    const said = (page) => {
      const lines = [];
      page.on("console", (m) => lines.push(m.text()));
      return lines;
    };
    const send = browser.page;
    await send.addInitScript(() => { delete window.Worker; });
    const senderSaid = said(send);
    const roomId = await shareFrom(pageSide("chromium", send), env.fronts[0].url, { files: [file] });

    const recv = await browser.ctx.newPage();
    const receiverSaid = said(recv);
    await recv.goto(`${env.fronts[1].url}/?room=${encodeURIComponent(roomId)}`);
    const button = recv.locator(`[data-testid="download-button"][data-name="${NAME}"]`);
    await button.waitFor({ timeout: 30000 });
    // A failed item ends the wait at once rather than at the download's timeout.
    const failed = recv.waitForFunction((n) => [...document.querySelectorAll('[data-testid="progress"]')]
      .find((e) => e.getAttribute("data-name") === n)?.getAttribute("data-state") === "failed", NAME, { timeout: 120000, polling: 200 })
      .then(async () => { throw new Error(`the item failed: ${await recv.locator(`[data-testid="progress"][data-name="${NAME}"]`).textContent()}`); });
    failed.catch(() => undefined);
    const [dl] = await Promise.race([
      Promise.all([recv.waitForEvent("download", { timeout: 120000 }), button.click()]),
      failed,
    ]);
    assert.equal(await sha256File(await dl.path()), await sha256File(file), "SHA-256 of the received file");

    // The policy was in force: the receiving page's disk worker came with it.
    const workerUrl = recv.workers().map((w) => w.url()).find((u) => u.includes("/assets/disk-worker-"));
    assert.ok(workerUrl, `the receiving page runs the disk worker (${recv.workers().map((w) => w.url()).join(", ")})`);
    assert.equal((await fetch(workerUrl)).headers.get("content-security-policy"), "script-src 'self'", "the worker's script is refused WebAssembly");

    // The receiver's worker, without WebAssembly, wrote and hashed it; the
    // sending page, without a worker, read and hashed the blocks it sent.
    const receiving = receiverSaid.filter((l) => /receiving item/.test(l)).join(" | ");
    assert.match(receiving, /to disk by the disk worker, SHA-256 by the disk worker/, "the receiver's disk worker hashed it");
    assert.ok(senderSaid.some((l) => /blocks read on the page/.test(l)), "the sending page read the blocks");
    assert.ok(senderSaid.some((l) => /SHA-256 from the blocks sent, on the page/.test(l)),
      `the sending page hashed the blocks it sent (${senderSaid.filter((l) => /SHA-256/.test(l)).join(" | ")})`);
  });
});
