// Where received bytes go. On disk as they arrive where the browser allows it
// (the origin-private file system, or a directory the person picked), in
// memory elsewhere.
import { randomId } from "./format";
import { safePath } from "./protocol";

export interface Sink {
  /** Accepts the next bytes in order; resolves once they are taken over. */
  write(data: Uint8Array): Promise<void>;
  /** Flushes and closes; resolves to the received file, or null when it was written to a picked directory. */
  close(): Promise<Blob | null>;
  abort(): Promise<void>;
  /** True when the bytes go to disk rather than memory. */
  readonly onDisk: boolean;
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

// --- the origin-private file system ------------------------------------------

const OPFS_DIR = "privydrop-received";
let tabDir: Promise<FileSystemDirectoryHandle | null> | null = null;

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
      return await base.getDirectoryHandle(mine, { create: true });
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
        const h = await dir.getFileHandle(`rx-${randomId(10)}`, { create: true });
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
