#!/usr/bin/env node
// soak.mjs — a short soak against a real cluster (redis-server, 2 signal
// workers, room API): thousands of connects, joins, signals and disconnects
// over raw WebSockets, with redis-server stopped and started again (for
// real) in the middle. Then it checks that the cluster is back where it
// started:
//   - no socket:<sid> of a closed socket, every room that had members is
//     empty with the 900 s TTL, rooms never joined keep at most 24 h,
//     ratelimit:join:* at most 5 s, pd:rejoin:* at most 30 s, no key
//     outside the schema;
//   - pd:conns counts back to 0, no socket left in a worker's set, the
//     workers' connection gauges at 0;
//   - worker RSS (VmRSS) back near its level after warm-up;
//   - every process exits cleanly (and, with the sanitizer build, without a
//     report: LeakSanitizer runs at exit).
// Environment: SOAK_SESSIONS (default 5000; each is 2 connects, 2 joins,
// 3 signals, 2 disconnects), SOAK_LANES (parallel sessions, default 24),
// SOAK_RSS_SLACK_KB (default 6144), PD_BIN_DIR (binaries).
import assert from "node:assert/strict";
import fs from "node:fs";

import { httpGet, startCluster } from "../lib/cluster.mjs";
import { RawWs, eventually, postJson, roomsOpen, sleep, uniqueIp, uniqueRoomId } from "../integration/helpers.mjs";

const SESSIONS = Number(process.env.SOAK_SESSIONS || 5000);
const LANES = Number(process.env.SOAK_LANES || 24);
const RSS_SLACK_KB = Number(process.env.SOAK_RSS_SLACK_KB || 6144);
const WARMUP = Math.max(20, Math.floor(SESSIONS / 10));
// Sanitizer builds keep freed memory in quarantine, so RSS says nothing there;
// LeakSanitizer (at exit, checked by cluster.stop()) is the leak check instead.
const SANITIZED = /asan/.test(process.env.PD_BIN_DIR || "");

const log = (...a) => console.log("soak:", ...a);

function vmRssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}

async function gauge(url, name) {
  const r = await httpGet(`${url}/metrics`);
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(r.body);
  return m ? Number(m[1]) : NaN;
}

/** Next text frame (skipping pings) that starts with prefix. */
async function next(ws, prefix, timeout = 5000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    let t;
    try {
      t = await ws.nextText({ timeout: Math.max(1, deadline - Date.now()), skipPings: true });
    } catch (e) {
      throw new Error(`waiting for ${prefix}: ${e.message}`);
    }
    if (t.startsWith(prefix)) return t;
  }
}

async function open(port, ip) {
  const ws = await RawWs.connect(port, undefined, { "X-Forwarded-For": ip });
  await next(ws, "0");
  ws.send("40");
  ws.sid = JSON.parse((await next(ws, "40")).slice(2)).sid;
  return ws;
}

const stats = { sessions: 0, ok: 0, failed: 0, connects: 0, joins: 0, signals: 0, errors: new Map() };
const sids = new Set();
const joinedRooms = new Set();
const createdRooms = new Set();
let outage = false;
let outageEnd = 0; // when the workers were ready again after the restart

function noteError(e) {
  const k = (e?.message || String(e)).replace(/[A-Za-z0-9_-]{20,28}/g, "<id>").slice(0, 80);
  stats.errors.set(k, (stats.errors.get(k) || 0) + 1);
}

async function session(c, i) {
  const api = c.roomApi.url;
  const roomId = uniqueRoomId("soak");
  const cr = await postJson(api, "/api/create_room", { roomId }, { headers: { "x-forwarded-for": uniqueIp() } });
  if (cr.status !== 200) throw new Error(`create_room ${cr.status}`);
  createdRooms.add(roomId);
  const a = await open(c.workers[i % 2].port, uniqueIp());
  const b = await open(c.workers[(i + 1) % 2].port, uniqueIp());
  stats.connects += 2;
  sids.add(a.sid);
  sids.add(b.sid);
  try {
    a.send(`42["join",{"roomId":"${roomId}"}]`);
    const ja = JSON.parse((await next(a, '42["joinResponse"')).slice(2))[1];
    if (!ja.success) throw new Error(`join: ${ja.message}`);
    joinedRooms.add(roomId);
    b.send(`42["join",{"roomId":"${roomId}"}]`);
    const jb = JSON.parse((await next(b, '42["joinResponse"')).slice(2))[1];
    if (!jb.success) throw new Error(`join: ${jb.message}`);
    stats.joins += 2;
    await next(a, '42["ready"');
    a.send(`42["offer",{"peerId":"${b.sid}","offer":{"type":"offer","sdp":"v=0 ${i}"}}]`);
    await next(b, '42["offer"');
    b.send(`42["answer",{"peerId":"${a.sid}","answer":{"type":"answer","sdp":"v=0 ${i}"}}]`);
    await next(a, '42["answer"');
    a.send(`42["ice-candidate",{"peerId":"${b.sid}","candidate":{"candidate":"c ${i}","sdpMid":"0"}}]`);
    await next(b, '42["ice-candidate"');
    stats.signals += 3;
    // Leave in different ways: Socket.IO disconnect, WebSocket close, TCP reset.
    if (i % 3 === 0) {
      a.send("41");
      b.send("41");
    } else if (i % 3 === 1) {
      a.sock.write(Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]));
      b.sock.write(Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]));
    }
    await sleep(5);
  } finally {
    a.close();
    b.close();
  }
}

/** Run sessions numbered from..to-1 on LANES lanes; a session that fails during
 * the Redis outage is retried under a new number after a short pause. */
async function runSessions(c, from, to, onProgress) {
  let nextIdx = from;
  let extra = 0;
  const lane = async () => {
    for (;;) {
      const i = nextIdx++;
      if (i >= to + extra) return;
      stats.sessions++;
      const started = Date.now();
      try {
        await session(c, i);
        stats.ok++;
      } catch (e) {
        stats.failed++;
        // A session that overlapped the outage may fail (and is replaced); any other may not.
        if (!outage && started > outageEnd) noteError(e);
        else {
          extra++;
          await sleep(100);
        }
      }
      onProgress?.(i);
    }
  };
  await Promise.all(Array.from({ length: LANES }, lane));
}

async function settle(c) {
  await eventually("every worker has 0 sockets", async () => {
    for (const w of c.workers) if ((await gauge(w.url, "privydrop_signal_connections")) !== 0) return false;
    return true;
  }, { timeout: 20000 });
}

async function main() {
  const t0 = Date.now();
  log(`${SESSIONS} sessions (${WARMUP} warm-up), ${LANES} lanes, binaries ${process.env.PD_BIN_DIR || "build/bin"}`);
  const c = await startCluster({ workers: 2, roomApiEnv: { PD_API_RATE: "100000", PD_API_BURST: "100000" } });
  let failed = false;
  try {
    // Warm-up: allocator pools, maps, hiredis buffers reach their working size.
    await runSessions(c, 0, WARMUP);
    await settle(c);
    await sleep(500);
    const base = c.workers.map((w) => vmRssKb(w.pid));
    log(`after warm-up: RSS ${base.map((k) => `${k} kB`).join(", ")}`);

    const half = WARMUP + Math.floor((SESSIONS - WARMUP) / 2);
    let restarted = null;
    await runSessions(c, WARMUP, SESSIONS, (i) => {
      if (i === half && !restarted) {
        restarted = (async () => {
          log(`session ${i}: stopping redis-server`);
          outage = true;
          await c.stopRedis();
          await sleep(1500);
          await c.startRedis();
          log("redis-server started again (empty)");
          for (const w of c.workers) {
            await eventually(`${w.url}/readyz`, async () => (await httpGet(`${w.url}/readyz`)).status === 200, { timeout: 20000 });
          }
          // Up, and past the hold of its room routes after Redis came back.
          await roomsOpen(c.roomApi.url);
          outage = false;
          outageEnd = Date.now();
          log("workers ready again");
        })();
      }
    });
    await restarted;
    // A few sessions after everything is back, so the end state covers the recovered cluster.
    await runSessions(c, SESSIONS, SESSIONS + LANES);
    await settle(c);

    // ---- checks ------------------------------------------------------------------
    const problems = [];
    const cli = (...a) => c.redisCli(...a);
    await eventually("pd:conns back to 0", async () => {
      const h = (await cli("HGETALL", "pd:conns")).split("\n").filter(Boolean);
      for (let i = 1; i < h.length; i += 2) if (Number(h[i]) !== 0) return false;
      return true;
    }, { timeout: 15000 }).catch((e) => problems.push(e.message));
    const keys = (await cli("--scan")).split("\n").filter(Boolean);
    const counts = {};
    for (const k of keys) {
      const kind = k.replace(/:[^:]+(:sockets|:hb)?$/, ":*$1").replace(/^pd:worker:\*.*/, (m) => m);
      counts[kind] = (counts[kind] || 0) + 1;
    }
    log(`keys left: ${JSON.stringify(counts)}`);
    // A key with an expiry contract: at most `limit` left (-2: expired since the scan, which is fine).
    const expiresWithin = async (k, cmd, limit) => {
      const ttl = Number(await cli(cmd, k));
      if (ttl !== -2 && !(ttl >= 0 && ttl <= limit)) problems.push(`${k}: ${cmd} ${ttl}, contract ≤ ${limit}`);
    };
    for (const k of keys) {
      let m;
      if ((m = /^socket:(.+)$/.exec(k))) {
        problems.push(`${k} left for a closed socket${sids.has(m[1]) ? "" : " (not ours)"}`);
      } else if ((m = /^room:([^:]+):sockets$/.exec(k))) {
        problems.push(`${k} still has ${await cli("SCARD", k)} member(s)`);
      } else if ((m = /^room:([^:]+)$/.exec(k))) {
        await expiresWithin(k, "TTL", joinedRooms.has(m[1]) ? 900 : 86400);
      } else if (/^ratelimit:join:/.test(k)) {
        await expiresWithin(k, "TTL", 5);
      } else if (/^pd:rejoin:/.test(k)) {
        // Re-join credits of a drain (none expected here: no worker drains).
        await expiresWithin(k, "TTL", 30);
      } else if ((m = /^pd:worker:(.+):sockets$/.exec(k))) {
        problems.push(`${k} still lists ${await cli("SCARD", k)} socket(s)`);
      } else if ((m = /^pd:worker:(.+):hb$/.exec(k))) {
        if (!c.workers.some((w) => w.id === m[1])) problems.push(`${k}: heartbeat of an unknown worker`);
        const ttl = Number(await cli("PTTL", k));
        if (!(ttl > 0 && ttl <= 15000)) problems.push(`${k}: PTTL ${ttl}`);
      } else if (/^pd:peer:[A-Za-z0-9]{8}$/.test(k)) {
        // A worker's link address (docs/architecture.md §Direct links between workers).
        await expiresWithin(k, "PTTL", 15000);
      } else if (!["pd:workers", "pd:conns", "pd:reaper:lock"].includes(k)) {
        problems.push(`unexpected key ${k}`);
      }
    }
    const members = (await cli("SMEMBERS", "pd:workers")).split("\n").filter(Boolean).sort();
    if (JSON.stringify(members) !== JSON.stringify(c.workers.map((w) => w.id).sort())) {
      problems.push(`pd:workers = ${members}`);
    }
    // RSS: back near the warm-up level (the allocator keeps some of what it had).
    await sleep(500);
    const end = c.workers.map((w) => vmRssKb(w.pid));
    c.workers.forEach((w, i) => {
      const grew = end[i] - base[i];
      log(`worker ${i + 1}: RSS ${base[i]} kB after warm-up → ${end[i]} kB at the end (${grew >= 0 ? "+" : ""}${grew} kB, `
        + `${SANITIZED ? "not checked: sanitizer build, LeakSanitizer checks at exit" : `allowed +${RSS_SLACK_KB} kB`})`);
      if (grew > RSS_SLACK_KB && !SANITIZED) problems.push(`worker ${i + 1} RSS grew by ${grew} kB`);
    });
    const unexpected = [...stats.errors.entries()];
    log(`sessions ${stats.sessions}: ok ${stats.ok}, failed ${stats.failed}; connects ${stats.connects}, joins ${stats.joins}, signals ${stats.signals}`);
    if (unexpected.length) log(`failures outside the Redis outage: ${JSON.stringify(unexpected)}`);
    // Outside the outage a session must not fail.
    if (unexpected.length) problems.push(`${unexpected.reduce((n, [, v]) => n + v, 0)} session(s) failed while Redis was up`);
    if (stats.ok < SESSIONS) problems.push(`only ${stats.ok} of ${SESSIONS} sessions completed`);
    if (problems.length) {
      failed = true;
      console.error(`soak: FAILED\n  - ${problems.join("\n  - ")}`);
    }
  } catch (e) {
    failed = true;
    console.error(`soak: FAILED: ${e.stack || e.message}`);
  } finally {
    try {
      await c.stop();
    } catch (e) {
      failed = true;
      console.error(`soak: FAILED at stop: ${e.message}`);
    }
  }
  log(`${failed ? "FAILED" : "passed"} in ${Math.round((Date.now() - t0) / 1000)} s`);
  process.exit(failed ? 1 : 0);
}

main();
