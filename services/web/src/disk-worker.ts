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
// Where the page asks, it also hashes what it writes: gathered and hashed in
// one go at the end, or as each write comes for items too large to hold
// (docs/datachannel-protocol.md §7).
//
// Sending: it reads the blocks of a file being sent and transfers them to
// the page, hashing them as they go where the page asks (items too large to
// hash in one go), and hashes whole items, in one go or in pieces.
//
// Message types: disk-protocol.ts.
import { createSHA256, type IHasher } from "hash-wasm";
import type { FromDisk, ToDisk } from "./disk-protocol";
import { digestBlob, hashBlob, hex } from "./hash";

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
  /** The bytes written, gathered for hashing in one go ("hash"). */
  gather: Uint8Array<ArrayBuffer> | null;
  gathered: number;
  /** The digest of `gather`, started as soon as its last byte came (close waits for it). */
  digest: Promise<ArrayBuffer> | null;
  /** The streaming hash of what was written ("hash" without oneGo). */
  stream: IHasher | null;
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
  /** Hashing the blocks read, from byte 0 in order: null when not asked, or once a read broke the order. */
  hasher: IHasher | Promise<IHasher> | null;
  /** Bytes hashed so far. */
  hashed: number;
  /** Reads (and sourceDigest) run one after another, so blocks are hashed and handed over in order. */
  queue: Promise<void>;
}
const sources = new Map<number, Source>();

/** Reading a file being sent: the copy from the browser's file service into memory happens here. */
function read(m: Extract<ToDisk, { op: "read" | "digest" | "sourceDigest" }>): void {
  const fault = (e: unknown) => post({ op: "unread", req: m.req, ...describe(e) });
  if (m.op === "digest") {
    (async () => {
      const sha256 = m.oneGo ? await digestBlob(m.blob) : await hashBlob(m.blob);
      post({ op: "digested", req: m.req, sha256 });
    })().catch(fault);
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
        const h = await s.hasher;
        if (!h || s.hashed !== s.blob.size) throw new Error("the reads did not cover the file in order");
        post({ op: "digested", req: m.req, sha256: h.digest("hex") });
        s.hasher = null;
        return;
      }
      const buf = await s.blob.slice(m.from, m.end).arrayBuffer();
      // A hash that could not start fails only the sourceDigest, never the read.
      const h = await Promise.resolve(s.hasher).catch(() => null);
      const inOrder = h !== null && m.from === s.hashed;
      if (!inOrder) s.hasher = null;
      // The block goes to the page first and is hashed after, from a copy
      // (the transfer empties the buffer here): the page sends while the
      // worker hashes, rather than waiting for it.
      const copy = inOrder ? new Uint8Array(buf.slice(0)) : null;
      post({ op: "block", req: m.req, buf }, [buf]);
      if (h && copy) {
        h.update(copy);
        s.hashed += copy.byteLength;
      }
    } catch (e) {
      fault(e);
    }
  });
}

function handle(m: ToDisk): void {
  switch (m.op) {
    case "source": {
      const hasher = m.hash ? createSHA256().then((h) => h.init()) : null;
      hasher?.catch(() => undefined); // sourceDigest reports it
      sources.set(m.src, { blob: m.blob, hasher, hashed: 0, queue: Promise.resolve() });
      return;
    }
    case "unsource": sources.delete(m.src); return;
    case "read": case "digest": case "sourceDigest": read(m); return;
    default: break;
  }
  if (m.op === "open") {
    const f: OpenFile = { handle: null, at: 0, failed: null, queue: Promise.resolve(), gather: null, gathered: 0, digest: null, stream: null };
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
        try {
          if (m.oneGo) {
            f.gather = new Uint8Array(m.size);
          } else {
            f.stream = await createSHA256();
            f.stream.init();
          }
        } catch (e) {
          fail(file, f, e); // no memory for it, or no WebAssembly
        }
        break;
      case "write":
        if (f.handle && !f.failed) {
          try {
            const data = new Uint8Array(m.buf, 0, m.len);
            const n = f.handle.write(data, { at: f.at });
            f.at += n;
            // A short write means the disk or the quota ran out.
            if (n !== m.len) throw new DOMException(`wrote ${n} of ${m.len} bytes`, "QuotaExceededError");
            f.stream?.update(data);
            if (f.gather) {
              if (f.gathered + m.len > f.gather.byteLength) throw new Error("more bytes than announced");
              f.gather.set(data, f.gathered);
              f.gathered += m.len;
              // Every announced byte is in: hash now, while the page learns
              // that the item ended and asks to close (it waits for this).
              if (f.gathered === f.gather.byteLength) {
                f.digest = crypto.subtle.digest("SHA-256", f.gather);
                f.digest.catch(() => undefined); // close reports it
              }
            }
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
            if (f.gather) sha256 = hex(await (f.digest ?? crypto.subtle.digest("SHA-256", f.gather.subarray(0, f.gathered))));
            else if (f.stream) sha256 = f.stream.digest("hex");
          } catch (e) {
            fail(file, f, e);
          }
        }
        f.gather = null;
        f.digest = null;
        f.stream = null;
        closeHandle(f);
        files.delete(file);
        if (!f.failed) post({ op: "closed", file, sha256 });
        break;
      }
      case "abort":
        f.digest = null;
        try {
          f.handle?.truncate(0);
        } catch { /* best effort: the file is removed with the tab's folder */ }
        f.gather = null;
        f.stream = null;
        closeHandle(f);
        files.delete(file);
        post({ op: "aborted", file });
        break;
    }
  });
}

scope.onmessage = (e) => handle(e.data);

const fh = (globalThis as { FileSystemFileHandle?: { prototype: object } }).FileSystemFileHandle;
// The page hashes in pieces itself where this worker cannot.
createSHA256().then(() => true, () => false).then((stream) => post({
  op: "ready",
  sync: typeof navigator.storage?.getDirectory === "function" && !!fh && "createSyncAccessHandle" in fh.prototype,
  stream,
}));
