// The disk worker: a dedicated Web Worker that writes received files into the
// origin-private file system with synchronous access handles
// (createSyncAccessHandle exists only in workers). The page's main thread
// only gathers chunks into large buffers and transfers them here (no copy);
// the write itself, which through FileSystemWritableFileStream was a copy
// handed to the browser's storage process on the main thread, happens here.
// Each buffer goes back to the page once written, so the page never has more
// than its few buffers out (storage.ts, WorkerSink). Message types:
// disk-protocol.ts; the design: docs/datachannel-protocol.md §6.
import type { FromDisk, ToDisk } from "./disk-protocol";

/** What this file needs of the handle (lib.dom has no such type). */
interface SyncHandle {
  write(data: Uint8Array, opts: { at: number }): number;
  truncate(size: number): void;
  flush(): void;
  close(): void;
}

interface OpenFile {
  handle: SyncHandle | null;
  at: number;
  /** Set once something failed: later writes are dropped, close reports it again. */
  failed: { name: string; message: string } | null;
  /** Operations on this file run in order; opening is asynchronous. */
  queue: Promise<void>;
}

const scope = self as unknown as {
  postMessage(m: FromDisk, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<ToDisk>) => void) | null;
};
const files = new Map<number, OpenFile>();

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

function handle(m: ToDisk): void {
  if (m.op === "open") {
    const f: OpenFile = { handle: null, at: 0, failed: null, queue: Promise.resolve() };
    files.set(m.file, f);
    f.queue = open(m.dir, m.name).then(
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
  f.queue = f.queue.then(() => {
    switch (m.op) {
      case "write":
        if (f.handle && !f.failed) {
          try {
            const n = f.handle.write(new Uint8Array(m.buf, 0, m.len), { at: f.at });
            f.at += n;
            // A short write means the disk or the quota ran out.
            if (n !== m.len) throw new DOMException(`wrote ${n} of ${m.len} bytes`, "QuotaExceededError");
          } catch (e) {
            fail(file, f, e);
          }
        }
        post({ op: "written", file, buf: m.buf }, [m.buf]);
        break;
      case "close":
        if (f.handle && !f.failed) {
          try {
            f.handle.flush();
            f.handle.close();
            f.handle = null;
          } catch (e) {
            fail(file, f, e);
          }
        }
        closeHandle(f);
        files.delete(file);
        if (!f.failed) post({ op: "closed", file });
        break;
      case "abort":
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
post({
  op: "ready",
  sync: typeof navigator.storage?.getDirectory === "function" && !!fh && "createSyncAccessHandle" in fh.prototype,
});
