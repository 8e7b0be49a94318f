// Where received bytes go. On disk as they arrive where the browser allows it
// (the origin-private file system, or a directory the person picked), in
// memory elsewhere.
import type { FromDisk, ToDisk } from "./disk-protocol";
import { randomId } from "./format";
import { safePath } from "./protocol";

/** Omit over each member of a union (Omit itself merges the union first). */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export interface Sink {
  /** Accepts the next bytes in order; resolves once they are taken over. */
  write(data: Uint8Array): Promise<void>;
  /** Flushes and closes; resolves to the received file, or null when it was written to a picked directory. */
  close(): Promise<Blob | null>;
  abort(): Promise<void>;
  /** True when the bytes go to disk rather than memory. */
  readonly onDisk: boolean;
  /** True when the disk worker writes them (off the page's main thread). */
  readonly inWorker?: boolean;
  /**
   * The disk worker's: asks it to hash what it writes of an item of `size`
   * bytes, as it writes; `sha256` holds the item digest after `close`.
   * False when it cannot hash (then the page hashes).
   */
  hashInWorker?(size: number): boolean;
  readonly sha256?: string | null;
  /**
   * Where writes finish after `write` resolved (the disk worker): rejects
   * with the browser's error as soon as one of them fails. Later writes and
   * `close` reject with it too.
   */
  readonly failure?: Promise<never>;
}

/** A file larger than this held in memory triggers a warning first. */
export const MEMORY_WARN_BYTES = 256 * 1024 * 1024;

// --- memory -----------------------------------------------------------------

class MemorySink implements Sink {
  readonly onDisk = false;
  private parts: Uint8Array[] = [];
  private partBytes = 0;
  private blobs: Blob[] = [];
  constructor(private mime: string) {}

  async write(data: Uint8Array): Promise<void> {
    this.parts.push(data);
    this.partBytes += data.byteLength;
    // Fold pieces into Blobs now and then: fewer objects, and the browser
    // may move large Blobs out of the JS heap.
    if (this.partBytes >= 16 * 1024 * 1024) this.fold();
  }

  private fold(): void {
    if (this.parts.length) this.blobs.push(new Blob(this.parts as Uint8Array<ArrayBuffer>[]));
    this.parts = [];
    this.partBytes = 0;
  }

  async close(): Promise<Blob> {
    this.fold();
    const b = new Blob(this.blobs, { type: this.mime });
    this.blobs = [];
    return b;
  }

  async abort(): Promise<void> {
    this.parts = [];
    this.blobs = [];
  }
}

// --- a file handle (OPFS or a picked directory) -------------------------------

/** Received bytes are gathered into writes this large: every write is a round trip to the
 *  browser's storage process, and Firefox's are dear (1 MiB writes held its OPFS receiving to
 *  about 2/3 of 4 MiB ones, bench-web). */
const COALESCE_BYTES = 4 * 1024 * 1024;

class HandleSink implements Sink {
  readonly onDisk = true;
  private buf: Uint8Array<ArrayBuffer>;
  private used = 0;
  private constructor(private handle: FileSystemFileHandle, private w: FileSystemWritableFileStream, private returnsFile: boolean) {
    this.buf = new Uint8Array(COALESCE_BYTES);
  }

  static async open(handle: FileSystemFileHandle, returnsFile: boolean): Promise<HandleSink> {
    const w = await handle.createWritable({ keepExistingData: false });
    return new HandleSink(handle, w, returnsFile);
  }

  async write(data: Uint8Array): Promise<void> {
    // Small chunks are gathered into COALESCE_BYTES writes: each write is a round trip.
    if (this.used + data.byteLength > this.buf.byteLength) await this.flush();
    if (data.byteLength >= this.buf.byteLength) {
      await this.w.write(data as Uint8Array<ArrayBuffer>);
      return;
    }
    this.buf.set(data, this.used);
    this.used += data.byteLength;
  }

  private async flush(): Promise<void> {
    if (this.used === 0) return;
    const chunk = this.buf.slice(0, this.used);
    this.used = 0;
    await this.w.write(chunk);
  }

  async close(): Promise<Blob | null> {
    await this.flush();
    await this.w.close();
    return this.returnsFile ? await this.handle.getFile() : null;
  }

  async abort(): Promise<void> {
    try {
      await this.w.abort();
    } catch { /* already closed */ }
  }
}

// --- the disk worker (origin-private file system, synchronous handles) ---------

/**
 * Buffers of COALESCE_BYTES one file has at most: one filling on the page,
 * one at the worker being written. A write that finds neither free waits for
 * the worker to hand one back, and that wait holds the receiver's
 * acknowledgements (intake.ts), so the sender stops instead of the page
 * queueing bytes for the worker without bound.
 */
const WORKER_BUFFERS = 2;
/** A worker that has not said whether it can write by then is not used. */
const WORKER_START_MS = 10_000;
/** A file the worker has not opened by then is written on the page instead. */
const WORKER_OPEN_MS = 10_000;

/** The page's one disk worker (disk-worker.ts) and its open files. */
class DiskWorker {
  private nextFile = 1;
  private files = new Map<number, WorkerSink>();
  dead = false;

  private nextReq = 1;
  private reads = new Map<number, { resolve: (m: FromDisk) => void; reject: (e: Error) => void }>();

  /**
   * `sync`: the worker has synchronous access handles (it can write; it can
   * always read). `hashes`: it can hash (hash.ts's WebCrypto or WebAssembly).
   */
  private constructor(private w: Worker, readonly sync: boolean, readonly hashes: boolean) {
    w.onmessage = (e: MessageEvent<FromDisk>) => {
      const m = e.data;
      switch (m.op) {
        case "ready": return;
        case "block": case "digested": case "unread": {
          const r = this.reads.get(m.req);
          this.reads.delete(m.req);
          if (m.op === "unread") r?.reject(new DOMException(m.message, m.name));
          else r?.resolve(m);
          return;
        }
        default: this.files.get(m.file)?.onMessage(m);
      }
    };
    // The worker died: every file still open fails with that, and the next file starts another.
    const died = () => {
      this.dead = true;
      diskWorker = null;
      const err = new Error("the disk worker stopped");
      for (const f of this.files.values()) f.onMessage({ op: "failed", file: 0, name: err.name, message: err.message });
      this.files.clear();
      for (const r of this.reads.values()) r.reject(err);
      this.reads.clear();
    };
    w.onerror = died;
    w.onmessageerror = died;
  }

  /** Starts the worker; null when there is none (or it does not answer). */
  static start(): Promise<DiskWorker | null> {
    if (typeof Worker !== "function" || typeof __DISK_WORKER_URL__ !== "string") return Promise.resolve(null);
    let w: Worker;
    try {
      w = new Worker(__DISK_WORKER_URL__, { name: "privydrop-disk" });
    } catch {
      return Promise.resolve(null); // refused (a content security policy, say)
    }
    return new Promise((resolve) => {
      const give = (ok: boolean, sync = false, hashes = false) => {
        clearTimeout(timer);
        if (ok) return resolve(new DiskWorker(w, sync, hashes));
        w.terminate();
        resolve(null);
      };
      const timer = setTimeout(() => give(false), WORKER_START_MS);
      w.onmessage = (e: MessageEvent<FromDisk>) => {
        const m = e.data;
        if (m.op === "ready") give(true, m.sync, m.hash);
        else give(false);
      };
      w.onerror = () => give(false);
    });
  }

  post(m: ToDisk, transfer: Transferable[] = []): void {
    if (!this.dead) this.w.postMessage(m, transfer);
  }

  /** Posts a read or digest request; resolves with the worker's answer. */
  ask(m: DistributiveOmit<Extract<ToDisk, { op: "read" | "digest" | "sourceDigest" }>, "req">): Promise<FromDisk> {
    if (this.dead) return Promise.reject(new Error("the disk worker stopped"));
    const req = this.nextReq++;
    return new Promise((resolve, reject) => {
      this.reads.set(req, { resolve, reject });
      this.post({ ...m, req });
    });
  }

  /** A file being sent, read in the worker until `close`; `hash`: hashed there as it is read (BlockSource.digest). */
  source(blob: Blob, hash: boolean): BlockSource {
    hash &&= this.hashes;
    const src = this.nextReq++;
    this.post({ op: "source", src, blob, hash });
    return {
      hashes: hash,
      read: async (from, end) => {
        const m = await this.ask({ op: "read", src, from, end });
        if (m.op !== "block") throw new Error("unexpected answer");
        return new Uint8Array(m.buf);
      },
      digest: async () => {
        if (!hash) throw new Error("this source is not hashed");
        const m = await this.ask({ op: "sourceDigest", src });
        if (m.op !== "digested") throw new Error("unexpected answer");
        return m.sha256;
      },
      close: () => this.post({ op: "unsource", src }),
    };
  }

  /** Opens `name` in `dir` (names from the origin-private root) for writing in the worker. */
  async open(handle: FileSystemFileHandle, dir: string[], name: string): Promise<WorkerSink> {
    const file = this.nextFile++;
    const sink = new WorkerSink(this, file, handle, () => this.files.delete(file));
    this.files.set(file, sink);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        sink.request("opened", { op: "open", file, dir, name }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("the disk worker did not open the file")), WORKER_OPEN_MS);
        }),
      ]);
    } catch (e) {
      // Should it open the file after all, it closes it again.
      this.post({ op: "abort", file });
      this.files.delete(file);
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return sink;
  }
}

let diskWorker: Promise<DiskWorker | null> | null = null;

function getDiskWorker(): Promise<DiskWorker | null> {
  diskWorker ??= DiskWorker.start();
  return diskWorker;
}

/**
 * Gets receiving ready before the first file is asked for: this tab's folder
 * (and the removal of folders closed tabs left behind) and the disk worker
 * with its synchronous handles. Called when an offer lists files, so none
 * of it waits between a click and the request, nor runs during the first
 * transfer. Best effort: whatever fails here is tried again by `openSink`.
 */
export function prepareReceiving(): void {
  void getTabDir().then((dir) => (dir ? getDiskWorker() : null)).catch(() => undefined);
}

/** Reads blocks of one file being sent. */
export interface BlockSource {
  /** True when the worker hashes the blocks it reads (asked for, and it can hash). */
  readonly hashes: boolean;
  /** Bytes `from` to `end` (the caller checks the length). */
  read(from: number, end: number): Promise<Uint8Array>;
  /**
   * Where `hashes`, once the reads are done: the item digest (hex) of the
   * file; what the reads did not cover, the worker reads for it.
   */
  digest(): Promise<string>;
  close(): void;
}

/**
 * A reader of `blob` in the disk worker: each block is read there and
 * transferred to the page, so the copy out of the browser's file service is
 * off the page's main thread; with `hash` the worker also hashes the blocks
 * as it reads them. Null where no worker runs (read on the page).
 */
export async function workerSource(blob: Blob, hash = false): Promise<BlockSource | null> {
  return (await getDiskWorker())?.source(blob, hash) ?? null;
}

/** The item digest (hex) of a whole Blob, read and hashed in the disk worker; null where none runs or it cannot hash. */
export async function workerDigest(blob: Blob): Promise<string | null> {
  const w = await getDiskWorker();
  if (!w?.hashes) return null;
  const m = await w.ask({ op: "digest", blob });
  if (m.op !== "digested") throw new Error("unexpected answer");
  return m.sha256;
}

/**
 * A received file written by the disk worker. `write` copies into the
 * buffer being filled (the only copy on the page) and resolves; a full
 * buffer is transferred to the worker, not copied.
 */
class WorkerSink implements Sink {
  readonly onDisk = true;
  readonly inWorker = true;
  readonly failure: Promise<never>;
  private fail!: (e: Error) => void;
  private error: Error | null = null;
  private cur: Uint8Array<ArrayBuffer> | null = null;
  private used = 0;
  private free: ArrayBuffer[] = [];
  private made = 0;
  private bufferWaiters: (() => void)[] = [];
  private reply: { op: FromDisk["op"]; resolve: () => void; reject: (e: Error) => void } | null = null;
  private done = false;
  /** The item digest (hex) of what was written, once closed, when `hashInWorker` asked for it. */
  sha256: string | null = null;
  /** The item's size where `hashInWorker` gave it (-1: unknown), and the bytes taken so far. */
  private size = -1;
  private taken = 0;

  constructor(private worker: DiskWorker, private file: number, private handle: FileSystemFileHandle,
              private forget: () => void) {
    this.failure = new Promise<never>((_, reject) => { this.fail = reject; });
    this.failure.catch(() => undefined); // observed by whoever cares; never unhandled
  }

  /** Posts `m` and resolves on the worker's `op` answer, rejects on a failure. */
  request(op: FromDisk["op"], m: ToDisk): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    if (this.worker.dead) return Promise.reject(new Error("the disk worker stopped"));
    return new Promise<void>((resolve, reject) => {
      this.reply = { op, resolve, reject };
      this.worker.post(m);
    });
  }

  onMessage(m: FromDisk): void {
    if (m.op === "written") {
      this.free.push(m.buf);
      for (const w of this.bufferWaiters.splice(0)) w();
      return;
    }
    if (m.op === "failed") {
      if (!this.error) {
        this.error = new DOMException(m.message, m.name);
        this.fail(this.error);
      }
      for (const w of this.bufferWaiters.splice(0)) w();
      const r = this.reply;
      this.reply = null;
      r?.reject(this.error);
      return;
    }
    if (m.op === "closed") this.sha256 = m.sha256 ?? null;
    if (this.reply?.op === m.op) {
      const r = this.reply;
      this.reply = null;
      r.resolve();
    }
  }

  /**
   * Before the first write: the worker hashes the `size` bytes it writes as
   * each write comes, and the item digest is `sha256` once closed. The page
   * neither copies them for hashing nor hashes. False, and nothing asked,
   * when the worker cannot hash.
   */
  hashInWorker(size: number): boolean {
    if (!this.worker.hashes) return false;
    this.size = size;
    this.worker.post({ op: "hash", file: this.file, size });
    return true;
  }

  private async buffer(): Promise<Uint8Array<ArrayBuffer>> {
    for (;;) {
      if (this.error) throw this.error;
      const b = this.free.pop();
      if (b) return new Uint8Array(b);
      if (this.made < WORKER_BUFFERS) {
        this.made++;
        return new Uint8Array(COALESCE_BYTES);
      }
      await new Promise<void>((r) => this.bufferWaiters.push(r));
    }
  }

  private send(): void {
    if (!this.cur || this.used === 0) return;
    const buf = this.cur.buffer;
    this.worker.post({ op: "write", file: this.file, buf, len: this.used }, [buf]);
    this.cur = null;
    this.used = 0;
  }

  async write(data: Uint8Array): Promise<void> {
    if (this.error) throw this.error;
    let off = 0;
    while (off < data.byteLength) {
      this.cur ??= await this.buffer();
      const n = Math.min(data.byteLength - off, this.cur.byteLength - this.used);
      this.cur.set(n === data.byteLength ? data : data.subarray(off, off + n), this.used);
      this.used += n;
      off += n;
      if (this.used === this.cur.byteLength) this.send();
    }
    this.taken += data.byteLength;
    // The last bytes go at once, not with the close: the worker then hashes
    // the last block while the page handles the item's end.
    if (this.taken === this.size) this.send();
  }

  async close(): Promise<Blob> {
    if (this.error) throw this.error;
    this.send();
    try {
      // The worker closes the file after every write before it.
      await this.request("closed", { op: "close", file: this.file });
    } finally {
      this.finish();
    }
    return await this.handle.getFile();
  }

  async abort(): Promise<void> {
    if (this.done || this.worker.dead) return;
    this.cur = null;
    this.error ??= new Error("aborted");
    for (const w of this.bufferWaiters.splice(0)) w();
    const r = this.reply;
    this.reply = null;
    r?.reject(this.error);
    await new Promise<void>((resolve) => {
      this.reply = { op: "aborted", resolve, reject: () => resolve() };
      this.worker.post({ op: "abort", file: this.file });
    });
    this.finish();
  }

  private finish(): void {
    this.done = true;
    this.free = [];
    this.forget();
  }
}

// --- the origin-private file system ------------------------------------------

const OPFS_DIR = "privydrop-received";
let tabDir: Promise<FileSystemDirectoryHandle | null> | null = null;
/** The name of this tab's folder below OPFS_DIR (the disk worker finds files by name). */
let tabDirName = "";

/** True when received files can be written to disk as they arrive (OPFS with createWritable). */
export function opfsUsable(): boolean {
  return typeof navigator.storage?.getDirectory === "function" &&
    typeof FileSystemFileHandle !== "undefined" && "createWritable" in FileSystemFileHandle.prototype &&
    typeof navigator.locks?.request === "function";
}

/**
 * This tab's own folder in the origin-private file system. A Web Lock named
 * after it is held while the tab lives, so a later tab can tell which folders
 * were left behind by closed tabs and remove them.
 */
function getTabDir(): Promise<FileSystemDirectoryHandle | null> {
  tabDir ??= (async () => {
    if (!opfsUsable()) return null;
    try {
      const root = await navigator.storage.getDirectory();
      const base = await root.getDirectoryHandle(OPFS_DIR, { create: true });
      const mine = `tab-${randomId(8)}`;
      await new Promise<void>((held) => {
        void navigator.locks.request(`${OPFS_DIR}/${mine}`, () => {
          held();
          return new Promise<void>(() => { /* held until the tab goes away */ });
        });
      });
      void removeLeftovers(base, mine);
      const dir = await base.getDirectoryHandle(mine, { create: true });
      tabDirName = mine;
      return dir;
    } catch {
      return null;
    }
  })();
  return tabDir;
}

async function removeLeftovers(base: FileSystemDirectoryHandle, mine: string): Promise<void> {
  try {
    for await (const name of base.keys()) {
      if (name === mine) continue;
      await navigator.locks.request(`${OPFS_DIR}/${name}`, { ifAvailable: true }, async (lock) => {
        if (lock) await base.removeEntry(name, { recursive: true }).catch(() => undefined);
      });
    }
  } catch { /* best effort */ }
}

export interface SinkPlan {
  /** "disk": written to disk as it arrives; "memory": buffered in memory. */
  where: "disk" | "memory";
  /** Free space the browser reports for us, when known. */
  free?: number;
}

/** Where a file of `size` bytes would be received, decided before asking for it. */
export async function planSink(size: number): Promise<SinkPlan> {
  const dir = await getTabDir();
  if (!dir) return { where: "memory" };
  try {
    const est = await navigator.storage.estimate();
    if (est.quota !== undefined && est.usage !== undefined) {
      const free = est.quota - est.usage;
      if (size > free) return { where: "memory", free };
      return { where: "disk", free };
    }
  } catch { /* no estimate: try the disk */ }
  return { where: "disk" };
}

/** A sink for one received file, on disk when `plan.where` says so. */
export async function openSink(plan: SinkPlan, mime: string): Promise<Sink> {
  if (plan.where === "disk") {
    const dir = await getTabDir();
    if (dir) {
      try {
        const name = `rx-${randomId(10)}`;
        let h = await dir.getFileHandle(name, { create: true });
        const worker = await getDiskWorker();
        if (worker?.sync) {
          try {
            return await worker.open(h, [OPFS_DIR, tabDirName], name);
          } catch {
            // Written on the page instead, into a file of its own (the worker may still hold that one).
            h = await dir.getFileHandle(`rx-${randomId(10)}`, { create: true });
          }
        }
        return await HandleSink.open(h, true);
      } catch { /* fall back to memory */ }
    }
  }
  return new MemorySink(mime);
}

/** Temporary storage for a zip being built, on disk when possible. */
export async function openScratch(): Promise<{ writable: WritableStream<Uint8Array>; finish(): Promise<Blob> } | null> {
  const dir = await getTabDir();
  if (!dir) return null;
  try {
    const h = await dir.getFileHandle(`zip-${randomId(10)}`, { create: true });
    const w = await h.createWritable({ keepExistingData: false });
    return { writable: w as WritableStream<Uint8Array>, finish: () => h.getFile() };
  } catch {
    return null;
  }
}

// --- a directory the person picked (File System Access API) ------------------

interface DirPickerWindow {
  showDirectoryPicker?: (opts?: { mode?: "read" | "readwrite"; id?: string }) => Promise<FileSystemDirectoryHandle>;
}

export function canPickDirectory(): boolean {
  return typeof (window as unknown as DirPickerWindow).showDirectoryPicker === "function";
}

export async function pickDirectory(): Promise<FileSystemDirectoryHandle | null> {
  const w = window as unknown as DirPickerWindow;
  if (!w.showDirectoryPicker) return null;
  try {
    return await w.showDirectoryPicker({ mode: "readwrite", id: "privydrop-save" });
  } catch {
    return null; // cancelled
  }
}

/** A sink writing `path` (made safe) below `dir`, creating folders on the way. */
export async function openDirSink(dir: FileSystemDirectoryHandle, path: string): Promise<Sink> {
  const safe = safePath(path) ?? "unnamed";
  const segs = safe.split("/");
  let d = dir;
  for (const s of segs.slice(0, -1)) d = await d.getDirectoryHandle(s, { create: true });
  const h = await d.getFileHandle(segs[segs.length - 1], { create: true });
  return HandleSink.open(h, false);
}

/** Copies an already received Blob into `path` below `dir`. */
export async function copyToDir(dir: FileSystemDirectoryHandle, path: string, blob: Blob): Promise<void> {
  const sink = await openDirSink(dir, path);
  const reader = blob.stream().getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    await sink.write(value);
  }
  await sink.close();
}

/** Hands a Blob to the browser's downloads under `name`. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.rel = "noopener";
  a.style.display = "none";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10 * 60 * 1000);
}
