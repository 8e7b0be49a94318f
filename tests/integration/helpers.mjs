// helpers.mjs — shared bits of the cross-service tests: socket.io clients with
// their own fake client IP, event waiting, HTTP JSON calls, polling, a tiny raw
// WebSocket client for Engine.IO wire checks.

import assert from "node:assert/strict";
import crypto from "node:crypto";
import http from "node:http";
import net from "node:net";
import { io } from "socket.io-client";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// How long "nothing arrives" is observed before we believe it.
export const QUIET_MS = Number(process.env.PD_QUIET_MS || 600);
// How long an expected event may take (sanitizer builds are slower).
export const EVENT_TIMEOUT_MS = Number(process.env.PD_EVENT_TIMEOUT_MS || 5000);

// Every client gets its own X-Forwarded-For address so that the per-IP join
// rate limit of one test never hits another. 198.18.0.0/15 is the range set
// aside for benchmarking; it only ever appears in a header here.
let ipCounter = crypto.randomInt(0, 20000);
export function uniqueIp() {
  ipCounter = (ipCounter + 1) % 130000;
  const n = ipCounter + 1;
  return `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

export function uniqueRoomId(prefix = "t") {
  return `${prefix}${crypto.randomBytes(6).toString("hex")}`; // ≥ 8 chars, [A-Za-z0-9_-]
}

/** Connect a socket.io client (WebSocket only) to `url`; resolves once connected. */
export async function connect(url, { ip = uniqueIp(), path = "/socket.io/", extraHeaders = {}, timeout = EVENT_TIMEOUT_MS,
  transports = ["websocket"], reconnection = false } = {}) {
  const headers = { ...extraHeaders };
  if (ip) headers["x-forwarded-for"] = ip;
  const socket = io(url, {
    path,
    transports,
    reconnection,
    forceNew: true,
    timeout,
    extraHeaders: headers,
  });
  socket.ip = ip;
  recordEvents(socket);
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      socket.close();
      reject(new Error(`socket.io connect to ${url} timed out`));
    }, timeout);
    socket.once("connect", () => {
      clearTimeout(t);
      resolve();
    });
    socket.once("connect_error", (e) => {
      clearTimeout(t);
      socket.close();
      reject(new Error(`socket.io connect to ${url} failed: ${e.message}`));
    });
  });
  assert.match(socket.id, /^[A-Za-z0-9]{8}[A-Za-z0-9_-]{20}$/, "socket id: the worker's 8-character tag, then 20 chars of base64url");
  return socket;
}

/** Keep every received event in socket.received (name → [payloads]) for later checks. */
function recordEvents(socket) {
  socket.received = new Map();
  socket.waiters = [];
  socket.onAny((name, ...args) => {
    const payload = args[0];
    if (!socket.received.has(name)) socket.received.set(name, []);
    socket.received.get(name).push(payload);
    for (const w of [...socket.waiters]) w(name, payload);
  });
}

/**
 * Wait for the next `name` event whose payload satisfies `pred` (default: any).
 * Events that arrived earlier and were not yet consumed count too.
 */
export function waitFor(socket, name, { pred = () => true, timeout = EVENT_TIMEOUT_MS } = {}) {
  socket.consumed ??= new Map(); // name → Set of indices already handed out
  if (!socket.consumed.has(name)) socket.consumed.set(name, new Set());
  const used = socket.consumed.get(name);
  const list = socket.received.get(name) || [];
  for (let i = 0; i < list.length; i++) {
    if (!used.has(i) && pred(list[i])) {
      used.add(i);
      return Promise.resolve(list[i]);
    }
  }
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      socket.waiters = socket.waiters.filter((w) => w !== waiter);
      const seen = [...socket.received.entries()].map(([k, v]) => `${k}×${v.length}`).join(", ") || "nothing";
      reject(new Error(`socket ${socket.id}: no '${name}' event within ${timeout} ms (received: ${seen})`));
    }, timeout);
    const waiter = (n, payload) => {
      if (n !== name || !pred(payload)) return;
      const idx = socket.received.get(name).length - 1;
      if (used.has(idx)) return;
      clearTimeout(t);
      socket.waiters = socket.waiters.filter((w) => w !== waiter);
      used.add(idx);
      resolve(payload);
    };
    socket.waiters.push(waiter);
  });
}

/** Assert that no `name` event (matching `pred`) arrives at any of `sockets` within `ms`. */
export async function expectNothing(sockets, name, { ms = QUIET_MS, pred = () => true } = {}) {
  const before = sockets.map((s) => (s.received.get(name) || []).length);
  await sleep(ms);
  sockets.forEach((s, i) => {
    const got = (s.received.get(name) || []).slice(before[i]).filter(pred);
    assert.equal(got.length, 0, `socket ${s.id} must not receive '${name}', got ${JSON.stringify(got)}`);
  });
}

/** Emit join and wait for the joinResponse. */
export async function join(socket, roomId, opts = {}) {
  const p = waitFor(socket, "joinResponse", opts);
  socket.emit("join", { roomId });
  return p;
}

export function closeAll(...sockets) {
  for (const s of sockets.flat()) if (s) s.close();
}

/** Wait until every socket's server side has seen it closed. */
export async function disconnect(socket) {
  socket.close();
}

/**
 * HTTP request with a JSON (or raw) body; resolves {status, headers, body, json}.
 * `body`: object → JSON; string/Buffer → sent as is.
 */
export function request(baseUrl, method, path, { body, headers = {}, timeout = 10000 } = {}) {
  const u = new URL(path, baseUrl);
  let data = null;
  const h = { ...headers };
  if (body !== undefined) {
    data = typeof body === "string" || Buffer.isBuffer(body) ? Buffer.from(body) : Buffer.from(JSON.stringify(body));
    if (!Object.keys(h).some((k) => k.toLowerCase() === "content-type")) h["content-type"] = "application/json";
    h["content-length"] = String(data.length);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(u, { method, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, body: text, json });
      });
      res.on("error", reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`timeout ${method} ${u}`)));
    req.on("error", reject);
    if (data) req.write(data);
    req.end();
  });
}

export const getJson = (base, path, opts) => request(base, "GET", path, opts);
export const postJson = (base, path, body, opts = {}) => request(base, "POST", path, { ...opts, body });

/** Create a room through the room API and check it was created. */
export async function createRoom(apiUrl, roomId = uniqueRoomId()) {
  const r = await postJson(apiUrl, "/api/create_room", { roomId });
  assert.equal(r.status, 200, `create_room ${roomId}: ${r.status} ${r.body}`);
  assert.deepEqual(r.json, { success: true, message: "create room success" });
  return roomId;
}

/** Wait until the room API's Redis link is up and its room routes are no
 * longer held after Redis came back (PD_RESTORE_HOLD_MS; /health/detailed
 * says "rooms": {"status": "open"}). */
export async function roomsOpen(apiUrl, { timeout = 60000 } = {}) {
  await eventually("room API up with its room routes open", async () => {
    const d = await getJson(apiUrl, "/health/detailed");
    return d.status === 200 && d.json?.rooms?.status === "open";
  }, { timeout, interval: 200 });
}

/** Poll `fn` until it returns a truthy value (returned) or time runs out (throws with `what`). */
export async function eventually(what, fn, { timeout = EVENT_TIMEOUT_MS, interval = 50 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not true within ${timeout} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await sleep(interval);
  }
}

// ---------------------------------------------------------------------------
// A minimal raw WebSocket client (RFC 6455, text frames, client masking) for
// the Engine.IO wire checks that socket.io-client hides.

export class RawWs {
  static connect(port, path = "/socket.io/?EIO=4&transport=websocket", headers = {}) {
    return new Promise((resolve, reject) => {
      const key = crypto.randomBytes(16).toString("base64");
      const sock = net.connect({ host: "127.0.0.1", port });
      let buf = Buffer.alloc(0);
      const onData = (d) => {
        buf = Buffer.concat([buf, d]);
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        sock.off("data", onData);
        const head = buf.subarray(0, end).toString("latin1");
        const rest = buf.subarray(end + 4);
        const [statusLine, ...lines] = head.split("\r\n");
        const status = Number(statusLine.split(" ")[1]);
        const hdrs = {};
        for (const l of lines) {
          const i = l.indexOf(":");
          hdrs[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        if (status !== 101) {
          sock.destroy();
          reject(Object.assign(new Error(`WebSocket upgrade refused: ${statusLine}`), { status, headers: hdrs, rest: rest.toString() }));
          return;
        }
        const expectAccept = crypto.createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
        resolve(new RawWs(sock, hdrs, rest, expectAccept));
      };
      sock.on("data", onData);
      sock.once("error", reject);
      sock.on("connect", () => {
        const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
        sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
          + `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`);
      });
    });
  }

  constructor(sock, headers, rest, expectAccept) {
    this.sock = sock;
    this.headers = headers;
    this.acceptOk = headers["sec-websocket-accept"] === expectAccept;
    this.buf = Buffer.alloc(0);
    this.frames = []; // {opcode, data: Buffer}
    this.waiters = [];
    this.closed = false;
    this.closeFrame = null;
    this.closedPromise = new Promise((resolve) => {
      sock.on("close", () => {
        this.closed = true;
        resolve();
        this._wake();
      });
    });
    sock.on("error", () => {});
    sock.on("data", (d) => this._onData(d));
    if (rest.length) this._onData(rest);
  }

  _onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      const b0 = this.buf[0];
      const b1 = this.buf[1];
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      const maskOff = off;
      if (masked) off += 4;
      if (this.buf.length < off + len) return;
      let data = Buffer.from(this.buf.subarray(off, off + len));
      if (masked) {
        const m = this.buf.subarray(maskOff, maskOff + 4);
        for (let i = 0; i < data.length; i++) data[i] ^= m[i & 3];
      }
      this.buf = this.buf.subarray(off + len);
      const frame = { opcode: b0 & 0x0f, fin: (b0 & 0x80) !== 0, masked, data };
      if (frame.opcode === 8) this.closeFrame = frame;
      this.frames.push(frame);
      this._wake();
    }
  }

  _wake() {
    for (const w of [...this.waiters]) w();
  }

  /** Next text frame (as string), skipping nothing; rejects on close/timeout. */
  nextText({ timeout = EVENT_TIMEOUT_MS, skipPings = false } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        while (this.frames.length) {
          const f = this.frames.shift();
          if (f.opcode === 1) {
            const s = f.data.toString("utf8");
            if (skipPings && s === "2") continue;
            done();
            resolve(s);
            return true;
          }
          if (f.opcode === 8) {
            done();
            reject(new Error(`connection closed by server (close frame ${f.data.length >= 2 ? f.data.readUInt16BE(0) : ""})`));
            return true;
          }
        }
        if (this.closed) {
          done();
          reject(new Error("connection closed by server"));
          return true;
        }
        return false;
      };
      const t = setTimeout(() => {
        done();
        reject(new Error(`no text frame within ${timeout} ms`));
      }, timeout);
      const done = () => {
        clearTimeout(t);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      if (!check()) this.waiters.push(check);
    });
  }

  /** Collect text frames for `ms` (returns them). */
  async collect(ms) {
    const out = [];
    const end = Date.now() + ms;
    for (;;) {
      const left = end - Date.now();
      if (left <= 0) return out;
      try {
        out.push(await this.nextText({ timeout: left }));
      } catch (e) {
        if (/closed/.test(e.message)) return out;
      }
    }
  }

  _frame(opcode, payload) {
    const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, "utf8");
    const mask = crypto.randomBytes(4);
    let head;
    if (data.length < 126) {
      head = Buffer.from([0x80 | opcode, 0x80 | data.length]);
    } else if (data.length < 65536) {
      head = Buffer.alloc(4);
      head[0] = 0x80 | opcode;
      head[1] = 0x80 | 126;
      head.writeUInt16BE(data.length, 2);
    } else {
      head = Buffer.alloc(10);
      head[0] = 0x80 | opcode;
      head[1] = 0x80 | 127;
      head.writeBigUInt64BE(BigInt(data.length), 2);
    }
    const masked = Buffer.from(data);
    for (let i = 0; i < masked.length; i++) masked[i] ^= mask[i & 3];
    return Buffer.concat([head, mask, masked]);
  }

  send(text) {
    if (!this.sock.destroyed) this.sock.write(this._frame(1, text));
  }

  sendBinary(buf) {
    if (!this.sock.destroyed) this.sock.write(this._frame(2, buf));
  }

  /** Resolves true if the server closed the connection within `ms`. */
  async waitClosed(ms = EVENT_TIMEOUT_MS) {
    const r = await Promise.race([this.closedPromise.then(() => true), sleep(ms).then(() => false)]);
    return r || this.closeFrame !== null;
  }

  close() {
    this.sock.destroy();
  }
}
