// The item digest (src/hash.ts, docs/datachannel-protocol.md §7): SHA-256
// over the SHA-256s of the item's 1 MiB blocks, checked against Node's own
// SHA-256 computing the definition directly, whatever way the bytes arrive
// (pieces of any size, overlapping and skipped reads, the rest read from a
// Blob), by WebCrypto and by the WebAssembly fallback.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { after, before, describe, it } from "node:test";
import { loadSources } from "./load.mjs";

const MiB = 1024 * 1024;
let H;
before(async () => {
  H = await loadSources("hash.ts");
});

/** The definition, by Node's SHA-256. */
function itemDigest(data) {
  const list = [];
  for (let o = 0; o < data.byteLength; o += MiB) list.push(crypto.createHash("sha256").update(data.subarray(o, o + MiB)).digest());
  return crypto.createHash("sha256").update(Buffer.concat(list)).digest("hex");
}

function bytes(n, seed = 1) {
  const out = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Feeds `data` in pieces of the given sizes (cycled), each piece from a buffer overwritten at once after the call. */
async function feed(data, sizes) {
  const h = new H.BlockHasher();
  let i = 0;
  for (let o = 0; o < data.byteLength; i++) {
    const n = Math.min(sizes[i % sizes.length], data.byteLength - o);
    const buf = new Uint8Array(data.subarray(o, o + n)); // a copy the test then spoils
    h.update(buf);
    buf.fill(0xa5); // the hasher read it before update returned
    o += n;
  }
  assert.equal(h.taken, data.byteLength);
  return h.digest();
}

function suite(label) {
  // 17 MiB + 3: more blocks than the digest list first has room for.
  const sizes = [0, 1, 1000, MiB - 1, MiB, MiB + 1, 3 * MiB + 12345, 17 * MiB + 3];
  const data = bytes(17 * MiB + 12345);
  it(`${label}: any size, in pieces of any size`, async () => {
    for (const n of sizes) {
      const d = data.subarray(0, n);
      const want = itemDigest(d);
      assert.equal(await feed(d, [n || 1]), want, `${n} bytes in one piece`);
      assert.equal(await feed(d, [64 * 1024]), want, `${n} bytes in 64 KiB frames`);
      assert.equal(await feed(d, [4 * MiB]), want, `${n} bytes in 4 MiB writes`);
      assert.equal(await feed(d, [777, 333333, 2 * MiB + 5]), want, `${n} bytes in uneven pieces`);
    }
  });

  it(`${label}: reads that overlap what was taken or leave a gap`, async () => {
    const d = data.subarray(0, 3 * MiB + 100);
    const h = new H.BlockHasher();
    assert.equal(h.updateAt(0, d.subarray(0, MiB + 10)), true);
    assert.equal(h.updateAt(MiB, d.subarray(MiB, 2 * MiB)), true, "overlap: the new tail is taken");
    assert.equal(h.updateAt(0, d.subarray(0, MiB)), false, "all taken already");
    assert.equal(h.updateAt(2 * MiB + 1, d.subarray(2 * MiB + 1, 3 * MiB)), false, "a gap is skipped");
    assert.equal(h.taken, 2 * MiB);
    // The rest is read from the file.
    assert.equal(await H.hashRest(h, new Blob([d])), itemDigest(d));
  });

  it(`${label}: a whole Blob`, async () => {
    const d = data.subarray(0, 3 * MiB + 12345);
    assert.equal(await H.hashBlob(new Blob([d])), itemDigest(d));
    assert.equal(await H.hashBlob(new Blob([])), itemDigest(Buffer.alloc(0)));
  });

  it(`${label}: takes nothing after the digest, and a file that shrank fails`, async () => {
    const h = new H.BlockHasher();
    h.update(new Uint8Array(10));
    await h.digest();
    assert.throws(() => h.update(new Uint8Array(1)), /already digested/);
    await assert.rejects(h.digest(), /already digested/);
    const blob = new Blob([bytes(5 * MiB, 7)]);
    const shrunk = { size: blob.size, slice: (a, b) => blob.slice(a, Math.min(b, 4 * MiB + 3)) };
    await assert.rejects(H.hashRest(new H.BlockHasher(), shrunk), /changed while it was being hashed/);
  });
}

describe("item digest by WebCrypto", () => {
  suite("WebCrypto");
  it("is the WebCrypto path", () => assert.equal(H.hasWebCrypto(), true));
});

describe("item digest by WebAssembly, where WebCrypto is missing", () => {
  const real = Object.getOwnPropertyDescriptor(globalThis, "crypto");
  before(() => Object.defineProperty(globalThis, "crypto", { value: undefined, configurable: true }));
  after(() => Object.defineProperty(globalThis, "crypto", real));
  it("is the fallback path", () => assert.equal(H.hasWebCrypto(), false));
  suite("WebAssembly");
});

/** WebCrypto whose digests finish only when the test says: `finish(n)` completes the oldest n. */
function slowCrypto({ failAt = Infinity } = {}) {
  const queue = [];
  let calls = 0;
  const subtle = {
    digest(alg, data) {
      const mine = Buffer.from(data); // a copy taken at the call, as WebCrypto does
      const n = calls++;
      return new Promise((resolve, reject) => queue.push(() => (n === failAt
        ? reject(new Error("digest failed"))
        : resolve(crypto.createHash("sha256").update(mine).digest().buffer.slice(0)))));
    },
  };
  return {
    crypto: { subtle },
    get waiting() { return queue.length; },
    async finish(n = Infinity) {
      for (let i = 0; i < n && queue.length; i++) queue.shift()();
      for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
    },
  };
}

describe("item digest when hashing falls behind", () => {
  const real = Object.getOwnPropertyDescriptor(globalThis, "crypto");
  after(() => Object.defineProperty(globalThis, "crypto", real));
  const use = (c) => Object.defineProperty(globalThis, "crypto", { value: c.crypto, configurable: true });

  it("ready() waits while more than eight blocks are being hashed, and the digest is still right", async () => {
    const slow = slowCrypto();
    use(slow);
    const d = bytes(20 * MiB + 5, 3);
    const h = new H.BlockHasher(d.byteLength);
    h.update(d);
    assert.equal(slow.waiting, 20, "every whole block's digest started");
    let ready = false;
    h.ready().then(() => { ready = true; });
    await slow.finish(11);
    assert.equal(ready, false, "nine still running: not ready");
    await slow.finish(1);
    assert.equal(ready, true, "eight running: ready");
    const digest = h.digest();
    await slow.finish();
    await slow.finish();
    assert.equal(await digest, itemDigest(d));
  });

  it("a failed block's digest makes ready() and digest() fail, and hashRest stops reading", async () => {
    const slow = slowCrypto({ failAt: 1 });
    use(slow);
    const d = bytes(40 * MiB, 5);
    let reads = 0;
    const blob = new Blob([d]);
    const counted = { size: blob.size, slice: (a, b) => { reads++; return blob.slice(a, b); } };
    let settled = false;
    const rest = H.hashRest(new H.BlockHasher(blob.size), counted);
    rest.catch(() => undefined).finally(() => { settled = true; });
    // Digests finish as they come; reading the Blob between them takes real I/O turns.
    for (let i = 0; i < 500 && !settled; i++) {
      await slow.finish();
      await new Promise((r) => setTimeout(r, 2));
    }
    await assert.rejects(rest, /digest failed/);
    assert.ok(reads <= 4, `stopped after ${reads} of 10 reads`);
  });

  it("release() drops the partial block; the hasher takes nothing more", async () => {
    use({ crypto: real.get ? real.get.call(globalThis) : real.value });
    const h = new H.BlockHasher(10);
    h.update(new Uint8Array(5));
    h.release();
    assert.throws(() => h.update(new Uint8Array(1)), /already digested/);
    await assert.rejects(h.digest(), /already digested/);
  });
});

describe("hex", () => {
  it("is lowercase and two digits a byte", () => {
    assert.equal(H.hex(new Uint8Array([0, 15, 16, 255])), "000f10ff");
  });
});
