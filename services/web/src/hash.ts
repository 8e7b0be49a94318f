// The item digest of docs/datachannel-protocol.md §7: SHA-256 over the list
// of the SHA-256s of the item's 1 MiB blocks. Each block is hashed as soon as
// its last byte is taken, by the browser's own SHA-256 (WebCrypto: native
// code, off the calling thread) where it exists, else by hash-wasm. So no
// side ever holds more than one block of an item for hashing, and what is
// left after the item's last byte is one block and a digest of the list,
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
 * partial block and the list of block digests (32 bytes per MiB).
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

  /** The item's next bytes. */
  update(data: Uint8Array): void {
    if (this.finished) throw new Error("already digested");
    this.taken += data.byteLength;
    let o = 0;
    if (this.partLen > 0) {
      o = Math.min(HASH_BLOCK_BYTES - this.partLen, data.byteLength);
      this.part!.set(data.subarray(0, o), this.partLen);
      this.partLen += o;
      if (this.partLen === HASH_BLOCK_BYTES) this.block(this.part!);
    }
    // Whole blocks are hashed where they lie; only a block split across
    // updates is copied together first.
    for (; data.byteLength - o >= HASH_BLOCK_BYTES; o += HASH_BLOCK_BYTES) this.block(data.subarray(o, o + HASH_BLOCK_BYTES));
    if (o < data.byteLength) {
      this.part ??= new Uint8Array(HASH_BLOCK_BYTES);
      this.part.set(data.subarray(o));
      this.partLen = data.byteLength - o;
    }
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
   * falls behind holds the bytes back rather than piling copies up.
   */
  async ready(): Promise<void> {
    while (this.pending.size > MAX_HASHING_BLOCKS) await Promise.race(this.pending);
  }

  /** The item digest (hex) of the bytes taken. The hasher takes nothing more. */
  async digest(): Promise<string> {
    if (this.finished) throw new Error("already digested");
    if (this.partLen > 0) this.block(this.part!.subarray(0, this.partLen));
    this.finished = true;
    this.part = null;
    await Promise.all(this.pending);
    if (this.failure) throw this.failure instanceof Error ? this.failure : new Error(String(this.failure));
    return hex(await sha256(this.list.subarray(0, this.blocks * DIGEST_BYTES)));
  }

  private block(data: Uint8Array): void {
    this.partLen = 0;
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
 * that the blocks read for sending did not finish. `onProgress` gets the
 * bytes taken so far.
 */
export async function hashRest(hasher: BlockHasher, blob: Blob, onProgress?: (done: number) => void): Promise<string> {
  for (let off = hasher.taken; off < blob.size; off += READ_BYTES) {
    const buf = await blob.slice(off, off + READ_BYTES).arrayBuffer();
    if (buf.byteLength !== Math.min(READ_BYTES, blob.size - off)) throw new Error("the file changed while it was being hashed");
    hasher.update(new Uint8Array(buf));
    onProgress?.(hasher.taken);
    await hasher.ready();
  }
  return hasher.digest();
}

/** The item digest (hex) of a whole Blob. */
export function hashBlob(blob: Blob, onProgress?: (done: number) => void): Promise<string> {
  return hashRest(new BlockHasher(), blob, onProgress);
}
