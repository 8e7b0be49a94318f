// SHA-256 of items, two ways. Streaming (hash-wasm): piece by piece, never
// held whole, for any size. In one go by the browser's own SHA-256
// (WebCrypto), for items up to ONE_SHOT_HASH_BYTES: several times faster
// (native code, SHA extensions where the CPU has them) and off the page's
// main thread, at the price of holding the item in memory once, briefly.
// Both give the same digest; which one ran is not visible on the wire.
import { createSHA256, type IHasher } from "hash-wasm";

export type Hasher = IHasher;

export async function newHasher(): Promise<Hasher> {
  const h = await createSHA256();
  h.init();
  return h;
}

const READ_BYTES = 4 * 1024 * 1024;

/** SHA-256 of a Blob read in pieces; `onProgress` gets the bytes hashed so far. */
export async function hashBlob(blob: Blob, onProgress?: (done: number) => void): Promise<string> {
  const h = await newHasher();
  for (let off = 0; off < blob.size; off += READ_BYTES) {
    const buf = await blob.slice(off, off + READ_BYTES).arrayBuffer();
    h.update(new Uint8Array(buf));
    onProgress?.(Math.min(blob.size, off + READ_BYTES));
  }
  return h.digest("hex");
}

/**
 * Largest item hashed in one go. bench-web found the streaming hash the
 * costliest thing either page does per byte (docs/benchmarks.md, "Web client
 * throughput"); above this size memory wins over speed.
 */
export const ONE_SHOT_HASH_BYTES = 128 * 1024 * 1024;

/** True when an item of `size` bytes is hashed in one go (WebCrypto exists only in secure contexts). */
export function hashesInOneGo(size: number): boolean {
  return size <= ONE_SHOT_HASH_BYTES && typeof globalThis.crypto?.subtle?.digest === "function";
}

/** Lowercase hex of a digest, as `end` and `result` carry it. */
export function hex(digest: ArrayBuffer): string {
  let out = "";
  for (const b of new Uint8Array(digest)) out += b.toString(16).padStart(2, "0");
  return out;
}

/** SHA-256 (hex) of a whole Blob by WebCrypto; for items where `hashesInOneGo` holds. */
export async function digestBlob(blob: Blob): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
}

/** Bytes held for hashing in one go now, across the page (OneGoHashers and the disk worker's): at most ONE_SHOT_HASH_BYTES. */
let heldForHashing = 0;

/**
 * Reserves `size` bytes of the one-go budget for an item hashed in one go
 * elsewhere (the disk worker gathers what it writes, storage.ts). Returns
 * the release (idempotent), or null when the item is to be streamed.
 */
export function reserveOneGo(size: number): (() => void) | null {
  if (!hashesInOneGo(size) || heldForHashing + size > ONE_SHOT_HASH_BYTES) return null;
  heldForHashing += size;
  let held = true;
  return () => {
    if (held) heldForHashing -= size;
    held = false;
  };
}

/**
 * The receiving side's hash in one go: the bytes taken are copied, in order,
 * into one buffer of the item's size, and hashed by WebCrypto at the end.
 * Reading the stored file back instead cost Firefox about 0.4 s per 64 MiB
 * after the last byte (bench-web). All of them together hold at most
 * ONE_SHOT_HASH_BYTES: `create` returns null when the item does not fit
 * now, and the caller streams instead.
 */
export class OneGoHasher {
  private buf: Uint8Array<ArrayBuffer> | null;
  private pos = 0;

  private constructor(size: number) {
    this.buf = new Uint8Array(size);
    heldForHashing += size;
  }

  static create(size: number): OneGoHasher | null {
    if (!hashesInOneGo(size) || heldForHashing + size > ONE_SHOT_HASH_BYTES) return null;
    return new OneGoHasher(size);
  }

  /** The next bytes taken, in order (the Intake never passes the announced size). */
  update(data: Uint8Array): void {
    if (!this.buf || this.pos + data.byteLength > this.buf.byteLength) throw new Error("more bytes than announced");
    this.buf.set(data, this.pos);
    this.pos += data.byteLength;
  }

  /** SHA-256 (hex) of the bytes taken; releases the buffer. */
  async digest(): Promise<string> {
    if (!this.buf) throw new Error("already digested");
    const bytes = this.buf.subarray(0, this.pos);
    try {
      return hex(await crypto.subtle.digest("SHA-256", bytes));
    } finally {
      this.release();
    }
  }

  /** Gives the buffer back (an item that failed or was dropped); idempotent. */
  release(): void {
    if (!this.buf) return;
    heldForHashing -= this.buf.byteLength;
    this.buf = null;
  }
}
