// wire.mjs — raw wire tools for the hostile-input and fault tests: hand-made
// WebSocket frames (any header bits, declared lengths that lie), frame
// waiting on a RawWs, raw HTTP exchanges, Prometheus metric reading and a
// "well-behaved pair" that proves a worker still serves everyone else.

import assert from "node:assert/strict";
import crypto from "node:crypto";
import net from "node:net";

import { httpGet } from "../lib/cluster.mjs";
import { EVENT_TIMEOUT_MS, RawWs, closeAll, connect, createRoom, join, sleep, uniqueIp, waitFor } from "./helpers.mjs";

/**
 * One WebSocket frame with full control over the header.
 *   fin, rsv (3 bits), opcode, mask (bool), payload (Buffer|string),
 *   declaredLen: the length written in the header (defaults to the payload's).
 */
export function wsFrame({ fin = true, rsv = 0, opcode = 1, mask = true, payload = Buffer.alloc(0), declaredLen } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, "utf8");
  const len = declaredLen ?? BigInt(data.length);
  const big = BigInt(len);
  let head;
  const b0 = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  const m = mask ? 0x80 : 0;
  if (big < 126n) {
    head = Buffer.from([b0, m | Number(big)]);
  } else if (big < 65536n) {
    head = Buffer.alloc(4);
    head[0] = b0;
    head[1] = m | 126;
    head.writeUInt16BE(Number(big), 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = m | 127;
    head.writeBigUInt64BE(big, 2);
  }
  if (!mask) return Buffer.concat([head, data]);
  const key = crypto.randomBytes(4);
  const masked = Buffer.from(data);
  for (let i = 0; i < masked.length; i++) masked[i] ^= key[i & 3];
  return Buffer.concat([head, key, masked]);
}

/** Write raw bytes on a RawWs. */
export function writeRaw(ws, ...bufs) {
  if (!ws.sock.destroyed) ws.sock.write(Buffer.concat(bufs));
}

/** Close payload: 2-byte code + reason. */
export function closePayload(code, reason = Buffer.alloc(0)) {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code, 0);
  return Buffer.concat([b, Buffer.isBuffer(reason) ? reason : Buffer.from(reason)]);
}

/** Wait for (and remove) the first frame matching pred; rejects on timeout or close. */
export function nextFrame(ws, pred, { timeout = EVENT_TIMEOUT_MS } = {}) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const i = ws.frames.findIndex(pred);
      if (i >= 0) {
        const [f] = ws.frames.splice(i, 1);
        done();
        resolve(f);
        return true;
      }
      if (ws.closed) {
        done();
        reject(new Error(`connection closed before the frame arrived (frames: ${describeFrames(ws.frames)})`));
        return true;
      }
      return false;
    };
    const t = setTimeout(() => {
      done();
      reject(new Error(`no matching frame within ${timeout} ms (frames: ${describeFrames(ws.frames)})`));
    }, timeout);
    const done = () => {
      clearTimeout(t);
      ws.waiters = ws.waiters.filter((w) => w !== check);
    };
    if (!check()) ws.waiters.push(check);
  });
}

function describeFrames(frames) {
  return JSON.stringify(frames.slice(-8).map((f) => [f.opcode, f.data.toString("utf8").slice(0, 60)]));
}

/**
 * Wait until the server closed the connection; returns {code, reason} from
 * its close frame ({code: null} when the TCP connection ended without one),
 * or throws if the connection is still open after `timeout`.
 */
export async function closeOf(ws, timeout = EVENT_TIMEOUT_MS) {
  const closed = await Promise.race([ws.closedPromise.then(() => true), sleep(timeout).then(() => false)]);
  if (!closed && !ws.closeFrame) throw new Error(`server did not close the connection within ${timeout} ms`);
  if (!ws.closeFrame) return { code: null, reason: "" };
  const d = ws.closeFrame.data;
  return { code: d.length >= 2 ? d.readUInt16BE(0) : null, reason: d.subarray(2).toString("utf8") };
}

/** Assert that the server closed with `code`. */
export async function expectClose(ws, code, what, timeout = EVENT_TIMEOUT_MS) {
  const c = await closeOf(ws, timeout);
  assert.equal(c.code, code, `${what}: close code ${c.code} (${c.reason}), expected ${code}`);
  // The TCP connection is gone too, not only the WebSocket.
  assert.ok(await Promise.race([ws.closedPromise.then(() => true), sleep(timeout).then(() => false)]),
    `${what}: TCP connection still open after the close frame`);
  return c;
}

/**
 * Answer the server's pings ("2" → "3") on a raw connection until
 * ws.stopPongs(), taking them out of ws.frames: a test that must set up
 * within a short ping interval then need not be fast.
 */
function answerPings(ws) {
  const answer = () => {
    for (let i = 0; i < ws.frames.length; i++) {
      const f = ws.frames[i];
      if (f.opcode === 1 && f.data.length === 1 && f.data[0] === 0x32 /* "2" */) {
        ws.frames.splice(i--, 1);
        if (!ws.closed) ws.send("3");
      }
    }
    return false; // stay among the waiters
  };
  // First in line, so no other waiter sees a ping before it is answered.
  ws.waiters.unshift(answer);
  answer();
  ws.stopPongs = () => {
    ws.waiters = ws.waiters.filter((w) => w !== answer);
  };
}

/**
 * Raw WebSocket with its own client address; reads the open packet; `sio`
 * also sends 40; `pongs` answers pings until ws.stopPongs().
 */
export async function rawSession(port, { ip = uniqueIp(), sio = true, headers = {}, pongs = false } = {}) {
  const ws = await RawWs.connect(port, undefined, { "X-Forwarded-For": ip, ...headers });
  ws.ip = ip;
  if (pongs) answerPings(ws);
  const open = await ws.nextText();
  assert.equal(open[0], "0", `open packet first: ${open}`);
  ws.open = JSON.parse(open.slice(1));
  if (sio) {
    ws.send("40");
    const c = await ws.nextText();
    assert.match(c, /^40\{"sid":"[A-Za-z0-9]{8}[A-Za-z0-9_-]{20}"\}$/);
    ws.sid = JSON.parse(c.slice(2)).sid;
  }
  return ws;
}

/** Next text frame that starts with `prefix` (skipping pings and anything else). */
export async function nextTextStarting(ws, prefix, timeout = EVENT_TIMEOUT_MS) {
  const f = await nextFrame(ws, (x) => x.opcode === 1 && x.data.toString("utf8").startsWith(prefix), { timeout });
  return f.data.toString("utf8");
}

/** Join over a raw session; resolves the joinResponse payload. */
export async function rawJoin(ws, roomId) {
  ws.send(`42["join",{"roomId":"${roomId}"}]`);
  const t = await nextTextStarting(ws, '42["joinResponse"');
  return JSON.parse(t.slice(2))[1];
}

/**
 * A raw HTTP exchange: write `bytes` (string or Buffer, or an array written
 * with `gapMs` between the pieces), collect what comes back until the server
 * ends the connection or `timeout` passes.
 * Resolves {text, status, headers, ended, ms, sent} (sent: pieces written).
 */
export function rawHttp(port, bytes, { timeout = 3000, gapMs = 0, stopAt101 = true } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const s = net.connect({ host: "127.0.0.1", port });
    const chunks = [];
    let ended = false;
    let timer;
    let done = false;
    let sent = 0; // pieces written before the answer ended the exchange
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const text = Buffer.concat(chunks).toString("latin1");
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      const headEnd = text.indexOf("\r\n\r\n");
      const headers = {};
      if (headEnd > 0) {
        for (const l of text.slice(0, headEnd).split("\r\n").slice(1)) {
          const i = l.indexOf(":");
          headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
      }
      resolve({ text, status: m ? Number(m[1]) : null, headers, body: headEnd > 0 ? text.slice(headEnd + 4) : "", ended, ms: Date.now() - t0, sent });
    };
    s.on("data", (d) => {
      chunks.push(d);
      // A 101 keeps the connection for WebSocket frames: its head is the answer.
      if (stopAt101) {
        const t = Buffer.concat(chunks).toString("latin1");
        if (t.startsWith("HTTP/1.1 101") && t.includes("\r\n\r\n")) finish();
      }
    });
    s.on("end", () => {
      ended = true;
      finish();
    });
    s.on("close", () => {
      ended = true;
      finish();
    });
    s.on("error", (e) => {
      if (e.code === "ECONNRESET" || e.code === "EPIPE") {
        ended = true;
        finish();
      } else reject(e);
    });
    s.on("connect", async () => {
      const pieces = Array.isArray(bytes) ? bytes : [bytes];
      for (const p of pieces) {
        if (s.destroyed || done) break;
        s.write(p);
        sent++;
        if (gapMs) await sleep(gapMs);
      }
    });
    timer = setTimeout(finish, timeout);
  });
}

/** Prometheus text → Map of 'name{labels}' (or 'name') → number. */
export async function metrics(url) {
  const r = await httpGet(`${url}/metrics`);
  assert.equal(r.status, 200);
  const m = new Map();
  for (const line of r.body.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

export const metricValue = (m, key) => m.get(key) ?? 0;

/**
 * Two well-behaved socket.io clients of one worker, joined to one room.
 * check() proves the worker still relays for them.
 */
export async function wellBehavedPair(workerUrl, apiUrl) {
  const roomId = await createRoom(apiUrl);
  const a = await connect(workerUrl);
  const b = await connect(workerUrl);
  assert.equal((await join(a, roomId)).success, true);
  assert.equal((await join(b, roomId)).success, true);
  let n = 0;
  return {
    a,
    b,
    roomId,
    async check(what = "") {
      assert.ok(a.connected && b.connected, `well-behaved clients still connected ${what}`);
      const tag = `ok-${++n}-${Date.now()}`;
      a.emit("offer", { peerId: b.id, offer: { type: "offer", sdp: tag } });
      const got = await waitFor(b, "offer", { pred: (o) => o.offer?.sdp === tag });
      assert.equal(got.from, a.id);
    },
    close() {
      closeAll(a, b);
    },
  };
}
