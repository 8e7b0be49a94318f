// compose.test.mjs — docker-compose.yml for real: the README's compose flow on
// the images of `make images`, driven by Debian's docker-compose through
// podman's Docker-compatible API (a `podman system service` of our own).
//
//   make test-compose      (builds the images first; needs root)
//
// 1. `.env` from .env.example with test secrets and free ports; `up -d` with
//    two signal replicas (deploy.replicas, honoured with --compatibility).
//    Podman runs health checks only through systemd timers, so this test runs
//    them (`podman healthcheck run`) until every container is healthy.
// 2. The browser end-to-end transfer (tests/e2e/transfer.test.mjs: two
//    Chromium pages, share link, files and a folder, SHA-256 verified) with
//    the stack's nginx as its only URL.
// 3. `--scale signal=4` and a restart of nginx: connections reach all four.
// 4. One signal replica restarted under a live room: the sender's page
//    re-joins by itself, and a receiver arriving afterwards gets the file,
//    which takes new signaling between the two.
// 5. No container logged an error line; Redis (PID 1) stops on SIGTERM after
//    saving; `down` leaves no container, network or volume behind.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { REPO_ROOT, freePort, httpGet } from "../lib/cluster.mjs";
import { openBrowser, sha256, sha256File } from "../e2e/harness.mjs";

// socket.io-client is installed for the integration tests (make deps).
const { io } = createRequire(path.join(REPO_ROOT, "tests/integration/package.json"))("socket.io-client");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// run.sh names the project and the work folder, so it can clear up after a killed run.
const project = process.env.PD_COMPOSE_PROJECT || `pdtest${process.pid}`;
const work = process.env.PD_COMPOSE_WORK || fs.mkdtempSync(path.join(os.tmpdir(), "pd-compose-"));
const logDir = path.join(work, "logs");
fs.mkdirSync(logDir);
const sock = path.join(work, "podman.sock");
const envFile = path.join(work, ".env");
let service; // the podman system service child
let url; // the stack's nginx
let redisPassword;
let wentDown = false;
const browsers = [];
let restarted = null; // { id, ip } of the signal replica restarted in step 4

/** Runs a command; resolves { code, out, err }. `timeout` is a hang guard only. */
function run(cmd, args, { timeout = 600000, env = {} } = {}) {
  // A node --test started from inside a test file would see this and skip its files.
  const { NODE_TEST_CONTEXT: _, ...base } = process.env;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...base, DOCKER_HOST: `unix://${sock}`, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => { out += d; });
    child.stderr.on("data", (d) => { err += d; });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeout);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: signal ? `killed by ${signal} after ${timeout} ms` : code, out, err });
    });
  });
}

async function must(cmd, args, opts) {
  const r = await run(cmd, args, opts);
  assert.equal(r.code, 0, `${cmd} ${args.join(" ")} failed:\n${r.err}${r.out}`);
  return r.out;
}

// --compatibility: docker-compose 1.x honours deploy.replicas only with it;
// compose.podman.yml: the network's IPAM option as podman reports it.
const composeArgs = (...args) => ["-f", path.join(REPO_ROOT, "docker-compose.yml"),
  "-f", path.join(REPO_ROOT, "deploy/podman/compose.podman.yml"), "--project-directory", REPO_ROOT,
  "--env-file", envFile, "--compatibility", ...args];
const compose = (...args) => run("docker-compose", composeArgs(...args));
const podman = (...args) => must("podman", args);

/** The project's containers: [{ id, name, service, state, health }] (health: "" when it has no check). */
async function containers() {
  const out = await podman("ps", "-a", "--filter", `label=com.docker.compose.project=${project}`, "--format", "json");
  return JSON.parse(out || "[]").map((c) => ({
    id: c.Id,
    name: c.Names[0],
    service: c.Labels["com.docker.compose.service"],
    state: c.State,
    health: (/\((healthy|unhealthy|starting)\)/.exec(c.Status) || [, ""])[1],
  }));
}

/**
 * Runs the health checks of every running container that is not yet healthy,
 * once a second, until `done(containers)` holds (or `promise` settles, and
 * then one more round). Podman would run them from systemd timers.
 */
async function driveHealth(done, { timeout = 300000, promise } = {}) {
  let settled = false;
  let failed = null;
  promise?.then((r) => {
    settled = true;
    if (r.code !== 0) failed = `${r.err}${r.out}`;
  }, (e) => { settled = true; failed = String(e); });
  const deadline = Date.now() + timeout;
  for (;;) {
    if (failed) throw new Error(`docker-compose failed:\n${failed}`);
    const cs = await containers();
    if (done(cs) && (!promise || settled)) return cs;
    if (Date.now() > deadline) {
      throw new Error(`not healthy after ${timeout} ms: ${cs.map((c) => `${c.name} ${c.state} ${c.health}`).join(", ")}`);
    }
    for (const c of cs) {
      if (c.state === "running" && c.health && c.health !== "healthy") await run("podman", ["healthcheck", "run", c.id], { timeout: 30000 });
    }
    await sleep(1000);
  }
}

const allHealthy = (want) => (cs) => {
  const running = cs.filter((c) => c.state === "running" && c.health === "healthy");
  return Object.entries(want).every(([svc, n]) => running.filter((c) => c.service === svc).length === n);
};

/** Established TCP connections to port 3001 from outside the container (nginx's WebSockets). */
async function wsConnections(id) {
  const r = await run("podman", ["exec", id, "cat", "/proc/net/tcp"], { timeout: 30000 });
  if (r.code !== 0) return -1;
  let n = 0;
  for (const line of r.out.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const [, local, remote, st] = f;
    if (st === "01" && local.endsWith(":0BB9") && !remote.startsWith("0100007F:")) n++;
  }
  return n;
}

async function signalReplicas() {
  return (await containers()).filter((c) => c.service === "signal" && c.state === "running");
}

async function containerIp(id) {
  const out = await podman("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", id);
  return out.trim().split(/\s+/)[0];
}

/** A free 172.30.X.0/24 for the compose network (none of podman's networks, no host route). */
async function freeSubnet() {
  const nets = await podman("network", "ls", "--format", "json");
  const routes = await run("ip", ["-4", "route"]);
  const used = `${nets}\n${routes.out}`;
  for (let i = 0; i < 200; i++) {
    const x = 100 + crypto.randomInt(150);
    if (!used.includes(`172.30.${x}.`)) return `172.30.${x}.0/24`;
  }
  throw new Error("no free 172.30.X.0/24 subnet");
}

/** .env from .env.example: the documented file, with test secrets, free ports and the local images. */
async function writeEnv() {
  const httpPort = await freePort();
  url = `http://127.0.0.1:${httpPort}`;
  redisPassword = crypto.randomBytes(16).toString("hex");
  const relay = 40000 + 100 * crypto.randomInt(80);
  const set = {
    COMPOSE_PROJECT_NAME: project,
    REDIS_PASSWORD: redisPassword,
    PD_TURN_SECRET: crypto.randomBytes(24).toString("hex"),
    PD_TURN_HOST: "127.0.0.1",
    PD_TURN_PORT: String(await freePort()),
    PD_TURN_MIN_PORT: String(relay),
    PD_TURN_MAX_PORT: String(relay + 99),
    PD_HTTP_BIND: "127.0.0.1",
    PD_HTTP_PORT: String(httpPort),
    CORS_ORIGIN: url,
    PD_COMPOSE_SUBNET: await freeSubnet(),
    PD_REDIS_IMAGE: "privydrop-redis:local",
    PD_IMAGE_TAG: process.env.PD_IMAGE_TAG || "local",
    // Every browser of this test comes from one address within seconds.
    DISABLE_JOIN_RATE_LIMIT: "1",
  };
  const lines = fs.readFileSync(path.join(REPO_ROOT, ".env.example"), "utf8").split("\n").map((l) => {
    const m = /^([A-Z_][A-Z0-9_]*)=/.exec(l);
    return m && m[1] in set ? `${m[1]}=${set[m[1]]}` : l;
  });
  for (const k of Object.keys(set)) assert.ok(lines.some((l) => l.startsWith(`${k}=`)), `.env.example documents ${k}`);
  fs.writeFileSync(envFile, lines.join("\n"), { mode: 0o600 });
}

function ping() {
  return new Promise((resolve) => {
    const req = http.get({ socketPath: sock, path: "/_ping", timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => { req.destroy(); resolve(false); });
  });
}

async function startService() {
  const out = fs.openSync(path.join(logDir, "podman-service.log"), "a");
  service = spawn("podman", ["system", "service", "--time=0", `unix://${sock}`], { stdio: ["ignore", out, out] });
  fs.closeSync(out);
  service.exitedP = new Promise((r) => service.on("exit", r));
  fs.writeFileSync(path.join(work, "service.pid"), String(service.pid));
  const deadline = Date.now() + 60000;
  while (!(await ping())) {
    if (service.exitCode !== null) throw new Error(`podman system service exited: ${fs.readFileSync(path.join(logDir, "podman-service.log"), "utf8")}`);
    if (Date.now() > deadline) throw new Error("podman system service did not answer /_ping");
    await sleep(200);
  }
}

/** Every container's log since it was created (restarts included), by container name. */
async function containerLogs() {
  const logs = {};
  for (const c of await containers()) {
    const r = await run("podman", ["logs", c.id], { timeout: 60000 });
    logs[c.name] = r.out + r.err;
    fs.writeFileSync(path.join(logDir, `${c.name}.log`), logs[c.name]);
  }
  return logs;
}

describe("docker-compose.yml on podman", { timeout: 60 * 60 * 1000 }, () => {
  before(async () => {
    await startService();
    await writeEnv();
  });

  after(async () => {
    for (const b of browsers) await b.close();
    if (!wentDown) await compose("down", "-v", "--remove-orphans", "--timeout", "20").catch(() => undefined);
    if (service && service.exitCode === null) {
      service.kill("SIGTERM");
      await Promise.race([service.exitedP, sleep(20000)]);
      if (service.exitCode === null) service.kill("SIGKILL");
    }
    console.log(`# logs: ${logDir}`);
  });

  it("comes up with `up -d`, two signal replicas, every health check passing", async () => {
    const up = compose("up", "-d", "--no-build");
    // docker-compose waits for service_healthy dependencies: run the checks meanwhile.
    await driveHealth(allHealthy({ redis: 1, signal: 2, roomapi: 1, web: 1, coturn: 1 }), { promise: up });
    const r = await up;
    assert.equal(r.code, 0, `docker-compose up failed:\n${r.err}${r.out}`);
    const cs = await containers();
    assert.equal(cs.length, 6, cs.map((c) => c.name).join(", "));
    const health = await httpGet(`${url}/health`);
    assert.equal(health.status, 200, "nginx answers /health through to the room API");
    const index = await httpGet(`${url}/`);
    assert.equal(index.status, 200);
    assert.match(index.body, /<html/i);
  });

  it("moves files and a folder between two Chromium pages through the stack's nginx, SHA-256 verified", async () => {
    const log = path.join(logDir, "transfer.test.log");
    const r = await run("node", ["--test", "--test-concurrency=1", path.join(REPO_ROOT, "tests/e2e/transfer.test.mjs")],
      { env: { PD_E2E_URLS: `${url},${url}` }, timeout: 20 * 60 * 1000 });
    fs.writeFileSync(log, r.out + r.err);
    assert.equal(r.code, 0, `tests/e2e/transfer.test.mjs against ${url} failed (${log}):\n${(r.out + r.err).slice(-4000)}`);
    const passed = /# pass (\d+)/.exec(r.out);
    assert.ok(passed && Number(passed[1]) >= 8, `the transfer test ran its cases (${passed?.[1]} passed)`);
  });

  it("scales to four signal replicas, and nginx spreads connections over all of them", async () => {
    const up = compose("up", "-d", "--no-build", "--scale", "signal=4");
    await driveHealth(allHealthy({ signal: 4 }), { promise: up });
    assert.equal((await up).code, 0);
    // nginx resolves the service name when it starts (docker-compose.yml's header).
    const rs = await compose("restart", "web");
    assert.equal(rs.code, 0, rs.err);
    await driveHealth(allHealthy({ redis: 1, signal: 4, roomapi: 1, web: 1, coturn: 1 }));
    // Round robin: a dozen connections, and at least one nginx worker process
    // (worker_processes auto) takes four or more of them in turn.
    const clients = [];
    try {
      for (let i = 0; i < 12; i++) {
        const c = io(url, { transports: ["websocket"], reconnection: false, timeout: 20000 });
        clients.push(c);
        await new Promise((resolve, reject) => { c.once("connect", resolve); c.once("connect_error", reject); });
      }
      const counts = await Promise.all((await signalReplicas()).map((c) => wsConnections(c.id)));
      assert.equal(counts.length, 4);
      assert.equal(counts.reduce((a, b) => a + b, 0), 12, `connections per replica: ${counts}`);
      assert.ok(counts.every((n) => n >= 1), `every replica holds connections: ${counts}`);
    } finally {
      for (const c of clients) c.close();
    }
  });

  it("keeps a live room through the restart of one signal replica: peers re-join and signal again", async () => {
    const replicas = await signalReplicas();
    // The scale step's sockets are gone, so a connection now is the sender's.
    const deadline = Date.now() + 60000;
    while ((await Promise.all(replicas.map((c) => wsConnections(c.id)))).some((n) => n !== 0)) {
      assert.ok(Date.now() < deadline, "connections of the previous step closed");
      await sleep(500);
    }
    const data = crypto.randomBytes(300 * 1024 + 7);
    const file = path.join(work, "after-restart.bin");
    fs.writeFileSync(file, data);

    const sender = await openBrowser("compose-sender", logDir);
    browsers.push(sender);
    await sender.page.goto(`${url}/`);
    await sender.page.waitForFunction(() => /^[A-Za-z0-9_-]+$/.test(document.querySelector('[data-testid="room-id"]')?.textContent ?? ""), null, { timeout: 30000 });
    const roomId = (await sender.page.getByTestId("room-id").textContent()).trim();
    await sender.page.getByTestId("file-input").setInputFiles([file]);
    // Every state the signaling badge shows from now on.
    await sender.page.evaluate(() => {
      const el = document.querySelector("#signal-status");
      const seen = (window.__pdStates = [el.getAttribute("data-state")]);
      // Every change, even several within one batch of records.
      new MutationObserver((records) => {
        for (const r of records.slice(1)) seen.push(r.oldValue);
        seen.push(el.getAttribute("data-state"));
      }).observe(el, { attributes: true, attributeFilter: ["data-state"], attributeOldValue: true });
    });
    await sender.page.waitForFunction(() => document.querySelector("#signal-status")?.getAttribute("data-state") === "joined", null, { timeout: 30000 });

    let holder = null;
    for (const c of replicas) if ((await wsConnections(c.id)) > 0) holder = c;
    assert.ok(holder, "one signal replica holds the sender's WebSocket");

    const openReceiver = async (name) => {
      const b = await openBrowser(name, logDir);
      browsers.push(b);
      await b.page.goto(`${url}/?room=${encodeURIComponent(roomId)}`);
      await b.page.locator('[data-testid="offered-item"]').first().waitFor({ timeout: 60000 });
      return b;
    };
    await openReceiver("compose-receiver-before");

    // As an orchestrator restarts one replica: SIGTERM (the worker drains), then start.
    restarted = { id: holder.id, name: holder.name, ip: await containerIp(holder.id) };
    await podman("restart", "--time", "20", holder.id);
    await driveHealth(allHealthy({ signal: replicas.length }));
    // Podman (like Docker) may give the restarted container a new address,
    // while nginx resolved "signal" when it started: a reload (SIGHUP, the
    // open WebSockets stay) makes it resolve the name again.
    restarted.newIp = await containerIp(holder.id);
    const web = (await containers()).find((c) => c.service === "web");
    await podman("kill", "--signal", "HUP", web.id);

    // The sender lost its worker, reconnected through nginx and joined again.
    await sender.page.waitForFunction(() => {
      const s = window.__pdStates;
      const joined = s.indexOf("joined");
      const lost = s.findIndex((x, i) => i > joined && x !== "joined");
      return joined >= 0 && lost > joined && s.at(-1) === "joined";
    }, null, { timeout: 90000 });

    // A receiver arriving now needs fresh signaling with the sender.
    const late = await openReceiver("compose-receiver-after");
    const item = late.page.locator('[data-testid="offered-item"]').filter({ has: late.page.locator(".name", { hasText: "after-restart.bin" }) });
    const [dl] = await Promise.all([late.page.waitForEvent("download", { timeout: 120000 }), item.locator('[data-testid="download-button"]').click()]);
    assert.equal(await sha256File(await dl.path()), sha256(data), "SHA-256 of the file sent after the restart");

    // After the reload, new connections reach the restarted replica again.
    const clients = [];
    try {
      for (let i = 0; i < 12; i++) {
        const c = io(url, { transports: ["websocket"], reconnection: false, timeout: 20000 });
        clients.push(c);
        await new Promise((resolve, reject) => { c.once("connect", resolve); c.once("connect_error", reject); });
      }
      assert.ok((await wsConnections(holder.id)) >= 1, "the restarted replica serves new connections");
    } finally {
      for (const c of clients) c.close();
    }
  });

  it("leaves no error line in any container's log", async () => {
    const logs = await containerLogs();
    const bad = [];
    for (const [name, text] of Object.entries(logs)) {
      for (const line of text.split("\n")) {
        if (!line.trim()) continue;
        let error;
        if (line.startsWith("{")) error = /"level":"error"/.test(line); // our services' JSON lines
        else if (/\[(warn|notice|info|debug)\]/.test(line)) error = false; // nginx below error
        else error = /\[(error|crit|alert|emerg)\]|\b(error|fatal|failed|failure|panic)\b|AddressSanitizer|Segmentation fault/i.test(line);
        if (!error) continue;
        // The host's kernel setting, not the stack's: Redis asks for vm.overcommit_memory=1.
        if (/WARNING Memory overcommit must be enabled/.test(line)) continue;
        // While the restarted replica was down, nginx found its old address
        // refusing (or gone) and passed the connection to the next replica.
        if (restarted && /_web_\d+$/.test(name) && line.includes(`upstream: "http://${restarted.ip}:3001/`) &&
            /\[error\] .* (connect\(\) failed \((111|113): [^)]*\)|upstream timed out \(110: [^)]*\)) while connecting to upstream/.test(line)) continue;
        // coturn calls a client that drops its TCP connection (Chromium closing a
        // peer connection's TURN/TCP candidate) an ERROR; it is the client's doing.
        if (/_coturn_\d+$/.test(name) && /: ERROR: session \d+: TCP socket error: Connection reset by peer/.test(line)) continue;
        bad.push(`${name}: ${line}`);
      }
    }
    assert.deepEqual(bad, [], `error lines (logs in ${logDir})`);
  });

  it("runs Redis as PID 1: `stop` ends it on SIGTERM after it saved its snapshot", async () => {
    const redis = (await containers()).find((c) => c.service === "redis");
    assert.equal((await podman("exec", redis.id, "cat", "/proc/1/comm")).trim(), "redis-server");
    const r = await compose("stop", "--timeout", "60", "redis");
    assert.equal(r.code, 0, r.err);
    // 0: it exited on its own; a SIGKILL after the grace period gives 137.
    const exit = (await podman("inspect", "--format", "{{.State.ExitCode}}", redis.id)).trim();
    assert.equal(exit, "0", "redis-server exited by itself on SIGTERM");
    const logs = (await run("podman", ["logs", redis.id])).out + (await run("podman", ["logs", redis.id])).err;
    assert.match(logs, /Received SIGTERM scheduling shutdown/);
    assert.match(logs, /DB saved on disk/);
  });

  it("`down` leaves no container, pod, network or volume of the project", async () => {
    const r = await compose("down", "-v", "--remove-orphans", "--timeout", "20");
    wentDown = true;
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(await containers(), []);
    const pods = JSON.parse((await podman("pod", "ps", "--format", "json")) || "[]").map((p) => p.Name).filter((n) => n.includes(project));
    assert.deepEqual(pods, []);
    const nets = (await podman("network", "ls", "--format", "{{.Name}}")).split("\n").filter((n) => n.startsWith(project));
    assert.deepEqual(nets, []);
    const vols = (await podman("volume", "ls", "--format", "{{.Name}}")).split("\n").filter((n) => n.startsWith(project));
    assert.deepEqual(vols, []);
  });
});
