// End-to-end through TURN: both pages opened with ?relay=1 (relay-only ICE,
// iceTransportPolicy "relay"), so the only way their data channel can connect
// is through coturn. coturn runs from deploy/coturn/run-coturn.sh with the
// test-only loopback overlay and a secret made up here; the room API gets
// the same secret and hands out TURN REST credentials at /api/ice_servers.
//
// The test fails if the bytes went any other way: the selected candidate
// pair of each page's peer connection (getStats) must be relay ↔ relay and
// must have carried the file, and coturn's log must show an allocation for
// the username of the credential the page was given.
//
//   make test-e2e      (or: node --test tests/e2e/turn-relay.test.mjs after make web c)

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import dgram from "node:dgram";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { REPO_ROOT, freePort, httpGet } from "../lib/cluster.mjs";
import { openBrowser, sha256, sha256File, startE2ECluster } from "./harness.mjs";

const MiB = 1024 * 1024;
const FILE = "relayed-random.bin";
const SIZE = 4 * MiB;
const RUN_COTURN = path.join(REPO_ROOT, "deploy/coturn/run-coturn.sh");
const TEST_OVERLAY = path.join(REPO_ROOT, "deploy/coturn/turnserver.test.conf");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every RTCPeerConnection the page makes, kept on window for getStats() below.
// The client itself is not changed for this: it is the page's own connection.
const RECORD_PCS = `(() => {
  const Orig = window.RTCPeerConnection;
  window.__pdPcs = [];
  window.RTCPeerConnection = class extends Orig {
    constructor(...args) {
      super(...args);
      window.__pdPcs.push(this);
    }
  };
})();`;

/** One STUN Binding request over UDP; resolves true when anything answers. */
function stunPing(port, timeout = 500) {
  return new Promise((resolve) => {
    const s = dgram.createSocket("udp4");
    const req = Buffer.alloc(20);
    req.writeUInt16BE(0x0001, 0); // Binding request, no attributes
    req.writeUInt32BE(0x2112a442, 4); // magic cookie
    crypto.randomBytes(12).copy(req, 8);
    const done = (ok) => {
      clearTimeout(timer);
      s.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeout);
    s.on("message", (m) => done(m.length >= 20 && m.readUInt16BE(0) === 0x0101));
    s.on("error", () => done(false));
    s.send(req, port, "127.0.0.1");
  });
}

/** coturn through the deployment's launcher, on 127.0.0.1:port. Stopped by its PID. */
async function startCoturn({ secret, port, logDir }) {
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-e2e-coturn-"));
  const logPath = path.join(logDir, "coturn.log");
  const fd = fs.openSync(logPath, "a");
  // Relay ports: a random band of 100, so parallel runs rarely meet (coturn
  // picks another port in the band when one is taken).
  const minPort = 40000 + 100 * crypto.randomInt(0, 200);
  // -v: coturn logs sessions and allocations ("... ALLOCATE processed, success") only when verbose.
  const child = spawn(RUN_COTURN, ["-v"], {
    env: {
      PATH: process.env.PATH,
      PD_TURN_SECRET: secret,
      PD_TURN_RUN_DIR: runDir,
      PD_TURN_LISTEN_IP: "127.0.0.1",
      PD_TURN_PORT: String(port),
      PD_TURN_MIN_PORT: String(minPort),
      PD_TURN_MAX_PORT: String(minPort + 99),
      PD_TURN_CONFIG_OVERLAYS: TEST_OVERLAY,
    },
    stdio: ["ignore", fd, fd],
  });
  fs.closeSync(fd);
  let exited = null;
  const exitedP = new Promise((resolve) => child.on("exit", (code, signal) => { exited = { code, signal }; resolve(exited); }));
  const coturn = {
    pid: child.pid,
    port,
    logPath,
    log: () => fs.readFileSync(logPath, "utf8"),
    async stop() {
      try {
        if (!exited) {
          // run-coturn.sh execs turnserver: this PID is coturn itself.
          process.kill(child.pid, "SIGTERM");
          await Promise.race([exitedP, sleep(5000)]);
          if (!exited) {
            process.kill(child.pid, "SIGKILL");
            await exitedP;
          }
        }
      } finally {
        fs.rmSync(runDir, { recursive: true, force: true }); // holds the secret
      }
    },
  };
  const deadline = Date.now() + 15000;
  for (;;) {
    if (exited) {
      await coturn.stop();
      throw new Error(`coturn exited (${JSON.stringify(exited)}); its log:\n${coturn.log().slice(-3000)}`);
    }
    if (await stunPing(port)) return coturn;
    if (Date.now() > deadline) {
      await coturn.stop();
      throw new Error(`coturn did not answer STUN on 127.0.0.1:${port}; its log:\n${coturn.log().slice(-3000)}`);
    }
    await sleep(100);
  }
}

/**
 * The page's connected peer connections: their configuration and the
 * selected candidate pair with its local and remote candidates (getStats).
 */
function relayStats(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.__pdPcs ?? []) {
      if (pc.connectionState !== "connected") continue;
      const by = new Map();
      (await pc.getStats()).forEach((r) => by.set(r.id, r));
      const reports = [...by.values()];
      const transport = reports.find((r) => r.type === "transport" && r.selectedCandidatePairId);
      const pair = transport ? by.get(transport.selectedCandidatePairId)
        : reports.find((r) => r.type === "candidate-pair" && r.nominated && r.state === "succeeded");
      const cand = (id) => {
        const c = by.get(id);
        return c && { type: c.candidateType, address: c.address, port: c.port, protocol: c.protocol, relayProtocol: c.relayProtocol, url: c.url };
      };
      const cfg = pc.getConfiguration();
      out.push({
        policy: cfg.iceTransportPolicy,
        usernames: (cfg.iceServers ?? []).map((s) => s.username).filter(Boolean),
        pair: pair && { state: pair.state, bytesSent: pair.bytesSent, bytesReceived: pair.bytesReceived },
        local: pair && cand(pair.localCandidateId),
        remote: pair && cand(pair.remoteCandidateId),
        localTypes: [...new Set(reports.filter((r) => r.type === "local-candidate").map((r) => r.candidateType))],
      });
    }
    return out;
  });
}

let env;
let coturn;
let logDir;
let work;
let secret;
let turnPort;
const browsers = [];

describe("web client through TURN (relay-only ICE)", { timeout: 5 * 60 * 1000 }, () => {
  before(async () => {
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-e2e-turn-"));
    work = fs.mkdtempSync(path.join(os.tmpdir(), "pd-e2e-turn-data-"));
    secret = crypto.randomBytes(24).toString("hex");
    turnPort = await freePort();
    coturn = await startCoturn({ secret, port: turnPort, logDir });
    env = await startE2ECluster({
      keepLogsIn: logDir,
      roomApiEnv: { PD_TURN_HOST: "127.0.0.1", PD_TURN_PORT: String(turnPort), PD_TURN_SECRET: secret },
    });
  });

  after(async () => {
    for (const b of browsers) await b.close();
    let problem = null;
    for (const stop of [() => env?.stop(), () => coturn?.stop()]) {
      try {
        await stop();
      } catch (e) {
        problem ??= e;
      }
    }
    if (work) fs.rmSync(work, { recursive: true, force: true });
    console.log(`browser console, coturn and server logs: ${logDir}`);
    if (problem) throw problem;
  });

  it("the room API hands out TURN credentials for this coturn", async () => {
    const { status, body } = await httpGet(`${env.fronts[0].url}/api/ice_servers`);
    assert.equal(status, 200);
    const turn = JSON.parse(body).iceServers.find((s) => s.username);
    assert.ok(turn, `a TURN entry with credentials in ${body}`);
    assert.ok([turn.urls].flat().includes(`turn:127.0.0.1:${turnPort}?transport=udp`), `TURN URL for port ${turnPort}: ${turn.urls}`);
  });

  it("moves a 4 MiB file between two relay-only pages, through coturn only", async () => {
    const data = crypto.randomBytes(SIZE);
    fs.writeFileSync(path.join(work, FILE), data);

    const sender = await openBrowser("relay-sender", logDir, { initScript: RECORD_PCS });
    browsers.push(sender);
    await sender.page.goto(`${env.fronts[0].url}/?relay=1`);
    await sender.page.waitForFunction(() => /^[A-Za-z0-9_-]+$/.test(document.querySelector('[data-testid="room-id"]')?.textContent ?? ""), null, { timeout: 20000 });
    const roomId = (await sender.page.getByTestId("room-id").textContent()).trim();
    // The share link does not carry ?relay=1: relay-only is this page's choice.
    assert.equal((await sender.page.getByTestId("share-link").textContent()).trim(), `${env.fronts[0].url}/?room=${roomId}`);
    await sender.page.getByTestId("file-input").setInputFiles(path.join(work, FILE));
    await sender.page.locator('[data-testid="shared-item"]').first().waitFor({ timeout: 10000 });

    const receiver = await openBrowser("relay-receiver", logDir, { initScript: RECORD_PCS });
    browsers.push(receiver);
    await receiver.page.goto(`${env.fronts[1].url}/?room=${encodeURIComponent(roomId)}&relay=1`);
    const item = receiver.page.locator(`[data-testid="offered-item"][data-name="${FILE}"]`);
    await item.waitFor({ timeout: 40000 });

    const [dl] = await Promise.all([
      receiver.page.waitForEvent("download", { timeout: 120000 }),
      item.locator('[data-testid="download-button"]').click(),
    ]);
    const file = await dl.path();
    assert.equal(dl.suggestedFilename(), FILE);
    assert.equal(fs.statSync(file).size, SIZE);
    assert.equal(await sha256File(file), sha256(data), "SHA-256 of the relayed file");
    await item.locator('[data-testid="verified"]').waitFor({ timeout: 10000 });
    assert.equal(await receiver.page.locator('[data-testid="error"]').count(), 0, "no error shown to the receiver");

    // How the bytes went: each page has one connected peer connection, made
    // relay-only by the client, whose selected pair is relay on both ends and
    // carried the file.
    const usernames = new Set();
    for (const [b, bytesKey] of [[sender, "bytesSent"], [receiver, "bytesReceived"]]) {
      // libwebrtc marks even the selected pair "in-progress" while one of its
      // periodic consent checks is out, so read the stats again until the
      // pair reads "succeeded" between two checks (each takes one loopback
      // round trip); a pair that never succeeded still fails below.
      let pcs = await relayStats(b.page);
      for (let tries = 0; tries < 50 && pcs.some((p) => p.pair?.state === "in-progress"); tries++) {
        await sleep(100);
        pcs = await relayStats(b.page);
      }
      const what = `${b.name}: ${JSON.stringify(pcs)}`;
      assert.equal(pcs.length, 1, `one connected peer connection on ${what}`);
      const [s] = pcs;
      assert.equal(s.policy, "relay", `iceTransportPolicy on ${what}`);
      assert.deepEqual(s.localTypes, ["relay"], `only relay candidates gathered on ${what}`);
      assert.equal(s.pair?.state, "succeeded", `selected pair on ${what}`);
      assert.equal(s.local?.type, "relay", `local candidateType of the selected pair on ${what}`);
      assert.equal(s.remote?.type, "relay", `remote candidateType of the selected pair on ${what}`);
      assert.equal(s.local.address, "127.0.0.1", `relayed address is coturn's on ${what}`);
      assert.match(s.local.url ?? "", new RegExp(`^turn:127\\.0\\.0\\.1:${turnPort}\\b`), `relay candidate from our coturn on ${what}`);
      assert.ok(s.pair[bytesKey] >= SIZE, `the selected relay pair carried the file (${bytesKey}) on ${what}`);
      assert.equal(s.usernames.length, 1, `one TURN credential on ${what}`);
      usernames.add(s.usernames[0]);
    }

    // coturn's side: an allocation for the very username the pages were given
    // (its log is written through stdio buffers: give it a moment).
    for (const u of usernames) {
      assert.match(u, /^\d+:/, `TURN REST username (expiry:...) ${u}`);
      const line = `user <${u}>: incoming packet ALLOCATE processed, success`;
      const deadline = Date.now() + 5000;
      while (!coturn.log().includes(line) && Date.now() < deadline) await sleep(100);
      assert.ok(coturn.log().includes(line), `coturn's log shows "${line}" (${coturn.logPath})`);
    }
  });
});
