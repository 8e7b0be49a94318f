// The sender's flow control (src/send-flow.ts): every byte once and in order,
// held back by the channel's send buffer and by the receiver's window, and
// stopped by an abort, a closed channel or a file that changed. The channel
// and the receiver's acks are driven by the test, step by step: the verdicts
// rest on what was sent when the sender chose to wait, never on timing.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { before, describe, it } from "node:test";
import { loadSources } from "./load.mjs";

const MiB = 1024 * 1024;
let P;
before(async () => {
  P = await loadSources("protocol.ts", "send-flow.ts");
});

/** A data channel that records frames; its buffer drains only when told (or at once with `drains`). */
class TestChannel {
  constructor({ maxMessageSize = 0, drains = true, closeAfter = Infinity } = {}) {
    Object.assign(this, { maxMessageSize, drains, closeAfter });
    this.frames = [];
    this.buffered = 0;
    this.open = true;
  }
  get isOpen() { return this.open; }
  get bufferedAmount() { return this.buffered; }
  send(frame) {
    if (!this.open) return false;
    this.frames.push(P.decodeFrame(frame.slice().buffer));
    if (!this.drains) this.buffered += frame.byteLength;
    if (this.frames.length >= this.closeAfter) this.open = false;
    return true;
  }
  /** Payload bytes sent so far (frames are contiguous, checked separately). */
  get sentBytes() { return this.frames.reduce((n, f) => n + f.payload.byteLength, 0); }
}

/** The receiver's acks and the sender's wake-ups, both in the test's hands. */
class TestGate {
  constructor(ackedFn) {
    this.ack = 0;
    this.ackedFn = ackedFn ?? (() => this.ack);
    this.waits = 0;
    this.release = null;
    this.watchers = [];
  }
  acked() { return this.ackedFn(); }
  wait() {
    this.waits++;
    const p = new Promise((r) => { this.release = r; });
    for (const w of this.watchers.splice(0)) w();
    return p;
  }
  /** Resolves once the sender is waiting. */
  blocked() { return this.release ? Promise.resolve() : new Promise((r) => this.watchers.push(r)); }
  wake() {
    const r = this.release;
    this.release = null;
    r();
  }
}

/** Waits until `run` blocks in the gate; fails if it finishes instead. */
async function untilBlocked(gate, run) {
  await Promise.race([gate.blocked(), run.then((v) => { throw new Error(`finished (${v}) instead of waiting`); })]);
}

function item(size, data = crypto.randomBytes(size)) {
  return { id: 7, size, blob: new Blob([data]), data };
}

/** Frames are item 7's, contiguous from `from`; returns their bytes joined. */
function joined(frames, from, maxPayload) {
  let off = from;
  for (const f of frames) {
    assert.equal(f.id, 7);
    assert.equal(f.offset, off, "frames are contiguous and in order");
    assert.ok(f.payload.byteLength >= 1 && f.payload.byteLength <= maxPayload, `payload ${f.payload.byteLength} ≤ ${maxPayload}`);
    off += f.payload.byteLength;
  }
  return Buffer.concat(frames.map((f) => f.payload));
}

describe("payload size", () => {
  it("fits the peer's max-message-size, between 1 KiB and 64 KiB", () => {
    assert.equal(P.payloadBytes(0), 64 * 1024, "unknown: SDP's default of 64 KiB");
    assert.equal(P.payloadBytes(16 * 1024 + 16), 16 * 1024);
    assert.equal(P.payloadBytes(256 * 1024 * 1024), P.CHUNK_BYTES);
    assert.equal(P.payloadBytes(100), P.MIN_PAYLOAD_BYTES);
  });
});

describe("sendItem", () => {
  it("sends every byte from the requested offset once, in order, in frames the peer accepts", async () => {
    for (const mms of [0, 16 * 1024 + 16, 1 << 20, 100]) {
      const it = item(3 * P.READ_BYTES + 12345);
      const ch = new TestChannel({ maxMessageSize: mms });
      const gate = new TestGate(() => ch.sentBytes + 777777); // acks keep up
      const ok = await P.sendItem(ch, it, { id: 7, offset: 777777, aborted: false }, gate);
      assert.equal(ok, true);
      assert.equal(gate.waits, 0, "nothing to wait for");
      assert.ok(joined(ch.frames, 777777, P.payloadBytes(mms)).equals(it.data.subarray(777777)), `mms ${mms}`);
    }
  });

  it("sends nothing for a request at the item's end", async () => {
    const it = item(1000);
    const ch = new TestChannel();
    assert.equal(await P.sendItem(ch, it, { id: 7, offset: 1000, aborted: false }, new TestGate()), true);
    assert.equal(ch.frames.length, 0);
  });

  it("stops at the receiver's window and goes on block by block as acks come", async () => {
    const it = item(P.ACK_WINDOW + 3 * P.READ_BYTES);
    const ch = new TestChannel();
    const gate = new TestGate();
    const run = P.sendItem(ch, it, { id: 7, offset: 0, aborted: false }, gate);
    await untilBlocked(gate, run);
    assert.equal(ch.sentBytes, P.ACK_WINDOW, "a full window and not a byte more");
    // A wake-up with nothing new sends nothing.
    gate.wake();
    await untilBlocked(gate, run);
    assert.equal(ch.sentBytes, P.ACK_WINDOW);
    // An ack of one block lets one more block go.
    gate.ack = P.READ_BYTES;
    gate.wake();
    await untilBlocked(gate, run);
    assert.equal(ch.sentBytes, P.ACK_WINDOW + P.READ_BYTES);
    gate.ack = it.size;
    gate.wake();
    assert.equal(await run, true);
    assert.ok(joined(ch.frames, 0, P.CHUNK_BYTES).equals(it.data));
  });

  it("counts the window from the acknowledged offset when a request resumes", async () => {
    const from = 5 * MiB + 321;
    const it = item(from + P.ACK_WINDOW + P.READ_BYTES);
    const ch = new TestChannel();
    const gate = new TestGate();
    gate.ack = from;
    const run = P.sendItem(ch, it, { id: 7, offset: from, aborted: false }, gate);
    await untilBlocked(gate, run);
    assert.equal(ch.frames[0].offset, from);
    assert.equal(ch.sentBytes, P.ACK_WINDOW);
    gate.ack = it.size;
    gate.wake();
    assert.equal(await run, true);
    assert.ok(joined(ch.frames, from, P.CHUNK_BYTES).equals(it.data.subarray(from)));
  });

  it("holds back while the channel's buffer is above BUFFER_HIGH, and goes on once it drained", async () => {
    const it = item(3 * P.BUFFER_HIGH + 4567);
    const ch = new TestChannel({ drains: false });
    const gate = new TestGate(() => ch.sentBytes); // acks keep up: only the buffer limits
    const run = P.sendItem(ch, it, { id: 7, offset: 0, aborted: false }, gate);
    let stops = 0;
    for (;;) {
      const done = await Promise.race([gate.blocked().then(() => false), run.then(() => true)]);
      if (done) break;
      stops++;
      // It stopped at the first block that took the buffer past the limit.
      const perBlock = P.READ_BYTES + (P.READ_BYTES / P.CHUNK_BYTES) * P.FRAME_HEADER_BYTES;
      assert.ok(ch.buffered > P.BUFFER_HIGH, `waits only above the limit (${ch.buffered})`);
      assert.ok(ch.buffered - perBlock <= P.BUFFER_HIGH, `not a block later (${ch.buffered})`);
      const sent = ch.sentBytes;
      gate.wake(); // a wake-up while still full sends nothing
      await untilBlocked(gate, run);
      assert.equal(ch.sentBytes, sent);
      ch.buffered = P.BUFFER_LOW; // what bufferedamountlow reports
      gate.wake();
    }
    assert.equal(await run, true);
    assert.ok(stops >= 3, `stopped for the buffer ${stops} times`);
    assert.ok(joined(ch.frames, 0, P.CHUNK_BYTES).equals(it.data));
  });

  it("stops, sending nothing more, when the request is aborted while it waits", async () => {
    const it = item(P.ACK_WINDOW + P.READ_BYTES);
    const ch = new TestChannel();
    const gate = new TestGate();
    const req = { id: 7, offset: 0, aborted: false };
    const run = P.sendItem(ch, it, req, gate);
    await untilBlocked(gate, run);
    const sent = ch.frames.length;
    req.aborted = true;
    gate.ack = it.size;
    gate.wake();
    assert.equal(await run, false);
    assert.equal(ch.frames.length, sent);
  });

  it("stops when the channel closes under it", async () => {
    const it = item(4 * P.READ_BYTES);
    const ch = new TestChannel({ closeAfter: 20 });
    const ok = await P.sendItem(ch, it, { id: 7, offset: 0, aborted: false }, new TestGate(() => ch.sentBytes));
    assert.equal(ok, false);
    assert.equal(ch.frames.length, 20);
  });

  it("rejects when the file holds fewer bytes than announced", async () => {
    const it = item(P.READ_BYTES + 10);
    it.size += 10;
    const ch = new TestChannel();
    await assert.rejects(P.sendItem(ch, it, { id: 7, offset: 0, aborted: false }, new TestGate(() => ch.sentBytes)), /changed while it was being sent/);
    assert.equal(ch.sentBytes, P.READ_BYTES, "the first block went out, the short one did not");
  });

  it("hands every block read to onBlock once, in order, after its frames (one pass over the file for the hash)", async () => {
    for (const from of [0, P.READ_BYTES + 777]) {
      const it = item(4 * P.READ_BYTES + 4321);
      const ch = new TestChannel();
      const seen = [];
      const ok = await P.sendItem(ch, it, { id: 7, offset: from, aborted: false }, new TestGate(() => Infinity), (block) => {
        assert.equal(ch.sentBytes, seen.reduce((n, b) => n + b.byteLength, 0) + block.byteLength, "its frames went out first");
        seen.push(block.slice());
      });
      assert.equal(ok, true);
      const all = Buffer.concat(seen);
      assert.equal(crypto.createHash("sha256").update(all).digest("hex"),
        crypto.createHash("sha256").update(it.data.subarray(from)).digest("hex"), `from ${from}: the blocks are the item from there on`);
    }
  });

  it("sends the next block only once what onBlock returned resolves (hashing that fell behind)", async () => {
    const it = item(3 * P.READ_BYTES);
    const ch = new TestChannel();
    let caughtUp;
    const behind = new Promise((r) => { caughtUp = r; });
    const run = P.sendItem(ch, it, { id: 7, offset: 0, aborted: false }, new TestGate(() => Infinity),
      () => (ch.sentBytes === P.READ_BYTES ? behind : undefined));
    for (let k = 0; k < 20; k++) await new Promise((r) => setImmediate(r));
    assert.equal(ch.sentBytes, P.READ_BYTES, "the second block waits");
    caughtUp();
    assert.equal(await run, true);
    assert.equal(ch.sentBytes, it.size);
  });

  it("rejects with onBlock's error and leaves no read ahead unhandled", async () => {
    const it = item(3 * P.READ_BYTES);
    const blob = it.blob;
    // The block after the first cannot be read either: nobody may be left to hear of it.
    it.blob = { size: blob.size, slice: (a, b) => (a === 0 ? blob.slice(a, b) : { arrayBuffer: () => Promise.reject(new Error("read ahead failed")) }) };
    const ch = new TestChannel();
    await assert.rejects(P.sendItem(ch, it, { id: 7, offset: 0, aborted: false }, new TestGate(() => Infinity),
      () => Promise.reject(new Error("hash failed"))), /hash failed/);
    for (let k = 0; k < 10; k++) await new Promise((r) => setImmediate(r));
  });

  it("reads at most one block ahead of what it sent while the window holds it back", async () => {
    const it = item(P.ACK_WINDOW + 4 * P.READ_BYTES);
    const reads = [];
    const blob = it.blob;
    it.blob = { size: blob.size, slice: (a, b) => { reads.push([a, b]); return blob.slice(a, b); } };
    const ch = new TestChannel();
    const gate = new TestGate();
    const run = P.sendItem(ch, it, { id: 7, offset: 0, aborted: false }, gate);
    await untilBlocked(gate, run);
    assert.equal(ch.sentBytes, P.ACK_WINDOW);
    const readEnd = Math.max(...reads.map(([, b]) => b));
    assert.ok(readEnd <= ch.sentBytes + P.READ_BYTES, `read up to ${readEnd}, sent ${ch.sentBytes}`);
    assert.equal(new Set(reads.map(([a]) => a)).size, reads.length, "no block is read twice");
    gate.ack = it.size;
    gate.wake();
    assert.equal(await run, true);
    assert.equal(ch.sentBytes, it.size);
  });
});
