// Messages between the page and its disk worker (disk-worker.ts), which writes
// received files into the origin-private file system with synchronous access
// handles, and reads files being sent, off the page's main thread
// (services/web/README.md, "Where received bytes go" and "Where sent bytes
// come from"). Types only: nothing here runs.

/** Page → worker. `file` is the page's number for one open file. */
export type ToDisk =
  /** Opens (creates) `name` in the folder `dir` (names from the origin-private root). */
  | { op: "open"; file: number; dir: string[]; name: string }
  /**
   * Before any write: hash the bytes written, block by block as each write
   * comes (hash.ts); the item digest comes with "closed". `size`: the item's.
   */
  | { op: "hash"; file: number; size: number }
  /** Appends the first `len` bytes of `buf` (transferred, handed back by "written"). */
  | { op: "write"; file: number; buf: ArrayBuffer; len: number }
  /** Flushes and closes the file once every write before it is done. */
  | { op: "close"; file: number }
  /** Empties and closes the file (what was written is dropped). */
  | { op: "abort"; file: number }
  /**
   * A file being sent, read by "read" from now on as `src` (a Blob is passed
   * by reference, not copied). `hash`: the blocks read are hashed as they
   * go, from byte 0 on; "sourceDigest" asks for the result.
   */
  | { op: "source"; src: number; blob: Blob; hash: boolean }
  /** Bytes `from` to `end` of source `src`, answered by "block" or "unread" with the same `req`. */
  | { op: "read"; src: number; req: number; from: number; end: number }
  | { op: "unsource"; src: number }
  /**
   * The item digest of source `src`, once the reads before it are done:
   * "digested" (what the reads did not cover, the worker reads for it), or
   * "unread" when reading failed.
   */
  | { op: "sourceDigest"; src: number; req: number }
  /** The item digest of a whole Blob, read in pieces: "digested" or "unread". */
  | { op: "digest"; req: number; blob: Blob };

/** Worker → page. */
export type FromDisk =
  /**
   * Sent once at start: whether synchronous access handles exist here, and
   * whether it can hash (WebCrypto, or else hash-wasm's WebAssembly, which a
   * content security policy may refuse a worker but not the page).
   */
  | { op: "ready"; sync: boolean; hash: boolean }
  | { op: "opened"; file: number }
  /** One write is on disk; `buf` comes back for the next. */
  | { op: "written"; file: number; buf: ArrayBuffer }
  /** The file is closed; `sha256`, the item digest (hex), when "hash" asked for it. */
  | { op: "closed"; file: number; sha256?: string }
  | { op: "aborted"; file: number }
  /** An open, write or close failed: the browser's error, by name and message. Later writes are dropped. */
  | { op: "failed"; file: number; name: string; message: string }
  /** The bytes a "read" asked for (transferred). */
  | { op: "block"; req: number; buf: ArrayBuffer }
  | { op: "digested"; req: number; sha256: string }
  /** A "read" or "digest" failed: the browser's error. */
  | { op: "unread"; req: number; name: string; message: string };
