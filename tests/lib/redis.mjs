// redis.mjs — one held connection to a test's redis-server, speaking RESP.
// Tests that must publish or set keys at a steady pace use this instead of a
// redis-cli per command: spawning a process per command on a loaded machine
// leaves gaps of hundreds of milliseconds, and a verdict must not depend on
// that. Replies come back in order, so several commands may be in flight.

import net from "node:net";

// A reply bigger than this is not something a test asked for.
const MAX_REPLY_BYTES = 1 << 20;

/** Encode one command as a RESP array of bulk strings. */
function encode(args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const s = Buffer.from(String(a));
    parts.push(`$${s.length}\r\n`, s, "\r\n");
  }
  return Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : p)));
}

/**
 * Parse one reply at `pos`; returns { value, end } or null while incomplete.
 * Errors come back as Error values (a command's error, not the connection's).
 */
function parse(buf, pos) {
  const eol = buf.indexOf("\r\n", pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString("utf8", pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case "+": return { value: line, end: next };
    case "-": return { value: new Error(line), end: next };
    case ":": return { value: Number(line), end: next };
    case "$": {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (buf.length < next + n + 2) return null;
      return { value: buf.toString("utf8", next, next + n), end: next + n + 2 };
    }
    case "*": {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const out = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, p);
        if (!r) return null;
        out.push(r.value);
        p = r.end;
      }
      return { value: out, end: p };
    }
    default:
      throw new Error(`redis: unexpected reply type ${JSON.stringify(type)}`);
  }
}

export class RedisConn {
  /** Connect to 127.0.0.1:port; resolves once connected. */
  static open(port, { timeout = 10000 } = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: "127.0.0.1", port });
      const t = setTimeout(() => {
        sock.destroy();
        reject(new Error(`redis on ${port}: connect timed out`));
      }, timeout);
      sock.once("connect", () => {
        clearTimeout(t);
        sock.removeAllListeners("error");
        resolve(new RedisConn(sock));
      });
      sock.once("error", (e) => {
        clearTimeout(t);
        reject(new Error(`redis on ${port}: ${e.message}`));
      });
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.pending = []; // { resolve, reject } in command order
    this.subscribed = false; // after (P)SUBSCRIBE: only messages come unasked
    this.listeners = []; // fn(channel, message) for each published message
    sock.setNoDelay(true);
    sock.on("data", (d) => this.onData(d));
    sock.on("error", (e) => this.failAll(e));
    sock.on("close", () => this.failAll(new Error("redis connection closed")));
  }

  onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    if (this.buf.length > MAX_REPLY_BYTES) {
      this.failAll(new Error("redis reply too large"));
      this.sock.destroy();
      return;
    }
    let pos = 0;
    for (;;) {
      let r;
      try {
        r = parse(this.buf, pos);
      } catch (e) {
        this.failAll(e);
        this.sock.destroy();
        return;
      }
      if (!r) break;
      pos = r.end;
      // Once subscribed, what arrives unasked is a published message.
      const v = r.value;
      if (this.subscribed && Array.isArray(v) && (v[0] === "message" || v[0] === "pmessage")) {
        for (const fn of this.listeners) fn(v[0] === "pmessage" ? v[2] : v[1], v[v.length - 1]);
        continue;
      }
      const p = this.pending.shift();
      if (!p) continue; // nothing asked: ignore rather than misattribute
      if (r.value instanceof Error) p.reject(r.value);
      else p.resolve(r.value);
    }
    this.buf = this.buf.subarray(pos);
  }

  failAll(e) {
    const ps = this.pending;
    this.pending = [];
    for (const p of ps) p.reject(e);
  }

  /** Send one command; resolves with its reply (rejects on an error reply). */
  command(...args) {
    return new Promise((resolve, reject) => {
      if (this.sock.destroyed) {
        reject(new Error("redis connection closed"));
        return;
      }
      this.pending.push({ resolve, reject });
      this.sock.write(encode(args));
    });
  }

  /**
   * Send several commands in one write, so Redis handles them back to back
   * (and subscribers see their messages in this order); resolves with the
   * replies in order.
   */
  pipeline(commands) {
    if (this.sock.destroyed) return Promise.reject(new Error("redis connection closed"));
    const replies = commands.map(() => new Promise((resolve, reject) => this.pending.push({ resolve, reject })));
    this.sock.write(Buffer.concat(commands.map(encode)));
    return Promise.all(replies);
  }

  /**
   * Subscribe this connection to channels matching `pattern`; `fn(channel,
   * message)` is called for each message. The connection is then a
   * subscriber only: send no other commands on it.
   */
  async psubscribe(pattern, fn) {
    this.subscribed = true;
    this.listeners.push(fn);
    await this.command("PSUBSCRIBE", pattern);
  }

  close() {
    this.sock.end();
    this.sock.destroy();
  }
}
