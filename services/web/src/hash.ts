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

/** SHA-256 (hex) of a whole Blob by WebCrypto; for items where `hashesInOneGo` holds. */
export async function digestBlob(blob: Blob): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
  let hex = "";
  for (const b of d) hex += b.toString(16).padStart(2, "0");
  return hex;
}
