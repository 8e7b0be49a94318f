// Streaming SHA-256 (hash-wasm): files are hashed piece by piece, never held whole.
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
