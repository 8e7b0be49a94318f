// The item digest of docs/datachannel-protocol.md §7: SHA-256 over the list
// of the SHA-256s of the item's 1 MiB blocks. Each block is hashed as soon as
// its last byte is taken, by the browser's own SHA-256 (WebCrypto, native
// code) where it exists, else by hash-wasm. So no side holds more of an item
// for hashing than a partial block and the few blocks being hashed, and what
// is left after the item's last byte is one block and a digest of the list,
// whatever the item's size.
import { createSHA256, type IHasher } from "hash-wasm";

/** The block the item digest is made of (a protocol constant, §7). */
export const HASH_BLOCK_BYTES = 1024 * 1024;
const DIGEST_BYTES = 32;
/**
 * Blocks of one item whose digest may be running at once before whoever
 * feeds the hasher waits (`ready`): each holds a 1 MiB copy meanwhile.
 */
const MAX_HASHING_BLOCKS = 8;
/** What `hashRest` reads at a time. */
const READ_BYTES = 4 * 1024 * 1024;

/** True where WebCrypto exists (secure contexts: https, 127.0.0.1, localhost). */
export function hasWebCrypto(): boolean {
  return typeof globalThis.crypto?.subtle?.digest === "function";
}

let wasm: Promise<IHasher> | null = null;

/**
 * SHA-256 of `data`. Reads `data` before it returns (WebCrypto copies it at
 * the call; the fallback copies it here), so the caller may reuse or
 * transfer the buffer at once.
 */
function sha256(data: Uint8Array): Promise<Uint8Array> {
  if (hasWebCrypto()) return crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>).then((d) => new Uint8Array(d));
  const copy = data.slice();
  wasm ??= createSHA256();
  // One hasher for all: init, update and digest run without a pause between them.
  return wasm.then((h) => h.init().update(copy).digest("binary"));
}

/** Lowercase hex of a digest, as `end` and `result` carry it. */
export function hex(digest: Uint8Array): string {
  let out = "";
  for (const b of digest) out += b.toString(16).padStart(2, "0");
  return out;
}

/**
 * The item digest of bytes taken in order from byte 0. Holds at most one
 * partial block, the blocks being hashed (`ready`) and the list of block
 * digests (32 bytes per MiB).
 */
export class BlockHasher {
  /** Bytes taken so far: the item's first `taken` bytes. */
  taken = 0;
  private part: Uint8Array<ArrayBuffer> | null = null;
  private partLen = 0;
  private list = new Uint8Array(DIGEST_BYTES * 16);
  private blocks = 0;
  private pending = new Set<Promise<void>>();
  private failure: unknown = null;
  private finished = false;

  /** `size`: the item's, where known; a small item then holds a small partial block, not 1 MiB. */
  constructor(private readonly size = Infinity) {}

  /** The item's next bytes. */
  update(data: Uint8Array): void {
    if (this.finished) throw new Error("already digested");
    this.taken += data.byteLength;
    let o = 0;
    if (this.partLen > 0) {
      o = Math.min(HASH_BLOCK_BYTES - this.partLen, data.byteLength);
      this.keep(data.subarray(0, o));
      if (this.partLen === HASH_BLOCK_BYTES) this.block(this.part!);
    }
    // Whole blocks are hashed where they lie; only a block split across
    // updates is copied together first.
    for (; data.byteLength - o >= HASH_BLOCK_BYTES; o += HASH_BLOCK_BYTES) this.block(data.subarray(o, o + HASH_BLOCK_BYTES));
    if (o < data.byteLength) this.keep(data.subarray(o));
  }

  /** Appends to the partial block, sized to what the item has left of it (at most a block). */
  private keep(data: Uint8Array): void {
    const need = this.partLen + data.byteLength;
    if (!this.part || this.part.byteLength < need) {
      const blockLeft = this.size - this.blocks * HASH_BLOCK_BYTES;
      const part = new Uint8Array(Math.min(HASH_BLOCK_BYTES, Math.max(need, blockLeft)));
      if (this.part) part.set(this.part.subarray(0, this.partLen));
      this.part = part;
    }
    this.part.set(data, this.partLen);
    this.partLen = need;
  }

  /**
   * Bytes read at `offset`: takes what follows the bytes taken so far and
   * ignores what was taken already. A read past them (a gap) is ignored
   * whole: `hashRest` reads what is missing. True when any byte was taken.
   */
  updateAt(offset: number, data: Uint8Array): boolean {
    const end = offset + data.byteLength;
    if (offset > this.taken || end <= this.taken) return false;
    this.update(data.subarray(this.taken - offset));
    return true;
  }

  /**
   * Resolves once at most MAX_HASHING_BLOCKS block digests are still
   * running: whoever feeds the hasher waits for it, so that hashing that
   * falls behind holds the bytes back rather than piling copies up. Rejects
   * once a block's digest failed (the item cannot be verified; feeding it
   * more is wasted).
   */
  async ready(): Promise<void> {
    while (this.pending.size > MAX_HASHING_BLOCKS && !this.failure) await Promise.race(this.pending);
    if (this.failure) throw this.failed();
  }

  /** Drops what is held (an item that failed or was dropped); the hasher takes nothing more. */
  release(): void {
    this.finished = true;
    this.part = null;
    this.partLen = 0;
  }

  /** The item digest (hex) of the bytes taken. The hasher takes nothing more. */
  async digest(): Promise<string> {
    if (this.finished) throw new Error("already digested");
    if (this.partLen > 0) this.block(this.part!.subarray(0, this.partLen));
    this.finished = true;
    this.part = null;
    await Promise.all(this.pending);
    if (this.failure) throw this.failed();
    return hex(await sha256(this.list.subarray(0, this.blocks * DIGEST_BYTES)));
  }

  private failed(): Error {
    return this.failure instanceof Error ? this.failure : new Error(String(this.failure));
  }

  private block(data: Uint8Array): void {
    this.partLen = 0;
    if (this.failure) return; // the digest is lost already
    const at = this.blocks++ * DIGEST_BYTES;
    if (at + DIGEST_BYTES > this.list.byteLength) {
      const grown = new Uint8Array(this.list.byteLength * 2);
      grown.set(this.list);
      this.list = grown;
    }
    const p = sha256(data).then(
      // `list` may have grown meanwhile: write into the current one.
      (d) => { this.list.set(d, at); },
      (e) => { this.failure ??= e; },
    ).finally(() => { this.pending.delete(p); });
    this.pending.add(p);
  }
}

/**
 * Reads `blob` from `hasher.taken` to its end into `hasher` and returns the
 * item digest (hex): the whole file for a fresh hasher, or the rest of one
 * that the blocks read for sending did not finish.
 */
export async function hashRest(hasher: BlockHasher, blob: Blob): Promise<string> {
  for (let off = hasher.taken; off < blob.size; off += READ_BYTES) {
    const buf = await blob.slice(off, off + READ_BYTES).arrayBuffer();
    if (buf.byteLength !== Math.min(READ_BYTES, blob.size - off)) throw new Error("the file changed while it was being hashed");
    hasher.update(new Uint8Array(buf));
    await hasher.ready();
  }
  return hasher.digest();
}

/** The item digest (hex) of a whole Blob. */
export function hashBlob(blob: Blob): Promise<string> {
  return hashRest(new BlockHasher(blob.size), blob);
}
