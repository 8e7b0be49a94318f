// cluster.mjs — start a real local privydrop-c cluster for tests.
//
//   import { startCluster } from "../lib/cluster.mjs";
//   const c = await startCluster({ workers: 2 });   // redis + 2 signal workers + room API
//   c.workers[0].port, c.workers[1].url, c.roomApi.url, c.redisPort
//   await c.stopRedis(); await c.startRedis();       // fault tests, same port
//   c.pauseRedis(); c.resumeRedis();                 // SIGSTOP / SIGCONT redis-server
//   await c.killWorker(0);                           // SIGKILL on purpose (not a problem at stop())
//   await c.stop();                                  // throws on a bad exit or a sanitizer report
//
// Only node builtins. Binaries come from PD_BIN_DIR (default <repo>/build/bin).
// Every process gets its own stdout/stderr files under the cluster's temp dir
// (kept on failure, removed after a clean stop unless PD_KEEP_LOGS=1).

import { spawn } from "node:child_process";
import { execFile } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export const SANITIZER_PATTERNS = [
  "ERROR: AddressSanitizer",
  "runtime error:",
  "ERROR: LeakSanitizer",
  "WARNING: ThreadSanitizer",
];

export function binDir() {
  const d = process.env.PD_BIN_DIR || path.join(REPO_ROOT, "build/bin");
  return path.resolve(REPO_ROOT, d);
}

export function binPath(name) {
  return path.join(binDir(), name);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Sanitizer builds start and stop more slowly.
const SLOW = /asan/.test(binDir()) || process.env.PD_SLOW === "1";
const READY_TIMEOUT_MS = Number(process.env.PD_READY_TIMEOUT_MS || (SLOW ? 40000 : 15000));
const STOP_TIMEOUT_MS = Number(process.env.PD_STOP_TIMEOUT_MS || (SLOW ? 30000 : 15000));

/** A free TCP port on 127.0.0.1, found by binding port 0. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** One plain HTTP GET with a fresh connection; resolves {status, headers, body} or rejects. */
export function httpGet(url, { timeout = 3000, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { connection: "close", ...headers } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }),
      );
      res.on("error", reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`timeout GET ${url}`)));
    req.on("error", reject);
  });
}

function redisPing(port, timeout = 1000) {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    let buf = "";
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeout, () => done(false));
    s.on("connect", () => s.write("PING\r\n"));
    s.on("data", (d) => {
      buf += d.toString();
      if (buf.includes("\r\n")) done(buf.startsWith("+PONG"));
    });
    s.on("error", () => done(false));
  });
}

/** Run redis-cli against a port; resolves trimmed stdout. */
export function redisCli(port, ...args) {
  return new Promise((resolve, reject) => {
    execFile("redis-cli", ["-h", "127.0.0.1", "-p", String(port), "--no-raw", ...args.map(String)],
      { timeout: 10000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`redis-cli ${args.join(" ")}: ${err.message} ${stderr}`));
        else resolve(stdout.trim());
      });
  });
}

/** Same as redisCli but with --raw output (plain values, no quotes / "(integer)"). */
export function redisCliRaw(port, ...args) {
  return new Promise((resolve, reject) => {
    execFile("redis-cli", ["-h", "127.0.0.1", "-p", String(port), "--raw", ...args.map(String)],
      { timeout: 10000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`redis-cli ${args.join(" ")}: ${err.message} ${stderr}`));
        else resolve(stdout.replace(/\n$/, ""));
      });
  });
}

function tail(file, n = 40) {
  try {
    const lines = fs.readFileSync(file, "utf8").split("\n");
    return lines.slice(-n).join("\n");
  } catch {
    return "(no output)";
  }
}

/** Return the lines around the first sanitizer report in `file`, or null. */
export function sanitizerReport(file) {
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return null;
  }
  for (const p of SANITIZER_PATTERNS) {
    const i = text.indexOf(p);
    if (i >= 0) return text.slice(Math.max(0, i - 200), i + 4000);
  }
  return null;
}

/** A child process with captured output and an exit promise. */
export class Proc {
  constructor(name, cmd, args, { env, cwd, logDir, expectCodes = [0] }) {
    this.name = name;
    this.cmd = cmd;
    this.args = args;
    this.stdoutPath = path.join(logDir, `${name}.stdout.log`);
    this.stderrPath = path.join(logDir, `${name}.stderr.log`);
    this.expectCodes = expectCodes;
    this.stopping = false;
    const out = fs.openSync(this.stdoutPath, "a");
    const err = fs.openSync(this.stderrPath, "a");
    this.child = spawn(cmd, args, { env, cwd, stdio: ["ignore", out, err] });
    fs.closeSync(out);
    fs.closeSync(err);
    this.pid = this.child.pid;
    this.exit = null; // {code, signal} once exited
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      this.child.on("error", (e) => {
        this.exit = { code: null, signal: null, error: e };
        resolve(this.exit);
      });
    });
  }

  get running() {
    return this.exit === null;
  }

  describeExit() {
    if (!this.exit) return "running";
    if (this.exit.error) return `failed to start: ${this.exit.error.message}`;
    return this.exit.signal ? `killed by ${this.exit.signal}` : `exit code ${this.exit.code}`;
  }

  /** Problems with this process as a list of strings (empty = fine). */
  problems() {
    const p = [];
    const expected = (this.exit?.signal === null && this.expectCodes.includes(this.exit.code))
      || (this.expectSignal && this.exit?.signal === this.expectSignal);
    if (this.exit && !expected) {
      p.push(`${this.name} (pid ${this.pid}): ${this.describeExit()}${this.stopping ? " after SIGTERM" : " unexpectedly"}`
        + `\n--- ${this.stderrPath} (tail) ---\n${tail(this.stderrPath)}`);
    }
    const rep = sanitizerReport(this.stderrPath);
    if (rep) p.push(`${this.name} (pid ${this.pid}): sanitizer report in ${this.stderrPath}:\n${rep}`);
    return p;
  }

  /** SIGTERM, wait up to `timeout`, then SIGKILL. Returns a problem string or null for the timeout. */
  async terminate(signal = "SIGTERM", timeout = STOP_TIMEOUT_MS) {
    if (!this.running) return null;
    this.stopping = true;
    try {
      this.child.kill(signal);
    } catch {
      /* already gone */
    }
    const t = await Promise.race([this.exited.then(() => "exited"), sleep(timeout).then(() => "timeout")]);
    if (t === "timeout") {
      this.child.kill("SIGKILL");
      await this.exited;
      return `${this.name} (pid ${this.pid}) did not exit within ${timeout} ms of ${signal}; killed`;
    }
    return null;
  }
}

/** Poll `check()` until it returns true; fail fast if `proc` exits. */
export async function waitReady(proc, what, check, timeout = READY_TIMEOUT_MS) {
  const deadline = Date.now() + timeout;
  let last = "";
  while (Date.now() < deadline) {
    if (proc && !proc.running) {
      throw new Error(`${proc.name} exited before it was ready (${proc.describeExit()})\n`
        + `--- ${proc.stderrPath} (tail) ---\n${tail(proc.stderrPath)}`);
    }
    try {
      if (await check()) return;
    } catch (e) {
      last = e.message;
    }
    await sleep(50);
  }
  throw new Error(`${what} not ready within ${timeout} ms ${last ? `(last error: ${last})` : ""}`
    + (proc ? `\n--- ${proc.stderrPath} (tail) ---\n${tail(proc.stderrPath)}` : ""));
}

function baseEnv(extra) {
  const env = { ...process.env };
  // Do not let the caller's shell configure our processes by accident.
  for (const k of Object.keys(env)) {
    if (/^(PD_|REDIS_|CORS_ORIGIN$|NODE_ENV$|BACKEND_PORT$|DISABLE_JOIN_RATE_LIMIT$)/.test(k)
        && !/^PD_(BIN_DIR|KEEP_LOGS|SLOW|READY_TIMEOUT_MS|STOP_TIMEOUT_MS)$/.test(k)) delete env[k];
  }
  if (!env.ASAN_OPTIONS) env.ASAN_OPTIONS = "detect_leaks=1:abort_on_error=0:halt_on_error=1";
  if (!env.UBSAN_OPTIONS) env.UBSAN_OPTIONS = "print_stacktrace=1:halt_on_error=1";
  return { ...env, ...extra };
}

/** Replace ${NAME} placeholders; an unknown placeholder is an error. */
export function renderTemplate(text, vars) {
  return text.replace(/\$\{([A-Z0-9_]+)\}/g, (m, k) => {
    if (!(k in vars)) throw new Error(`template placeholder ${m} has no value`);
    return String(vars[k]);
  });
}

/** "a:1,b:2" → "a:1;\n    server b:2" so one `server ${X};` line becomes several. */
export function upstreamServers(list) {
  return list.join(";\n    server ");
}

export class Cluster {
  constructor(opts) {
    this.opts = opts;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-cluster-"));
    fs.chmodSync(this.dir, 0o755); // nginx workers may run as another user
    this.logDir = path.join(this.dir, "logs");
    fs.mkdirSync(this.logDir);
    this.redisDir = path.join(this.dir, "redis");
    fs.mkdirSync(this.redisDir);
    this.procs = []; // every Proc ever started (for the final checks)
    this.workers = [];
    this.roomApi = null;
    this.nginx = null;
    this.redis = null;
    this.redisPort = 0;
    this.problems = [];
    this.redisGen = 0;
  }

  _track(p) {
    this.procs.push(p);
    return p;
  }

  async startRedis() {
    if (this.redis && this.redis.running) throw new Error("redis already running");
    if (!this.redisPort) this.redisPort = await freePort();
    const gen = this.redisGen++;
    const p = this._track(new Proc(`redis${gen ? "-" + gen : ""}`, "redis-server", [
      "--port", String(this.redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--dir", this.redisDir, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
    ], { env: baseEnv({}), cwd: this.redisDir, logDir: this.logDir }));
    this.redis = p;
    await waitReady(p, `redis-server on ${this.redisPort}`, () => redisPing(this.redisPort));
  }

  async stopRedis() {
    if (!this.redis) return;
    this.resumeRedis();
    const prob = await this.redis.terminate("SIGTERM");
    if (prob) this.problems.push(prob);
  }

  /** Start signal worker number `i` (0-based) on `port`; env overrides in `extraEnv`. */
  async startWorker(i, port, extraEnv = {}, { waitForReady = true } = {}) {
    const id = extraEnv.PD_WORKER_ID || `w${i + 1}-${process.pid}`;
    const env = baseEnv({
      PD_SIGNAL_PORT: String(port),
      PD_LISTEN_ADDR: "127.0.0.1",
      PD_WORKER_ID: id,
      REDIS_HOST: "127.0.0.1",
      REDIS_PORT: String(this.redisPort),
      NODE_ENV: "test",
      PD_LOG_LEVEL: process.env.PD_TEST_LOG_LEVEL || "info",
      ...this.opts.env,
      ...this.opts.signalEnv,
      ...extraEnv,
    });
    const name = `signal-${i + 1}${this.workers[i] ? "-r" + this.procs.length : ""}`;
    const p = this._track(new Proc(name, binPath("privydrop-signal"), [], { env, cwd: this.dir, logDir: this.logDir }));
    const w = {
      index: i,
      id,
      port,
      url: `http://127.0.0.1:${port}`,
      proc: p,
      get pid() { return p.pid; },
      get stderrPath() { return p.stderrPath; },
    };
    this.workers[i] = w;
    if (waitForReady) await this.waitWorkerReady(w);
    return w;
  }

  async waitWorkerReady(w) {
    const url = `${w.url}/readyz`;
    if (!this.opts.sharedPort) {
      await waitReady(w.proc, `signal worker ${w.index + 1} (${url})`, async () => (await httpGet(url)).status === 200);
      return;
    }
    // Shared port: connections are spread by the kernel, so only many
    // consecutive 200s on fresh connections say every listener is ready.
    let streak = 0;
    await waitReady(w.proc, `signal workers on shared port ${w.port}`, async () => {
      for (const x of this.workers) if (x && !x.proc.running) throw new Error(`${x.proc.name} exited`);
      streak = (await httpGet(url)).status === 200 ? streak + 1 : 0;
      return streak >= 24;
    });
  }

  async startRoomApi(extraEnv = {}) {
    const port = this.opts.roomApiPort || (await freePort());
    const env = baseEnv({
      PD_API_PORT: String(port),
      BACKEND_PORT: String(port),
      PD_LISTEN_ADDR: "127.0.0.1",
      REDIS_HOST: "127.0.0.1",
      REDIS_PORT: String(this.redisPort),
      NODE_ENV: "test",
      CORS_ORIGIN: this.opts.corsOrigin || "http://localhost:3000",
      PD_LOG_LEVEL: process.env.PD_TEST_LOG_LEVEL || "info",
      ...this.opts.env,
      ...this.opts.roomApiEnv,
      ...extraEnv,
    });
    const p = this._track(new Proc("roomapi", binPath("privydrop-roomapi"), [], { env, cwd: this.dir, logDir: this.logDir }));
    this.roomApi = { port, url: `http://127.0.0.1:${port}`, proc: p, get stderrPath() { return p.stderrPath; } };
    await waitReady(p, `room API (${this.roomApi.url}/health)`, async () => (await httpGet(`${this.roomApi.url}/health`)).status === 200);
    return this.roomApi;
  }

  async startNginx(nopts = {}) {
    const port = nopts.port || (await freePort());
    const runDir = path.join(this.dir, "nginx");
    fs.mkdirSync(runDir, { recursive: true });
    fs.chmodSync(runDir, 0o755);
    const webRoot = path.resolve(nopts.webRoot || path.join(REPO_ROOT, "services/web/dist"));
    const signalAddrs = this.opts.sharedPort
      ? [`127.0.0.1:${this.workers[0].port}`]
      : this.workers.map((w) => `127.0.0.1:${w.port}`);
    const serverConf = renderTemplate(
      fs.readFileSync(path.join(REPO_ROOT, "deploy/nginx/privydrop.conf.template"), "utf8"),
      {
        LISTEN: `127.0.0.1:${port}`,
        SERVER_NAME: "localhost",
        SIGNAL_UPSTREAM: upstreamServers(signalAddrs),
        ROOMAPI_UPSTREAM: `127.0.0.1:${this.roomApi.port}`,
        WEB_ROOT: webRoot,
      },
    );
    const serverConfPath = path.join(runDir, "privydrop.conf");
    fs.writeFileSync(serverConfPath, serverConf);
    const mainConf = renderTemplate(
      fs.readFileSync(path.join(REPO_ROOT, "deploy/local/nginx.conf.template"), "utf8"),
      {
        RUN_DIR: runDir,
        LOG_DIR: this.logDir,
        MIME_TYPES: nopts.mimeTypes || "/etc/nginx/mime.types",
        SERVER_CONF: serverConfPath,
      },
    );
    const confPath = path.join(runDir, "nginx.conf");
    fs.writeFileSync(confPath, mainConf);
    const nginxBin = process.env.PD_NGINX || "nginx";
    const p = this._track(new Proc("nginx", nginxBin, ["-p", runDir, "-e", path.join(this.logDir, "nginx.error.log"), "-c", confPath],
      { env: baseEnv({}), cwd: runDir, logDir: this.logDir }));
    this.nginx = { port, url: `http://127.0.0.1:${port}`, proc: p, confPath, serverConfPath };
    await waitReady(p, `nginx (${this.nginx.url}/health)`, async () => (await httpGet(`${this.nginx.url}/health`)).status === 200);
    return this.nginx;
  }

  /** Start another process (a replica, a sentinel, ...) whose exit and
   * sanitizer output stop() checks like the rest; returns its Proc. */
  startExtra(name, cmd, args, { cwd = this.dir } = {}) {
    return this._track(new Proc(name, cmd, args, { env: baseEnv({}), cwd, logDir: this.logDir }));
  }

  /** redis-cli against this cluster's Redis (output as redis-cli prints with --raw). */
  redisCli(...args) {
    return redisCliRaw(this.redisPort, ...args);
  }

  /** SIGTERM one worker and return its exit {code, signal}; problems are recorded for stop(). */
  async stopWorker(i, signal = "SIGTERM") {
    const w = this.workers[i];
    const prob = await w.proc.terminate(signal);
    if (prob) this.problems.push(prob);
    return w.proc.exit;
  }

  /** Send `signal` (default SIGKILL) to worker `i` on purpose and wait for it to die; not a problem at stop(). */
  async killWorker(i, signal = "SIGKILL") {
    const w = this.workers[i];
    if (!w.proc.running) return w.proc.exit;
    w.proc.expectSignal = signal;
    w.proc.child.kill(signal);
    await w.proc.exited;
    return w.proc.exit;
  }

  /** Freeze redis-server (SIGSTOP): its port still accepts, nothing answers. */
  pauseRedis() {
    if (!this.redis?.running) throw new Error("redis is not running");
    this.redis.child.kill("SIGSTOP");
    this.redisPaused = true;
  }

  /** Thaw a frozen redis-server (SIGCONT). */
  resumeRedis() {
    if (this.redisPaused && this.redis?.running) this.redis.child.kill("SIGCONT");
    this.redisPaused = false;
  }

  /** Stop everything (services first, then Redis) and throw if anything went wrong. */
  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    const services = this.procs.filter((p) => p !== this.redis && p.running);
    const probs = await Promise.all(services.map((p) => p.terminate("SIGTERM")));
    for (const p of probs) if (p) this.problems.push(p);
    if (this.redis) await this.stopRedis();
    for (const p of this.procs) this.problems.push(...p.problems());
    if (this.problems.length) {
      const msg = `cluster problems (logs kept in ${this.logDir}):\n\n${this.problems.join("\n\n")}`;
      throw new Error(msg);
    }
    if (process.env.PD_KEEP_LOGS !== "1") fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Exit problems so far, without stopping (e.g. a worker that crashed mid-test). */
  currentProblems() {
    return this.procs.flatMap((p) => (p.running ? (sanitizerReport(p.stderrPath) ? p.problems() : []) : p.problems()));
  }
}

/**
 * Start a cluster.
 * opts:
 *   workers      number of signal workers (default 2; 0 for none)
 *   sharedPort   all workers on one port (SO_REUSEPORT) instead of one port each
 *   roomApi      start the room API (default true)
 *   nginx        false, true or {webRoot, port}: nginx ingress in front of it all
 *   env          extra env for every PrivyDrop process
 *   signalEnv    extra env for signal workers; workerEnv: [env for worker 1, env for worker 2, ...]
 *   roomApiEnv   extra env for the room API; corsOrigin: CORS_ORIGIN (default http://localhost:3000)
 *   beforeServices  async (cluster) => …, run once Redis is up and before any
 *                service starts (more Redis processes, c.opts.env set from them)
 */
export async function startCluster(opts = {}) {
  const o = { workers: 2, sharedPort: false, roomApi: true, nginx: false, env: {}, signalEnv: {}, workerEnv: [], roomApiEnv: {}, ...opts };
  for (const b of ["privydrop-signal", "privydrop-roomapi"]) {
    if ((b === "privydrop-signal" && o.workers === 0) || (b === "privydrop-roomapi" && !o.roomApi)) continue;
    try {
      fs.accessSync(binPath(b), fs.constants.X_OK);
    } catch {
      throw new Error(`${binPath(b)} is missing or not executable: build it with make c (or set PD_BIN_DIR)`);
    }
  }
  const c = new Cluster(o);
  try {
    await c.startRedis();
    if (o.beforeServices) await o.beforeServices(c);
    const shared = o.sharedPort ? await freePort() : 0;
    for (let i = 0; i < o.workers; i++) {
      await c.startWorker(i, shared || (await freePort()), o.workerEnv[i] || {});
    }
    if (o.roomApi) await c.startRoomApi();
    if (o.nginx) await c.startNginx(o.nginx === true ? {} : o.nginx);
  } catch (e) {
    try {
      await c.stop();
    } catch (e2) {
      e.message += `\n(while cleaning up: ${e2.message})`;
    }
    throw e;
  }
  return c;
}
