#!/usr/bin/env node
// The web client's throughput against a bare RTCDataChannel, in Chromium and
// in Firefox ESR (tests/e2e/webbench.mjs says what each figure times). For
// each browser: one sending page behind signal worker 1, one receiving page
// behind worker 2 of a real local cluster (redis-server, two signal workers,
// the room API, an nginx front per worker), the same file for every round;
// per round, after an untimed bare transfer of --warmup-mib on the freshly
// loaded receiving page, our client moves it once and a bare channel between
// the same two pages moves as many bytes, in turn first. Prints the medians
// and ours/bare per browser (the median of the rounds' ratios; target: at
// least 0.9) and writes them
// to bench/results/web.json. In Chromium it also reports each page's
// main-thread time per MiB (CDP Performance metrics) for ours and for bare:
// where our client spends what the bare channel does not. On Linux it prints
// each core's busy time and the hypervisor's steal over each browser's
// rounds: the load a run cannot see in its own figures. Asserts no speed.
//
//   node bench/web.mjs [--size-mib 64] [--rounds 5] [--warmup-mib 16] [--browsers chromium,firefox]
//   make bench-web      (builds first; also run by make bench)

import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { openBrowser, openFirefox, pageSide, shareFrom, startE2ECluster } from "../tests/e2e/harness.mjs";
import { benchPair } from "../tests/e2e/webbench.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
if (args.includes("-h") || args.includes("--help")) {
  console.log(fs.readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1, 16).join("\n"));
  process.exit(0);
}
const sizeMiB = Number(opt("size-mib", "64"));
const rounds = Number(opt("rounds", "5")); // odd: the median is one round's ratio
const warmupMiB = Number(opt("warmup-mib", "16"));
const browsers = opt("browsers", "chromium,firefox").split(",");
if (!(sizeMiB > 0 && sizeMiB <= 1024) || !(rounds >= 1 && rounds <= 20) || !(warmupMiB >= 0 && warmupMiB <= 256) ||
    !browsers.every((b) => ["chromium", "firefox"].includes(b))) {
  console.error("bench-web: --size-mib 1..1024, --rounds 1..20, --warmup-mib 0..256, --browsers chromium,firefox");
  process.exit(2);
}
const bytes = sizeMiB * 1024 * 1024;
const name = `bench-${sizeMiB}MiB.bin`;
const outDir = process.env.PD_BENCH_OUT || path.join(here, "results");

const work = fs.mkdtempSync(path.join(os.tmpdir(), "pd-bench-web-"));
const logDir = path.join(work, "logs");
fs.mkdirSync(logDir);
const file = path.join(work, name);
fs.writeFileSync(file, crypto.randomBytes(bytes));

// Each core's busy and stolen time so far, in seconds (Linux /proc/stat;
// null elsewhere). On a virtual machine the hypervisor's steal is the other
// load a run cannot see in its own figures (docs/benchmarks.md).
function coreTimes() {
  let text;
  try {
    text = fs.readFileSync("/proc/stat", "utf8");
  } catch {
    return null;
  }
  const hz = 100; // USER_HZ, 100 on every Linux port the bench runs on
  return text.split("\n").filter((l) => /^cpu\d+ /.test(l)).map((l) => {
    const [user, nice, system, , , irq, softirq, steal] = l.trim().split(/\s+/).slice(1, 9).map(Number);
    return { busy: (user + nice + system + irq + softirq) / hz, steal: (steal || 0) / hz };
  });
}
const coreDelta = (a, b) => (a && b && a.length === b.length
  ? b.map((x, i) => ({ busy: x.busy - a[i].busy, steal: x.steal - a[i].steal })) : null);

const results = {};
let env;
try {
  env = await startE2ECluster({ keepLogsIn: logDir });
  for (const kind of browsers) {
    let close;
    let send;
    let recv;
    if (kind === "chromium") {
      const b = await openBrowser("bench-chromium", logDir);
      close = () => b.close();
      send = pageSide("chromium", b.page);
      recv = pageSide("chromium", await b.ctx.newPage());
    } else {
      const b = await openFirefox("bench-firefox", logDir);
      close = () => b.close();
      send = pageSide("firefox", await b.newPage("bench-firefox-sender"), { downloadDir: b.downloadDir });
      recv = pageSide("firefox", await b.newPage("bench-firefox-receiver"), { downloadDir: b.downloadDir });
    }
    try {
      const roomId = await shareFrom(send, env.fronts[0].url, { files: [file] });
      const before = coreTimes();
      const t0 = performance.now();
      results[kind] = await benchPair({
        send, recv, recvUrl: env.fronts[1].url, roomId, name, bytes, rounds, profile: true,
        warmupBytes: warmupMiB * 1024 * 1024,
        log: (line) => console.log(`bench-web ${kind}: ${line}`),
      });
      results[kind].seconds = (performance.now() - t0) / 1000;
      results[kind].cores = coreDelta(before, coreTimes());
    } finally {
      await close();
    }
  }
} finally {
  await env?.stop().catch((e) => console.error(`bench-web: stopping the cluster: ${e}`));
  fs.rmSync(file, { force: true });
}

const [load1] = os.loadavg();
console.log(`\nweb client vs bare RTCDataChannel, ${sizeMiB} MiB, ${rounds} round(s) after ${warmupMiB} MiB of warm-up each, load average ${load1.toFixed(1)} on ${os.cpus().length} cores`);
console.log("| browser | ours, median (MB/s) | bare, median (MB/s) | ours/bare, median of rounds | ours/bare per round |");
console.log("|---|---:|---:|---:|---|");
for (const [kind, r] of Object.entries(results)) {
  console.log(`| ${kind} | ${r.oursMBps.toFixed(1)} | ${r.bareMBps.toFixed(1)} | ${r.ratio.toFixed(2)} | ${r.ratios.map((x) => x.toFixed(2)).join(", ")} |`);
}
for (const [kind, r] of Object.entries(results)) {
  if (!r.cores) continue;
  const f = (k) => r.cores.map((c, i) => `cpu${i} ${c[k].toFixed(1)} s`).join(", ");
  console.log(`${kind}: the rounds took ${r.seconds.toFixed(1)} s; cores busy ${f("busy")}; stolen by the hypervisor ${f("steal")}`);
}
for (const [kind, r] of Object.entries(results)) {
  const c = r.mainThreadMsPerMiB;
  if (!c) continue;
  console.log(`\n${kind}, main-thread time per MiB (ms, median of rounds; CDP TaskDuration, script part in brackets):`);
  console.log("| | sending page | receiving page |");
  console.log("|---|---:|---:|");
  for (const w of ["ours", "bare"]) {
    console.log(`| ${w} | ${c[w].sendTask.toFixed(1)} (${c[w].sendScript.toFixed(1)}) | ${c[w].recvTask.toFixed(1)} (${c[w].recvScript.toFixed(1)}) |`);
  }
}
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, "web.json"), JSON.stringify({
  date: new Date().toISOString(), sizeMiB, rounds, loadAverage1: load1, cores: os.cpus().length, results,
}, null, 2));
console.log(`written: ${path.join(outDir, "web.json")}; browser and server logs: ${logDir}`);
