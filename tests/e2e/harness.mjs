// harness.mjs — a real local cluster with one ingress per signal worker,
// Debian's Chromium driven by playwright-core, and Debian's Firefox ESR driven
// by puppeteer-core over WebDriver BiDi.
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
import puppeteer from "puppeteer-core";
import { REPO_ROOT, freePort, httpGet, renderTemplate, startCluster } from "../lib/cluster.mjs";

export const CHROMIUM = process.env.PD_CHROMIUM || "/usr/bin/chromium";
export const WEB_DIST = path.resolve(process.env.PD_WEB_DIST || path.join(REPO_ROOT, "services/web/dist"));

export const FIREFOX = process.env.PD_FIREFOX || "/usr/bin/firefox-esr";

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
 * and middleboxes do: clients must fall back to long-polling. `workerPolicy`
 * is a Content-Security-Policy the front sends with the disk worker's script
 * only (a worker runs under the policy its script came with, not the page's).
 */
async function startFront(cluster, worker, n, { workers = [worker], refuseWebSocket = false, workerPolicy = null } = {}) {
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
  if (workerPolicy) {
    const at = "    location / {";
    if (!serverConf.includes(at)) throw new Error("front: no / location in the nginx template");
    serverConf = serverConf.replace(at,
      `    location ^~ /assets/disk-worker- {\n        add_header Content-Security-Policy "${workerPolicy}" always;\n    }\n\n${at}`);
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
 * WebSocket upgrades; `workerPolicy` gives the disk worker's script a
 * Content-Security-Policy).
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

/**
 * A separate Firefox ESR (own process, fresh profile) driven over WebDriver
 * BiDi. Firefox hides host candidates behind mDNS names and leaves loopback
 * out of ICE by default; both prefs put them back so two pages on this
 * machine connect over 127.0.0.1 as Chromium's do. Downloads land, without
 * a dialog, in `downloadDir` (puppeteer has no download event for Firefox:
 * waitDownload() below watches that directory). `newPage(name)` logs each
 * page's console to `<logDir>/<name>.console.log`.
 */
export async function openFirefox(name, logDir) {
  if (!fs.existsSync(FIREFOX)) throw new Error(`${FIREFOX} not found: install Debian's firefox-esr ('make deps')`);
  const downloadDir = fs.mkdtempSync(path.join(os.tmpdir(), `pd-e2e-${name}-dl-`));
  const browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: FIREFOX,
    headless: true,
    // Firefox exits with the launcher; without a timeout a slow start under
    // load would be given up too early (the default is 30 s).
    timeout: 120000,
    protocolTimeout: 300000,
    extraPrefsFirefox: {
      "media.peerconnection.ice.loopback": true,
      "media.peerconnection.ice.obfuscate_host_addresses": false,
      "browser.download.folderList": 2,
      "browser.download.dir": downloadDir,
      "browser.download.useDownloadDir": true,
      "browser.download.always_ask_before_handling_new_types": false,
      "browser.download.alwaysOpenPanel": false,
      "browser.download.start_downloads_in_tmp_dir": false,
      // Several pages share this Firefox as tabs, and only one is in front:
      // timers of the others must not be slowed to once a second.
      "dom.min_background_timeout_value": 4,
      "dom.timeout.enable_budget_timer_throttling": false,
    },
  });
  const pages = [];
  return {
    name,
    browser,
    downloadDir,
    async newPage(pageName, { initScript } = {}) {
      const page = await browser.newPage();
      pages.push(page);
      const logPath = path.join(logDir, `${pageName}.console.log`);
      const log = (line) => fs.appendFileSync(logPath, `${new Date().toISOString()} ${line}\n`);
      page.on("console", (m) => log(`${m.type()}: ${m.text()}`));
      page.on("pageerror", (e) => log(`PAGE ERROR: ${e.stack || e}`));
      if (initScript) await page.evaluateOnNewDocument(initScript);
      return page;
    },
    async close() {
      await browser.close().catch(() => undefined);
      fs.rmSync(downloadDir, { recursive: true, force: true });
    },
  };
}

/**
 * Waits for a download that `start()` triggers to be complete in `dir` and
 * returns its path. A download is the one file that is new since the call
 * and not Firefox's "<name>.part" scratch copy; it is complete once no
 * ".part" copy of it is left (Firefox renames the scratch copy into place at
 * the end, over an empty placeholder it made at the start, so an empty file
 * is taken as not yet complete). `timeout` only stops a hang.
 */
export async function waitDownload(dir, start, timeout = 180000) {
  const before = new Set(fs.readdirSync(dir));
  await start();
  const deadline = Date.now() + timeout;
  for (;;) {
    const names = fs.readdirSync(dir);
    const fresh = names.filter((n) => !before.has(n) && !n.endsWith(".part"));
    if (fresh.length > 1) throw new Error(`more than one new download in ${dir}: ${fresh.join(", ")}`);
    if (fresh.length === 1 && !names.includes(`${fresh[0]}.part`) && fs.statSync(path.join(dir, fresh[0])).size > 0) {
      const file = path.join(dir, fresh[0]);
      return { file, suggested: fresh[0] };
    }
    if (Date.now() > deadline) throw new Error(`no complete download in ${dir} after ${timeout} ms (${names.join(", ")})`);
    await sleep(100);
  }
}

/**
 * Firefox's WebDriver BiDi cannot hand a directory to an input (setFiles
 * refuses it: "Is directory"), so this stands in for the browser's folder
 * dialog on a `webkitdirectory` input: the folder's files, read here, become
 * File objects whose webkitRelativePath starts with the folder's name, as
 * the dialog makes them, and the input's "change" event fires with them as
 * its `files`. Everything after that is the page's own code.
 */
async function firefoxPickFolder(page, selector, dir) {
  const base = path.basename(dir);
  const files = [...listFiles(dir)].map(([rel, full]) => ({ rel: `${base}/${rel}`, b64: fs.readFileSync(full).toString("base64") }));
  await page.evaluate((sel, list) => {
    const input = document.querySelector(sel);
    const picked = list.map(({ rel, b64 }) => {
      const bin = atob(b64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      const f = new File([bytes], rel.split("/").pop(), { lastModified: Date.now() });
      Object.defineProperty(f, "webkitRelativePath", { value: rel });
      return f;
    });
    Object.defineProperty(input, "files", { configurable: true, get: () => picked });
    input.dispatchEvent(new Event("change", { bubbles: true }));
    delete input.files;
  }, selector, files);
}

/**
 * One page of either browser behind the few operations the cross-browser
 * tests and the web benchmark need, so one test body drives both engines.
 * `kind` is "chromium" (a playwright page) or "firefox" (a puppeteer page;
 * its downloads land in `downloadDir`).
 */
export function pageSide(kind, page, { downloadDir } = {}) {
  const pw = kind === "chromium";
  const buttonSel = (name) => `[data-testid="download-button"][data-name="${name.replace(/["\\]/g, "\\$&")}"]`;
  return {
    kind,
    page,
    goto: (url) => page.goto(url),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    /** Resolves with fn's first truthy result. */
    async waitFor(fn, arg, timeout = 60000) {
      const h = pw ? await page.waitForFunction(fn, arg, { timeout, polling: 50 })
        : await page.waitForFunction(fn, { timeout, polling: 50 }, arg);
      return h.jsonValue();
    },
    async upload(selector, paths) {
      if (pw) return page.locator(selector).setInputFiles(paths);
      const list = Array.isArray(paths) ? paths : [paths];
      if (list.length === 1 && fs.statSync(list[0]).isDirectory()) return firefoxPickFolder(page, selector, list[0]);
      const el = await page.$(selector);
      return el.uploadFile(...list);
    },
    fill: (selector, text) => page.locator(selector).fill(text),
    click: (selector) => page.click(selector),
    /**
     * Clicks item `name`'s download button; resolves with the saved file's
     * path and name once it is complete (not awaited, it lets the test act
     * on the page while the transfer runs).
     */
    async download(name, timeout = 180000) {
      if (pw) {
        const [dl] = await Promise.all([page.waitForEvent("download", { timeout }), page.click(buttonSel(name))]);
        return { file: await dl.path(), suggested: dl.suggestedFilename() };
      }
      return waitDownload(downloadDir, () => page.click(buttonSel(name)), timeout);
    },
  };
}

/**
 * Opens the sending page at `url`, waits for its room and shares `files`
 * (paths), `folder` (a directory, optional) and `text` (optional). Resolves
 * with the room id once the page lists every file and folder.
 */
export async function shareFrom(send, url, { files = [], folder, text } = {}) {
  await send.goto(`${url}/`);
  const roomId = await send.waitFor(() => {
    const t = document.querySelector('[data-testid="room-id"]')?.textContent ?? "";
    return /^[A-Za-z0-9_-]+$/.test(t) ? t : null;
  }, null, 30000);
  if (files.length) await send.upload('[data-testid="file-input"]', files);
  if (folder) await send.upload('[data-testid="folder-input"]', folder);
  if (text) await send.fill('[data-testid="text-input"]', text); // text is not a listed item
  const items = files.length + (folder ? 1 : 0);
  await send.waitFor((n) => document.querySelectorAll('[data-testid="shared-item"]').length >= n, items, 20000);
  return roomId;
}
