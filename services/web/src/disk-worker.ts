// The disk worker: a dedicated Web Worker doing the page's file work off its
// main thread (services/web/README.md, "Where received bytes go" and "Where
// sent bytes come from").
//
// Receiving: it writes received files into the origin-private file system
// with synchronous access handles (createSyncAccessHandle exists only in
// workers). The page only gathers chunks into 4 MiB buffers and transfers
// them here (no copy); the write, which through FileSystemWritableFileStream
// was a copy handed to the browser's storage process on the main thread,
// happens here. Each buffer goes back to the page once written, so the page
// never has more than its two buffers per file out (storage.ts, WorkerSink).
// Where the page asks, it also hashes what it writes, block by block as each
// write comes (docs/datachannel-protocol.md §7).
//
// Sending: it reads the blocks of a file being sent and transfers them to
// the page, hashing them as they go where the page asks, and hashes whole
// files.
//
// Message types: disk-protocol.ts.
import { createSHA256 } from "hash-wasm";
import type { FromDisk, ToDisk } from "./disk-protocol";
import { BlockHasher, hasWebCrypto, hashBlob, hashRest } from "./hash";

/** What this file needs of the handle (lib.dom has no such type). */
interface SyncHandle {
  write(data: Uint8Array, opts: { at: number }): number;
  truncate(size: number): void;
  close(): void;
}

interface OpenFile {
  handle: SyncHandle | null;
  at: number;
  /** Set once something failed: later writes are dropped, close reports it again. */
  failed: { name: string; message: string } | null;
  /** Operations on this file run in order; opening and hashing are asynchronous. */
  queue: Promise<void>;
  /** The item digest of what was written, when "hash" asked for it. */
  hasher: BlockHasher | null;
}

const scope = self as unknown as {
  postMessage(m: FromDisk, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<ToDisk>) => void) | null;
};
const files = new Map<number, OpenFile>();
/**
 * Files are opened one after another: several opened at once (a folder's
 * first files) left some of them never opened in Chromium 156 under load.
 */
let opening: Promise<unknown> = Promise.resolve();

function post(m: FromDisk, transfer: Transferable[] = []): void {
  scope.postMessage(m, transfer);
}

function describe(e: unknown): { name: string; message: string } {
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: "Error", message: String(e) };
}

async function open(dir: string[], name: string): Promise<SyncHandle> {
  let d = await navigator.storage.getDirectory();
  for (const seg of dir) d = await d.getDirectoryHandle(seg);
  const h = await d.getFileHandle(name, { create: true });
  const sync = await (h as unknown as { createSyncAccessHandle(): Promise<SyncHandle> }).createSyncAccessHandle();
  sync.truncate(0);
  return sync;
}

function fail(file: number, f: OpenFile, e: unknown): void {
  if (!f.failed) {
    f.failed = describe(e);
    post({ op: "failed", file, ...f.failed });
  }
}

function closeHandle(f: OpenFile): void {
  try {
    f.handle?.close();
  } catch { /* already closed */ }
  f.handle = null;
}

interface Source {
  blob: Blob;
  /** The item digest of the blocks read, from byte 0 on; null when not asked. */
  hasher: BlockHasher | null;
  /** Reads (and sourceDigest) run one after another, so blocks are hashed and handed over in order. */
  queue: Promise<void>;
}
const sources = new Map<number, Source>();

/** Reading a file being sent: the copy from the browser's file service into memory happens here. */
function read(m: Extract<ToDisk, { op: "read" | "digest" | "sourceDigest" }>): void {
  const fault = (e: unknown) => post({ op: "unread", req: m.req, ...describe(e) });
  if (m.op === "digest") {
    hashBlob(m.blob).then((sha256) => post({ op: "digested", req: m.req, sha256 }), fault);
    return;
  }
  const s = sources.get(m.src);
  if (!s) {
    fault(new Error("no such source"));
    return;
  }
  s.queue = s.queue.then(async () => {
    try {
      if (m.op === "sourceDigest") {
        if (!s.hasher) throw new Error("this source is not hashed");
        // What the reads did not cover (a request that stopped early) is read here.
        const sha256 = await hashRest(s.hasher, s.blob);
        s.hasher = null;
        post({ op: "digested", req: m.req, sha256 });
        return;
      }
      const buf = await s.blob.slice(m.from, m.end).arrayBuffer();
      // Hashing reads the block before it returns (hash.ts), so the block
      // then goes to the page at once and the digest runs meanwhile.
      s.hasher?.updateAt(m.from, new Uint8Array(buf));
      post({ op: "block", req: m.req, buf }, [buf]);
    } catch (e) {
      fault(e);
      return;
    }
    // The next read waits should hashing fall behind (as for writes). This
    // request is answered already: a failed block digest is for
    // sourceDigest to report (the page then reads the file for the digest
    // on its own), not a second answer to this read.
    await s.hasher?.ready().catch(() => undefined);
  });
}

function handle(m: ToDisk): void {
  switch (m.op) {
    case "source":
      sources.set(m.src, { blob: m.blob, hasher: m.hash ? new BlockHasher(m.blob.size) : null, queue: Promise.resolve() });
      return;
    case "unsource": sources.delete(m.src); return;
    case "read": case "digest": case "sourceDigest": read(m); return;
    default: break;
  }
  if (m.op === "open") {
    const f: OpenFile = { handle: null, at: 0, failed: null, queue: Promise.resolve(), hasher: null };
    files.set(m.file, f);
    const opened = opening.then(() => open(m.dir, m.name));
    // The next waits for this one, but not for ever (the page gives up on it after 10 s).
    opening = Promise.race([opened.catch(() => undefined), new Promise((r) => setTimeout(r, 5000))]);
    f.queue = opened.then(
      (h) => {
        f.handle = h;
        post({ op: "opened", file: m.file });
      },
      (e) => fail(m.file, f, e),
    );
    return;
  }
  const f = files.get(m.file);
  if (!f) return;
  const file = m.file;
  f.queue = f.queue.then(async () => {
    switch (m.op) {
      case "hash":
        f.hasher = new BlockHasher(m.size);
        break;
      case "write":
        if (f.handle && !f.failed) {
          try {
            const data = new Uint8Array(m.buf, 0, m.len);
            const n = f.handle.write(data, { at: f.at });
            f.at += n;
            // A short write means the disk or the quota ran out.
            if (n !== m.len) throw new DOMException(`wrote ${n} of ${m.len} bytes`, "QuotaExceededError");
            // Read before it returns (hash.ts): the buffer can go back at
            // once, unless hashing fell behind; then it waits, and with it
            // the page's acks.
            f.hasher?.update(data);
            await f.hasher?.ready();
          } catch (e) {
            fail(file, f, e);
          }
        }
        post({ op: "written", file, buf: m.buf }, [m.buf]);
        break;
      case "close": {
        let sha256: string | undefined;
        if (f.handle && !f.failed) {
          try {
            // No flush(): it would wait for the disk, and the file is scratch
            // space, read back once by the page (getFile) for the download.
            f.handle.close();
            f.handle = null;
            if (f.hasher) sha256 = await f.hasher.digest();
          } catch (e) {
            fail(file, f, e);
          }
        }
        f.hasher = null;
        closeHandle(f);
        files.delete(file);
        if (!f.failed) post({ op: "closed", file, sha256 });
        break;
      }
      case "abort":
        f.hasher = null;
        try {
          f.handle?.truncate(0);
        } catch { /* best effort: the file is removed with the tab's folder */ }
        closeHandle(f);
        files.delete(file);
        post({ op: "aborted", file });
        break;
    }
  });
}

scope.onmessage = (e) => handle(e.data);

const fh = (globalThis as { FileSystemFileHandle?: { prototype: object } }).FileSystemFileHandle;
// The page hashes itself where this worker can do neither WebCrypto nor
// WebAssembly (a content security policy may refuse a worker the latter);
// WebAssembly is tried only where WebCrypto is missing.
(hasWebCrypto() ? Promise.resolve(true) : createSHA256().then(() => true, () => false)).then((hash) => post({
  op: "ready",
  sync: typeof navigator.storage?.getDirectory === "function" && !!fh && "createSyncAccessHandle" in fh.prototype,
  hash,
}));
