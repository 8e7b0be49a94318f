// harness.mjs — a real local cluster with one ingress per signal worker, and
// Debian's Chromium driven by playwright-core.
//
// tests/lib/cluster.mjs starts redis-server, the signal workers and the room
// API. Its own nginx spreads /socket.io/ over all workers; these tests need a
// browser pinned to one worker, so each worker gets its own nginx "front",
// rendered from the same deploy/ templates with that worker as the only
// signal upstream. Both fronts serve the built client and proxy /api/ to the
// one room API, so a page on front 1 and a page on front 2 share rooms but
// not a signal worker: their signals cross between workers through Redis.

import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { REPO_ROOT, freePort, httpGet, renderTemplate, startCluster } from "../lib/cluster.mjs";

export const CHROMIUM = process.env.PD_CHROMIUM || "/usr/bin/chromium";
export const WEB_DIST = path.resolve(process.env.PD_WEB_DIST || path.join(REPO_ROOT, "services/web/dist"));

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--allow-loopback-in-peer-connection",
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * One nginx in front of one signal worker (and the shared room API), or, with
 * `workers`, of several in plain round robin. `refuseWebSocket` makes it
 * answer every WebSocket upgrade on /socket.io/ with 403, as some proxies
 * and middleboxes do: clients must fall back to long-polling.
 */
async function startFront(cluster, worker, n, { workers = [worker], refuseWebSocket = false } = {}) {
  const port = await freePort();
  const runDir = path.join(cluster.dir, `front-${n}`);
  const logDir = path.join(runDir, "logs");
  fs.mkdirSync(logDir, { recursive: true });
  fs.chmodSync(runDir, 0o755);
  let serverConf = renderTemplate(fs.readFileSync(path.join(REPO_ROOT, "deploy/nginx/privydrop.conf.template"), "utf8"), {
    LISTEN: `127.0.0.1:${port}`,
    SERVER_NAME: "localhost",
    SIGNAL_UPSTREAM: workers.map((w) => `127.0.0.1:${w.port}`).join(";\n    server "),
    ROOMAPI_UPSTREAM: `127.0.0.1:${cluster.roomApi.port}`,
    WEB_ROOT: WEB_DIST,
  });
  if (refuseWebSocket) {
    const at = "location /socket.io/ {";
    if (!serverConf.includes(at)) throw new Error("front: no /socket.io/ location in the nginx template");
    serverConf = serverConf.replace(at, `${at}\n        if ($http_upgrade) { return 403; }`);
  }
  const serverConfPath = path.join(runDir, "privydrop.conf");
  fs.writeFileSync(serverConfPath, serverConf);
  const mainConf = renderTemplate(fs.readFileSync(path.join(REPO_ROOT, "deploy/local/nginx.conf.template"), "utf8"), {
    RUN_DIR: runDir,
    LOG_DIR: logDir,
    MIME_TYPES: "/etc/nginx/mime.types",
    SERVER_CONF: serverConfPath,
  });
  const confPath = path.join(runDir, "nginx.conf");
  fs.writeFileSync(confPath, mainConf);
  const errPath = path.join(logDir, "nginx.stderr.log");
  const errFd = fs.openSync(errPath, "a");
  const child = spawn(process.env.PD_NGINX || "nginx", ["-p", runDir, "-e", path.join(logDir, "nginx.error.log"), "-c", confPath],
    { stdio: ["ignore", errFd, errFd] });
  fs.closeSync(errFd);
  let exited = null;
  const exitedP = new Promise((resolve) => child.on("exit", (code, signal) => { exited = { code, signal }; resolve(exited); }));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15000;
  for (;;) {
    if (exited) throw new Error(`nginx front ${n} exited (${JSON.stringify(exited)}): ${fs.readFileSync(errPath, "utf8")}`);
    try {
      const [health, index] = [await httpGet(`${url}/health`), await httpGet(`${url}/`)];
      if (health.status === 200 && index.status === 200) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`nginx front ${n} did not come up at ${url}`);
    await sleep(50);
  }
  return {
    url,
    port,
    worker,
    logDir,
    async stop() {
      if (exited) return;
      child.kill("SIGTERM");
      await Promise.race([exitedP, sleep(5000)]);
      if (!exited) {
        child.kill("SIGKILL");
        await exitedP;
      }
    },
  };
}

/**
 * Starts redis, two signal workers, the room API and one nginx front per
 * worker. `fronts[i]` reaches only `cluster.workers[i]` for signaling
 * (with `frontOptions: { allWorkers: true }`, every front reaches every
 * worker in round robin; `refuseWebSocket: true` makes the fronts refuse
 * WebSocket upgrades).
 * `env` goes to every server process, `roomApiEnv` to the room API only.
 */
export async function startE2ECluster({ env = {}, roomApiEnv = {}, keepLogsIn, joinRateLimit = false, frontOptions } = {}) {
  if (!fs.existsSync(path.join(WEB_DIST, "index.html"))) {
    throw new Error(`${WEB_DIST}/index.html is missing: build the web client with 'make web'`);
  }
  const cluster = await startCluster({
    workers: 2,
    nginx: false,
    // Every browser here joins from 127.0.0.1 within seconds; the per-IP join
    // limit is for the internet, not for this test.
    env: { ...(joinRateLimit ? {} : { DISABLE_JOIN_RATE_LIMIT: "1" }), PD_TRUSTED_PROXIES: "127.0.0.1/32", ...env },
    roomApiEnv, // e.g. PD_TURN_* for GET /api/ice_servers (turn-relay.test.mjs)
  });
  const fronts = [];
  try {
    for (let i = 0; i < cluster.workers.length; i++) {
      const opts = frontOptions ? { ...frontOptions, workers: frontOptions.allWorkers ? cluster.workers : [cluster.workers[i]] } : {};
      fronts.push(await startFront(cluster, cluster.workers[i], i + 1, opts));
    }
  } catch (e) {
    for (const f of fronts) await f.stop();
    await cluster.stop().catch(() => undefined);
    throw e;
  }
  return {
    cluster,
    fronts,
    async stop() {
      for (const f of fronts) await f.stop();
      // Server logs next to the browsers' console logs (cluster.stop removes
      // its own copy after a clean stop).
      if (keepLogsIn) copyLogs(cluster.dir, path.join(keepLogsIn, "cluster"));
      await cluster.stop();
    },
  };
}

function copyLogs(from, to) {
  if (!fs.existsSync(from)) return;
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, e.name);
    if (e.isDirectory()) copyLogs(src, path.join(to, e.name));
    else if (/\.log$/.test(e.name)) {
      fs.mkdirSync(to, { recursive: true });
      fs.copyFileSync(src, path.join(to, e.name));
    }
  }
}

/**
 * A separate Chromium (own process, fresh profile on disk) with one page.
 * Console output and page errors go to `<logDir>/<name>.console.log`.
 * `contextOptions` go to playwright's launchPersistentContext (locale, viewport, ...).
 */
export async function openBrowser(name, logDir, { initScript, contextOptions = {} } = {}) {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium ('make deps')`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), `pd-e2e-${name}-`));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    acceptDownloads: true,
    viewport: { width: 1100, height: 900 },
    // e.g. { locale: "fr-FR" }: navigator.languages and Accept-Language; a phone's viewport.
    ...contextOptions,
  });
  if (initScript) await ctx.addInitScript(initScript);
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  const logPath = path.join(logDir, `${name}.console.log`);
  const log = (line) => fs.appendFileSync(logPath, `${new Date().toISOString()} ${line}\n`);
  page.on("console", (m) => log(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => log(`PAGE ERROR: ${e.stack || e}`));
  // Signaling frames as the browser saw them (SDP shortened), for diagnosis.
  const wsLog = path.join(logDir, `${name}.ws.log`);
  const cdp = await ctx.newCDPSession(page);
  await cdp.send("Network.enable");
  const frame = (dir) => (e) => fs.appendFileSync(wsLog,
    `${new Date().toISOString()} ${dir} ${String(e.response.payloadData).replace(/"sdp":"[^"]*"/, '"sdp":"…"').slice(0, 600)}\n`);
  cdp.on("Network.webSocketFrameReceived", frame("<"));
  cdp.on("Network.webSocketFrameSent", frame(">"));
  cdp.on("Network.webSocketFrameError", (e) => fs.appendFileSync(wsLog, `${new Date().toISOString()} ERROR ${e.errorMessage}\n`));
  return {
    name,
    ctx,
    page,
    logPath,
    async close() {
      await ctx.close().catch(() => undefined);
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

export function sha256File(file) {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash("sha256");
    fs.createReadStream(file).on("data", (d) => h.update(d)).on("end", () => resolve(h.digest("hex"))).on("error", reject);
  });
}

export function sha256(buf) {
  return crypto.createHash("sha256").update(buf).digest("hex");
}

/**
 * Entries of a zip file as [{name, data}], from its central directory.
 * Handles stored and deflated entries (what browsers' zip writers produce).
 */
export async function readZip(file) {
  const { inflateRawSync } = await import("node:zlib");
  const buf = fs.readFileSync(file);
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error("not a zip file: no end of central directory");
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const out = [];
  for (let k = 0; k < count; k++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error(`bad central directory entry ${k}`);
    const flags = buf.readUInt16LE(p + 8);
    const method = buf.readUInt16LE(p + 10);
    const csize = buf.readUInt32LE(p + 20);
    const size = buf.readUInt32LE(p + 24);
    const nlen = buf.readUInt16LE(p + 28);
    const xlen = buf.readUInt16LE(p + 30);
    const clen = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.subarray(p + 46, p + 46 + nlen).toString(flags & 0x800 ? "utf8" : "latin1");
    p += 46 + nlen + xlen + clen;
    if (name.endsWith("/")) continue;
    if (buf.readUInt32LE(local) !== 0x04034b50) throw new Error(`bad local header for ${name}`);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(start, start + csize);
    const data = method === 0 ? raw : method === 8 ? inflateRawSync(raw) : null;
    if (!data) throw new Error(`unsupported zip method ${method} for ${name}`);
    if (data.length !== size) throw new Error(`size mismatch for ${name}: ${data.length} != ${size}`);
    out.push({ name, data });
  }
  return out;
}

/** Files below `dir` as relative "/"-paths → absolute paths. */
export function listFiles(dir, base = dir, out = new Map()) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) listFiles(full, base, out);
    else out.set(path.relative(base, full).split(path.sep).join("/"), full);
  }
  return out;
}
