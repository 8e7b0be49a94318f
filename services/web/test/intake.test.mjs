// The receiver's intake (src/intake.ts): bytes taken strictly in order, the
// resume offset after a lost connection, overlaps and gaps, the announced size
// as a hard limit, and acknowledgements that report only what storage holds.
// Storage is a test sink whose writes complete when the test says so.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { before, describe, it } from "node:test";
import { loadSources } from "./load.mjs";

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;
let P;
before(async () => {
  P = await loadSources("protocol.ts", "intake.ts");
});

/** Storage that keeps what it is given; with `manual`, each write completes only on `complete()`. */
class TestSink {
  constructor({ manual = false, failAt = Infinity } = {}) {
    Object.assign(this, { manual, failAt });
    this.chunks = [];
    this.pending = [];
  }
  write(data) {
    if (this.chunks.length + this.pending.length >= this.failAt) return Promise.reject(new Error("disk full"));
    if (!this.manual) {
      this.chunks.push(Buffer.from(data));
      return Promise.resolve();
    }
    return new Promise((resolve) => this.pending.push(() => { this.chunks.push(Buffer.from(data)); resolve(); }));
  }
  /** Completes the oldest pending write and lets its continuation run. */
  async complete() {
    this.pending.shift()();
    await new Promise((r) => setImmediate(r));
  }
  get bytes() { return Buffer.concat(this.chunks); }
}

function intake(size, sink = new TestSink()) {
  const hash = crypto.createHash("sha256");
  const acks = [];
  const i = new P.Intake(size, hash, sink, (offset) => acks.push(offset));
  return { i, hash, sink, acks };
}

const sha = (b) => crypto.createHash("sha256").update(b).digest("hex");

/** Offers data[from, to) in frames of `chunk` bytes; returns what became of each. */
function feed(i, data, from, to, chunk = CHUNK) {
  const got = [];
  for (let o = from; o < to; o += chunk) got.push(i.take(o, data.subarray(o, Math.min(to, o + chunk))));
  return got;
}

describe("Intake", () => {
  it("resumes at the bytes it holds, and the whole item hashes as if sent in one go", async () => {
    const data = crypto.randomBytes(3 * MiB + 5);
    const { i, hash, sink, acks } = intake(data.length);
    assert.equal(i.received, 0, "a new transfer asks from 0");
    feed(i, data, 0, 1.5 * MiB);
    // The connection is lost here; the new request asks from what is held.
    const resumeAt = i.received;
    assert.equal(resumeAt, 1.5 * MiB);
    // The sender resumes at exactly that offset.
    assert.deepEqual(new Set(feed(i, data, resumeAt, data.length)), new Set(["taken"]));
    await i.written;
    assert.equal(i.received, data.length);
    assert.equal(i.accepted, data.length);
    assert.equal(hash.digest("hex"), sha(data));
    assert.ok(sink.bytes.equals(data));
    assert.equal(acks.at(-1), data.length, "the end is acknowledged");
  });

  it("keeps only the new tail of a chunk that overlaps what it holds, and drops a chunk it holds whole", async () => {
    const data = crypto.randomBytes(300);
    const { i, hash, sink } = intake(data.length);
    assert.equal(i.take(0, data.subarray(0, 100)), "taken");
    assert.equal(i.take(50, data.subarray(50, 150)), "taken");
    assert.equal(i.received, 150);
    assert.equal(i.take(0, data.subarray(0, 100)), "dropped");
    assert.equal(i.take(100, data.subarray(100, 150)), "dropped", "ending exactly at what is held");
    assert.equal(i.received, 150);
    feed(i, data, 150, 300, 70);
    await i.written;
    assert.ok(sink.bytes.equals(data));
    assert.equal(hash.digest("hex"), sha(data));
  });

  it("drops a chunk past a gap, so the next request asks from the bytes held", async () => {
    const data = crypto.randomBytes(1000);
    const { i, sink } = intake(data.length);
    i.take(0, data.subarray(0, 100));
    assert.equal(i.take(200, data.subarray(200, 300)), "dropped");
    assert.equal(i.received, 100);
    assert.equal(i.take(100, data.subarray(100, 200)), "taken");
    assert.equal(i.received, 200);
    await i.written;
    assert.ok(sink.bytes.equals(data.subarray(0, 200)), "the chunk past the gap was never stored");
  });

  it("refuses bytes past the announced size and takes none of them", async () => {
    const data = crypto.randomBytes(120);
    const { i, hash, sink, acks } = intake(100);
    assert.equal(i.take(0, data.subarray(0, 101)), "overflow");
    assert.equal(i.received, 0);
    assert.equal(i.take(0, data.subarray(0, 90)), "taken");
    // Overlapping what is held, with a tail past the end.
    assert.equal(i.take(80, data.subarray(80, 120)), "overflow");
    assert.equal(i.received, 90);
    await i.written;
    assert.ok(sink.bytes.equals(data.subarray(0, 90)));
    assert.equal(hash.digest("hex"), sha(data.subarray(0, 90)), "nothing refused was hashed");
    assert.deepEqual(acks, [], "not at the end, under ACK_EVERY: no ack yet");
  });

  it("acknowledges only what storage has taken: every ACK_EVERY bytes and at the end", async () => {
    const data = crypto.randomBytes(2.5 * MiB);
    const sink = new TestSink({ manual: true });
    const { i, acks } = intake(data.length, sink);
    feed(i, data, 0, data.length);
    assert.equal(i.received, data.length, "taken and hashed at once");
    assert.equal(i.accepted, 0, "nothing stored yet");
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(acks, [], "no ack before storage has the bytes");
    const perAck = P.ACK_EVERY / CHUNK;
    let writes = 0;
    while (sink.pending.length) {
      await sink.complete();
      writes++;
      assert.equal(i.accepted, Math.min(writes * CHUNK, data.length));
      assert.ok(acks.every((a) => a <= i.accepted), "an ack never runs ahead of storage");
      if (writes === perAck) assert.deepEqual(acks, [P.ACK_EVERY]);
    }
    assert.deepEqual(acks, [P.ACK_EVERY, 2 * P.ACK_EVERY, data.length]);
  });

  it("holds acknowledgements back while the hash says it is behind", async () => {
    const data = crypto.randomBytes(2 * P.ACK_EVERY);
    const inner = crypto.createHash("sha256");
    let caughtUp;
    let behind = new Promise((r) => { caughtUp = r; }); // while set, ready() waits for it
    const hasher = { update: (d) => inner.update(d), ready: () => behind ?? Promise.resolve() };
    const acks = [];
    const i = new P.Intake(data.length, hasher, new TestSink(), (offset) => acks.push(offset));
    feed(i, data, 0, data.length);
    for (let k = 0; k < 10; k++) await new Promise((r) => setImmediate(r));
    assert.equal(i.accepted, 0, "stored bytes count only once the hash keeps up");
    assert.deepEqual(acks, [], "no ack while the hash is behind");
    behind = null;
    caughtUp();
    await i.written;
    assert.deepEqual(acks, [P.ACK_EVERY, 2 * P.ACK_EVERY]);
    assert.equal(inner.digest("hex"), sha(data));
  });

  it("rejects `written` with the storage error and acknowledges nothing after it", async () => {
    const data = crypto.randomBytes(P.ACK_EVERY + 3 * CHUNK);
    const sink = new TestSink({ failAt: 4 });
    const { i, acks } = intake(data.length, sink);
    feed(i, data, 0, data.length);
    await assert.rejects(i.written, /disk full/);
    assert.equal(i.accepted, 4 * CHUNK);
    assert.deepEqual(acks, []);
  });
});
