// The Helm chart started for real, as far as this machine allows (no cluster,
// no images): for the default values and every k8s/examples/*.yaml,
//   1. helm template renders the chart; every number in the rendered objects is
//      an integer, and no string holds a number in float or exponent form
//      ("1.048576e+06" once made the signal worker refuse to start);
//   2. each workload container's command, args and environment are taken as
//      rendered: env/envFrom resolved from the rendered ConfigMaps and Secrets
//      (a Secret the chart does not render, e.g. secrets.existingSecret or a
//      TLS Secret, is filled with test values), fieldRefs from a made-up pod,
//      Service host names mapped to 127.0.0.1, volume mounts to temp dirs;
//   3. our binaries get `--check-config` with that environment first: exit 0;
//   4. each container is started (Redis first: the bundled StatefulSet's own
//      command, else a real redis-server with the rendered password) until its
//      rendered readinessProbe passes (httpGet path/port, tcpSocket or exec);
//   5. the bundled Redis's process is redis-server itself (exec form: it would
//      be PID 1), stops on SIGTERM alone and saves on the way out; every other
//      container stops on SIGTERM too.
// Each value set runs in its own network namespace (chart-run.sh), as a pod
// would, so the rendered ports are used as they are.
//
// Containers run through a runner: HostRunner maps an image to what this tree
// builds (build/bin, deploy/...); a container runtime could take its place
// with the same start/stop/probe interface once images exist.
//
// Usage: node chart-run.mjs VALUE_SET_FILE|defaults   (run by chart-run.sh)
// Environment: PD_BIN_DIR (build/bin), PD_HELM (helm binary).
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import http from "node:http";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
const top = path.resolve(here, "../..");
const chart = path.join(top, "k8s/charts/privydrop");
const binDir = process.env.PD_BIN_DIR || path.join(top, "build/bin");
const helm = process.env.PD_HELM || path.join(here, "node_modules/.bin/helm");
const NAMESPACE = "privydrop";
const RELEASE = "privydrop";
// Hang guards only: a container normally becomes ready in well under a second.
const READY_LIMIT_MS = 60000;
const STOP_LIMIT_MS = 30000;

let passed = 0;
let failed = 0;
function ok(msg) { console.log(`ok - ${msg}`); passed++; }
function notOk(msg, detail) {
  console.log(`not ok - ${msg}`);
  if (detail) console.log(String(detail).replace(/^/gm, "    "));
  failed++;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- rendering -------------------------------------------------------------------

function render(valueSet) {
  const args = ["template", RELEASE, chart, "--namespace", NAMESPACE];
  if (valueSet !== "defaults") args.push("-f", valueSet);
  const text = execFileSync(helm, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  return YAML.parseAllDocuments(text).map((d) => d.toJS()).filter((o) => o && o.kind);
}

// Every number an integer; no string that is a number in float form.
function numberProblems(objs) {
  const bad = [];
  const walk = (v, where) => {
    if (typeof v === "number" && !Number.isInteger(v)) bad.push(`${where}: ${v}`);
    else if (typeof v === "string" && /^[-+]?(\d+\.\d*|\.\d+|\d+)[eE][-+]?\d+$|^[-+]?\d+\.\d+$/.test(v)) {
      bad.push(`${where}: "${v}"`);
    } else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${where}[${i}]`));
    else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, `${where}.${k}`);
  };
  for (const o of objs) walk(o, `${o.kind}/${o.metadata?.name}`);
  return bad;
}

// ---- what a pod would see ------------------------------------------------------------

class Objects {
  constructor(objs) {
    this.objs = objs;
    this.configMaps = new Map();
    this.secrets = new Map();
    this.services = [];
    for (const o of objs) {
      if (o.kind === "ConfigMap") this.configMaps.set(o.metadata.name, o.data || {});
      if (o.kind === "Secret") {
        const data = {};
        for (const [k, v] of Object.entries(o.data || {})) data[k] = Buffer.from(v, "base64").toString("utf8");
        Object.assign(data, o.stringData || {});
        this.secrets.set(o.metadata.name, data);
      }
      if (o.kind === "Service") this.services.push(o.metadata.name);
    }
    // An external Redis (redis.mode=external) is stood in for on 127.0.0.1 too.
    this.hosts = [...this.services];
    for (const d of this.configMaps.values()) if (d.REDIS_HOST && !this.hosts.includes(d.REDIS_HOST)) this.hosts.push(d.REDIS_HOST);
    // So are external sentinels (redis.mode=sentinel).
    for (const d of this.configMaps.values()) {
      for (const h of sentinelList(d.REDIS_SENTINELS)) if (!this.hosts.includes(h.host)) this.hosts.push(h.host);
    }
    this.filled = new Set();
  }

  // A Secret the chart leaves to the operator gets a test value per key.
  secretValue(name, key) {
    if (!this.secrets.has(name)) this.secrets.set(name, {});
    const s = this.secrets.get(name);
    if (!(key in s)) {
      s[key] = `test-${key}-${crypto.randomBytes(12).toString("hex")}`;
      this.filled.add(`${name}/${key}`);
    }
    return s[key];
  }

  // Service names (short, namespaced, cluster-qualified) and the external
  // Redis host become 127.0.0.1, inside lists and host:port pairs too.
  mapHosts(value) {
    let v = value;
    for (const s of this.hosts) {
      const re = new RegExp(`(^|[,/@\\s])${s.replace(/[.]/g, "\\.")}(\\.${NAMESPACE}(\\.svc(\\.cluster\\.local)?)?)?(?=$|[:,/\\s])`, "g");
      v = v.replace(re, "$1127.0.0.1");
    }
    return v;
  }
}

function podFieldRef(pod, fieldPath) {
  const known = {
    "metadata.name": pod.name,
    "metadata.namespace": NAMESPACE,
    "status.podIP": "127.0.0.1",
    "status.hostIP": "127.0.0.1",
    "spec.nodeName": os.hostname(),
    "spec.serviceAccountName": "default",
  };
  if (!(fieldPath in known)) throw new Error(`fieldRef ${fieldPath} is not known to this test`);
  return known[fieldPath];
}

// The environment as Kubernetes builds it: envFrom, then env in order, with
// $(VAR) references to earlier variables expanded.
function containerEnv(objs, pod, c) {
  const env = {};
  for (const f of c.envFrom || []) {
    const prefix = f.prefix || "";
    if (f.configMapRef) {
      const cm = objs.configMaps.get(f.configMapRef.name);
      if (!cm) throw new Error(`envFrom ConfigMap ${f.configMapRef.name} is not rendered`);
      for (const [k, v] of Object.entries(cm)) env[prefix + k] = String(v);
    }
    if (f.secretRef) {
      const s = objs.secrets.get(f.secretRef.name);
      if (!s) throw new Error(`envFrom Secret ${f.secretRef.name} is not rendered`);
      for (const [k, v] of Object.entries(s)) env[prefix + k] = v;
    }
  }
  for (const e of c.env || []) {
    if ("value" in e) env[e.name] = expand(String(e.value ?? ""), env);
    else if (e.valueFrom?.configMapKeyRef) {
      const r = e.valueFrom.configMapKeyRef;
      const cm = objs.configMaps.get(r.name);
      if (!cm || !(r.key in cm)) {
        if (r.optional) continue;
        throw new Error(`${e.name}: ConfigMap ${r.name} key ${r.key} is not rendered`);
      }
      env[e.name] = String(cm[r.key]);
    } else if (e.valueFrom?.secretKeyRef) {
      env[e.name] = objs.secretValue(e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key);
    } else if (e.valueFrom?.fieldRef) {
      env[e.name] = podFieldRef(pod, e.valueFrom.fieldRef.fieldPath);
    } else throw new Error(`${e.name}: unsupported env source ${JSON.stringify(e.valueFrom)}`);
  }
  for (const k of Object.keys(env)) env[k] = objs.mapHosts(env[k]);
  return env;
}

function expand(s, env) {
  return s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n) => (n in env ? env[n] : m)).replace(/\$\$/g, "$");
}

// ---- the host runner --------------------------------------------------------------------

// What each image of deploy/docker/*.Dockerfile runs, built from this tree:
// ENTRYPOINT (entry), the image's ENV (env), and image paths the host puts
// elsewhere (paths). Keyed by the last path element of the repository.
function hostImages(scratch) {
  const webEtc = path.join(scratch, "web-etc");
  const webRoot = path.join(scratch, "web-root");
  fs.mkdirSync(webEtc, { recursive: true });
  fs.mkdirSync(webRoot, { recursive: true });
  for (const f of ["deploy/nginx/privydrop.conf.template", "deploy/docker/web-static.conf.template",
    "deploy/docker/nginx.conf"]) fs.copyFileSync(path.join(top, f), path.join(webEtc, path.basename(f)));
  fs.writeFileSync(path.join(webRoot, "index.html"), "<!doctype html><title>chart-run</title>\n");
  return {
    signal: { entry: [path.join(binDir, "privydrop-signal")], env: { NODE_ENV: "production", PD_SIGNAL_PORT: "3001" }, checkConfig: true },
    roomapi: { entry: [path.join(binDir, "privydrop-roomapi")], env: { NODE_ENV: "production", PD_API_PORT: "3002" }, checkConfig: true },
    coturn: {
      entry: [path.join(top, "deploy/coturn/run-coturn.sh")],
      env: { PD_TURN_CONFIG: path.join(top, "deploy/coturn/turnserver.conf") },
      tmpEnv: { PD_TURN_RUN_DIR: "" },
    },
    web: {
      entry: ["/bin/sh", path.join(top, "deploy/docker/web-entrypoint.sh")],
      env: { PD_NGINX_ETC: webEtc, PD_WEB_ROOT: webRoot },
      tmpEnv: { NGINX_TMP: "nginx" },
    },
    // The official image's redis-server is Debian's here.
    redis: { entry: ["redis-server"], env: {} },
  };
}

class HostRunner {
  constructor(scratch) {
    this.scratch = scratch;
    this.images = hostImages(scratch);
    this.procs = [];
  }

  image(c) {
    const repo = c.image.split(":")[0].split("/").pop();
    const key = repo.replace(/^privydrop-/, "");
    const img = this.images[key];
    if (!img) throw new Error(`no host stand-in for image ${c.image}`);
    return img;
  }

  // Volume mounts → fresh directories; a Secret volume gets its Secret's keys
  // as files (a TLS Secret a self-signed pair).
  mounts(objs, podSpec, c) {
    const map = [];
    for (const m of c.volumeMounts || []) {
      const dir = fs.mkdtempSync(path.join(this.scratch, `${c.name}-${m.name}-`));
      fs.chmodSync(dir, 0o755); // nginx's workers (not root) write under /tmp
      const vol = (podSpec.volumes || []).find((v) => v.name === m.name) ||
        { name: m.name, emptyDir: {} }; // a volumeClaimTemplate: a directory will do
      if (vol.secret) {
        const keys = vol.secret.items?.map((i) => i.key) || Object.keys(objs.secrets.get(vol.secret.secretName) || {});
        if (keys.length === 0 || keys.includes("tls.crt")) selfSigned(dir);
        else for (const k of keys) fs.writeFileSync(path.join(dir, k), objs.secretValue(vol.secret.secretName, k));
      }
      map.push([m.mountPath, dir]);
    }
    return map;
  }

  // Kubernetes semantics: command replaces ENTRYPOINT, args replace CMD.
  argv(c, img, env) {
    const cmd = (c.command || img.entry).map((s) => expand(s, env));
    const args = (c.args || (c.command ? [] : img.cmd || [])).map((s) => expand(s, env));
    return [...cmd, ...args];
  }

  prepare(objs, pod, c) {
    const img = this.image(c);
    const mounts = this.mounts(objs, pod.spec, c);
    // One pass over all mount paths, longest first, so a mapped path is never
    // mapped again (/data → /tmp/x must not then meet the /tmp mount).
    const paths = mounts.map(([from]) => from).sort((a, b) => b.length - a.length);
    const esc = (x) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const re = paths.length ? new RegExp(`(^|[\\s=:"'])(${paths.map(esc).join("|")})(?=$|[/\\s"'])`, "g") : null;
    const remap = (s) => (re ? s.replace(re, (m, pre, from) => pre + mounts.find(([f]) => f === from)[1]) : s);
    const env = { PATH: process.env.PATH, HOME: this.scratch, ...img.env };
    const tmp = mounts.find(([from]) => from === "/tmp")?.[1] || fs.mkdtempSync(path.join(this.scratch, "tmp-"));
    for (const [k, sub] of Object.entries(img.tmpEnv || {})) env[k] = sub ? path.join(tmp, sub) : tmp;
    const rendered = containerEnv(objs, pod, c);
    for (const [k, v] of Object.entries(rendered)) env[k] = remap(v);
    const argv = this.argv(c, img, rendered).map(remap);
    return { img, env, argv, mounts, name: `${pod.name}/${c.name}` };
  }

  checkConfig(p) {
    return spawnSync(p.argv[0], ["--check-config"], { env: p.env, encoding: "utf8", timeout: 20000 });
  }

  start(p) {
    const log = path.join(this.scratch, `${p.name.replace(/\W+/g, "_")}.log`);
    const fd = fs.openSync(log, "a");
    const child = spawn(p.argv[0], p.argv.slice(1), { env: p.env, stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
    const proc = { ...p, child, log, exited: null };
    child.on("exit", (code, signal) => { proc.exited = { code, signal }; });
    this.procs.push(proc);
    return proc;
  }

  logTail(proc) {
    try { return fs.readFileSync(proc.log, "utf8").split("\n").slice(-15).join("\n"); } catch { return ""; }
  }

  // SIGTERM only; true if it exited by itself within the limit.
  async stop(proc) {
    if (proc.exited) return true;
    proc.child.kill("SIGTERM");
    for (let t = 0; t < STOP_LIMIT_MS && !proc.exited; t += 50) await sleep(50);
    if (proc.exited) return true;
    proc.child.kill("SIGKILL");
    for (let t = 0; t < 5000 && !proc.exited; t += 50) await sleep(50);
    return false;
  }

  // Every container still running, last started first; resolves to those
  // that SIGTERM alone did not stop.
  async stopAll() {
    const stubborn = [];
    for (const p of [...this.procs].reverse()) {
      if (p.exited) continue;
      if (!(await this.stop(p))) stubborn.push(p);
    }
    return stubborn;
  }
}

function selfSigned(dir) {
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=turn.test",
    "-keyout", path.join(dir, "tls.key"), "-out", path.join(dir, "tls.crt")], { stdio: "ignore" });
  fs.chmodSync(path.join(dir, "tls.key"), 0o644); // read by coturn as another user in the image
}

// ---- probes --------------------------------------------------------------------------------

function portOf(c, port) {
  if (typeof port === "number") return port;
  if (/^\d+$/.test(port)) return Number(port);
  const p = (c.ports || []).find((x) => x.name === port);
  if (!p) throw new Error(`probe port ${port} is not a port of ${c.name}`);
  return p.containerPort;
}

function httpStatus(port, pathname) {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: pathname, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
  });
}

function tcpOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.setTimeout(2000, () => { s.destroy(); resolve(false); });
    s.on("connect", () => { s.destroy(); resolve(true); });
    s.on("error", () => resolve(false));
  });
}

// One attempt of the rendered probe; resolves to a description or null.
async function probeOnce(c, probe, p) {
  if (probe.httpGet) {
    const port = portOf(c, probe.httpGet.port);
    const code = await httpStatus(port, probe.httpGet.path || "/");
    return code >= 200 && code < 400 ? `GET :${port}${probe.httpGet.path} → ${code}` : null;
  }
  if (probe.tcpSocket) {
    const port = portOf(c, probe.tcpSocket.port);
    return (await tcpOpen(port)) ? `TCP :${port} open` : null;
  }
  if (probe.exec) {
    const r = spawnSync(probe.exec.command[0], probe.exec.command.slice(1), { env: p.env, timeout: 5000 });
    return r.status === 0 ? `exec ${JSON.stringify(probe.exec.command)} → 0` : null;
  }
  throw new Error(`${c.name}: unsupported probe ${JSON.stringify(probe)}`);
}

async function waitReady(runner, proc, c) {
  const probe = c.readinessProbe;
  if (!probe) throw new Error(`${c.name} has no readinessProbe`);
  for (let t = 0; t < READY_LIMIT_MS; t += 100) {
    if (proc.exited) {
      return { error: `exited (${JSON.stringify(proc.exited)}) before ready: ${JSON.stringify(proc.argv)}\n${runner.logTail(proc)}` };
    }
    const got = await probeOnce(c, probe, proc);
    if (got) return { ok: got };
    await sleep(100);
  }
  return { error: `not ready within ${READY_LIMIT_MS / 1000} s:\n${runner.logTail(proc)}` };
}

// ---- one value set ---------------------------------------------------------------------------

const WORKLOADS = ["StatefulSet", "Deployment", "DaemonSet"];

async function runValueSet(valueSet) {
  const name = valueSet === "defaults" ? "defaults" : path.basename(valueSet, ".yaml");
  let rendered;
  try {
    rendered = render(valueSet);
    ok(`${name}: rendered ${rendered.length} objects`);
  } catch (e) {
    notOk(`${name}: helm template`, e.stderr || e.message);
    return;
  }
  const bad = numberProblems(rendered);
  if (bad.length === 0) ok(`${name}: every rendered number is an integer`);
  else notOk(`${name}: numbers not rendered as integers`, bad.join("\n"));

  const objs = new Objects(rendered);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), `pd-chart-${name}-`));
  fs.chmodSync(scratch, 0o755);
  const runner = new HostRunner(scratch);
  liveRunner = runner;
  try {
    // Redis first, then the rest in render order; one pod per workload.
    const workloads = rendered.filter((o) => WORKLOADS.includes(o.kind));
    workloads.sort((a, b) => (b.kind === "StatefulSet") - (a.kind === "StatefulSet"));
    const bundledRedis = workloads.find((w) => w.kind === "StatefulSet" &&
      w.spec.template.spec.containers.some((c) => c.name === "redis"));
    if (!bundledRedis) await ownRedis(objs, runner, name);
    for (const w of workloads) {
      const pod = { name: `${w.metadata.name}-0`, spec: w.spec.template.spec };
      for (const c of pod.spec.initContainers || []) {
        const p = runner.prepare(objs, pod, c);
        const r = spawnSync(p.argv[0], p.argv.slice(1), { env: p.env, encoding: "utf8", timeout: 60000 });
        if (r.status === 0) ok(`${name}: init container ${p.name} completed`);
        else notOk(`${name}: init container ${p.name} exited ${r.status}`, r.stderr);
      }
      for (const c of pod.spec.containers) await runContainer(objs, runner, name, pod, c);
    }
    if (objs.filled.size) ok(`${name}: Secrets left to the operator filled with test values: ${[...objs.filled].join(", ")}`);
  } catch (e) {
    notOk(`${name}: ${e.message}`);
  } finally {
    const running = runner.procs.filter((p) => !p.exited).map((p) => p.name);
    const stubborn = await runner.stopAll();
    if (stubborn.length === 0) ok(`${name}: SIGTERM alone stopped every container still running (${running.join(", ")})`);
    else notOk(`${name}: SIGTERM did not stop ${stubborn.map((p) => p.name).join(", ")} within ${STOP_LIMIT_MS / 1000} s`);
    if (process.env.PD_CHART_KEEP) console.log(`# kept ${scratch}`);
    else fs.rmSync(scratch, { recursive: true, force: true });
  }
}

async function runContainer(objs, runner, setName, pod, c) {
  const p = runner.prepare(objs, pod, c);
  const label = `${setName}: ${p.name}`;
  if (p.img.checkConfig) {
    const r = runner.checkConfig(p);
    if (r.status === 0) ok(`${label}: --check-config accepts the rendered environment`);
    else {
      notOk(`${label}: --check-config exited ${r.status}`, r.stderr);
      return;
    }
  }
  const proc = runner.start(p);
  const ready = await waitReady(runner, proc, c);
  if (ready.error) {
    notOk(`${label}: ${ready.error}`);
    return;
  }
  ok(`${label}: ready (${ready.ok})`);
  if (c.name === "redis") await checkRedis(runner, proc, label);
}

// The bundled Redis: the process the runtime starts must be redis-server
// itself (so it is PID 1 in the container), and SIGTERM alone must stop it
// after a save.
async function checkRedis(runner, proc, label) {
  const exe = fs.realpathSync(`/proc/${proc.child.pid}/exe`);
  const redis = fs.realpathSync(execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim());
  if (exe === redis) ok(`${label}: the started process is redis-server itself (exec form: PID 1 in its container)`);
  else notOk(`${label}: the started process is ${exe}, not redis-server: redis-server would not be PID 1`);
  const data = proc.mounts.find(([from]) => from === "/data")?.[1];
  const rdb = data && path.join(data, "dump.rdb");
  if (rdb) fs.rmSync(rdb, { force: true });
  // Something to save; the password is the one the chart's Secret holds.
  spawnSync("redis-cli", ["set", "chart-run", "1"], { env: { ...proc.env, REDISCLI_AUTH: proc.env.REDIS_PASSWORD } });
  const stopped = await runner.stop(proc);
  if (stopped && proc.exited.code === 0) ok(`${label}: SIGTERM alone stops it (exit 0)`);
  else notOk(`${label}: SIGTERM did not stop it (${JSON.stringify(proc.exited)})`, runner.logTail(proc));
  if (rdb && fs.existsSync(rdb)) ok(`${label}: it saved on the way out (dump.rdb in /data)`);
  else notOk(`${label}: no dump.rdb in /data after SIGTERM`, runner.logTail(proc));
  // The other containers need Redis: start it again as rendered.
  const again = runner.start({ ...proc, child: undefined });
  for (let t = 0; t < READY_LIMIT_MS; t += 100) {
    const r = spawnSync("redis-cli", ["ping"], { env: { ...proc.env, REDISCLI_AUTH: proc.env.REDIS_PASSWORD }, encoding: "utf8" });
    if (r.stdout.trim() === "PONG") return;
    if (again.exited) break;
    await sleep(100);
  }
  throw new Error(`redis did not come back after its restart:\n${runner.logTail(again)}`);
}

// REDIS_SENTINELS "host:port,..." → [{host, port}] (IPv6 in brackets).
function sentinelList(text) {
  if (!text) return [];
  return text.split(",").map((e) => {
    const m = /^\s*\[?([^\]]*?)\]?:(\d+)\s*$/.exec(e);
    return m ? { host: m[1], port: m[2] } : null;
  }).filter(Boolean);
}

async function waitRedisCli(proc, runner, what, args, password, want) {
  for (let t = 0; t < READY_LIMIT_MS; t += 100) {
    const r = spawnSync("redis-cli", args, { env: { PATH: process.env.PATH, ...(password ? { REDISCLI_AUTH: password } : {}) }, encoding: "utf8" });
    if (want(r.stdout || "")) return;
    if (proc.exited) break;
    await sleep(100);
  }
  throw new Error(`${what} did not start:\n${runner.logTail(proc)}`);
}

// External Redis: a real redis-server on the rendered port with the rendered
// password, where the chart's REDIS_HOST would point. With redis.mode=sentinel,
// a master on 6379 and one real sentinel (redis-server --sentinel) on the first
// rendered sentinel's port, monitoring it under the rendered master name, with
// the Secret's sentinel password when the workloads are given one; every
// rendered sentinel host maps to it.
async function ownRedis(objs, runner, setName) {
  const scm = [...objs.configMaps.values()].find((d) => "REDIS_SENTINELS" in d);
  if (scm) return ownSentinel(objs, runner, setName, scm);
  const cm = [...objs.configMaps.values()].find((d) => "REDIS_PORT" in d) || {};
  const port = String(cm.REDIS_PORT || "6379");
  const password = objs.secretValue(redisSecretName(objs) || `${RELEASE}-secrets`, "redis-password");
  const dir = fs.mkdtempSync(path.join(runner.scratch, "redis-"));
  const conf = path.join(dir, "redis.conf");
  fs.writeFileSync(conf, `requirepass ${password}\n`, { mode: 0o600 });
  const proc = runner.start({
    name: "external-redis", argv: ["redis-server", conf, "--port", port, "--bind", "127.0.0.1", "--save", "", "--dir", dir],
    env: { PATH: process.env.PATH }, mounts: [], img: {},
  });
  for (let t = 0; t < READY_LIMIT_MS; t += 100) {
    const r = spawnSync("redis-cli", ["-p", port, "ping"], { env: { PATH: process.env.PATH, REDISCLI_AUTH: password }, encoding: "utf8" });
    if (r.stdout?.trim() === "PONG") {
      ok(`${setName}: external Redis stand-in: a real redis-server on :${port} with the Secret's password`);
      return;
    }
    if (proc.exited) break;
    await sleep(100);
  }
  throw new Error(`external Redis stand-in did not start:\n${runner.logTail(proc)}`);
}

async function ownSentinel(objs, runner, setName, cm) {
  const password = objs.secretValue(redisSecretName(objs) || `${RELEASE}-secrets`, "redis-password");
  const usesSentinelAuth = objs.objs.some((o) => WORKLOADS.includes(o.kind) &&
    o.spec.template.spec.containers.some((c) => (c.env || []).some((e) => e.name === "REDIS_SENTINEL_PASSWORD")));
  const sentinelPassword = usesSentinelAuth
    ? objs.secretValue(redisSecretName(objs) || `${RELEASE}-secrets`, "redis-sentinel-password") : null;
  const dir = fs.mkdtempSync(path.join(runner.scratch, "redis-"));
  const conf = path.join(dir, "redis.conf");
  fs.writeFileSync(conf, `requirepass ${password}\n`, { mode: 0o600 });
  const master = runner.start({
    name: "external-redis-master", argv: ["redis-server", conf, "--port", "6379", "--bind", "127.0.0.1", "--save", "", "--dir", dir],
    env: { PATH: process.env.PATH }, mounts: [], img: {},
  });
  await waitRedisCli(master, runner, "external Redis master stand-in", ["-p", "6379", "ping"], password, (o) => o.trim() === "PONG");
  const [first] = sentinelList(cm.REDIS_SENTINELS);
  const name = cm.REDIS_SENTINEL_MASTER;
  const sconf = path.join(dir, "sentinel.conf");
  fs.writeFileSync(sconf, [
    `port ${first.port}`, "bind 127.0.0.1", `dir ${dir}`,
    `sentinel monitor ${name} 127.0.0.1 6379 1`, `sentinel auth-pass ${name} ${password}`,
    ...(sentinelPassword ? [`requirepass ${sentinelPassword}`] : []), "",
  ].join("\n"), { mode: 0o600 });
  const sentinel = runner.start({
    name: "external-sentinel", argv: ["redis-server", sconf, "--sentinel"],
    env: { PATH: process.env.PATH }, mounts: [], img: {},
  });
  await waitRedisCli(sentinel, runner, "external sentinel stand-in",
    ["-p", first.port, "SENTINEL", "get-master-addr-by-name", name], sentinelPassword,
    (o) => o.split("\n")[1]?.trim() === "6379");
  ok(`${setName}: external Sentinel stand-in: a master on :6379 and a sentinel on :${first.port} naming it "${name}"`
    + (sentinelPassword ? ", both with the Secret's passwords" : ""));
}

// The Secret the workloads read redis-password from.
function redisSecretName(objs) {
  for (const o of objs.objs) {
    if (!WORKLOADS.includes(o.kind)) continue;
    for (const c of o.spec.template.spec.containers) {
      const e = (c.env || []).find((x) => x.name === "REDIS_PASSWORD" && x.valueFrom?.secretKeyRef);
      if (e) return e.valueFrom.secretKeyRef.name;
    }
  }
  return null;
}

// ---- main --------------------------------------------------------------------------------------

// However this process ends, what it started ends too (chart-run.sh also
// runs it as the init of its own PID namespace).
let liveRunner = null;
process.on("exit", () => {
  for (const p of liveRunner?.procs || []) if (!p.exited) try { p.child.kill("SIGKILL"); } catch { /* gone */ }
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => process.exit(1));

const valueSet = process.argv[2];
assert.ok(valueSet, "usage: chart-run.mjs VALUES_FILE|defaults");
await runValueSet(valueSet);
console.log(`chart-run ${valueSet === "defaults" ? "defaults" : path.basename(valueSet)}: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
