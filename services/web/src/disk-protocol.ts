// Messages between the page and its disk worker (disk-worker.ts), which writes
// received files into the origin-private file system with synchronous access
// handles, off the page's main thread (services/web/README.md, "Where received
// bytes go"). Types only: nothing here runs.

/** Page → worker. `file` is the page's number for one open file. */
export type ToDisk =
  /** Opens (creates) `name` in the folder `dir` (names from the origin-private root). */
  | { op: "open"; file: number; dir: string[]; name: string }
  /** Appends the first `len` bytes of `buf` (transferred, handed back by "written"). */
  | { op: "write"; file: number; buf: ArrayBuffer; len: number }
  /** Flushes and closes the file once every write before it is done. */
  | { op: "close"; file: number }
  /** Empties and closes the file (what was written is dropped). */
  | { op: "abort"; file: number };

/** Worker → page. */
export type FromDisk =
  /** Sent once at start: whether synchronous access handles exist here. */
  | { op: "ready"; sync: boolean }
  | { op: "opened"; file: number }
  /** One write is on disk; `buf` comes back for the next. */
  | { op: "written"; file: number; buf: ArrayBuffer }
  | { op: "closed"; file: number }
  | { op: "aborted"; file: number }
  /** An open, write or close failed: the browser's error, by name and message. Later writes are dropped. */
  | { op: "failed"; file: number; name: string; message: string };
