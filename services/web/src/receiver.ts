// The receiving side: joins a room, answers the sender's offer, shows what is
// offered, asks for items, checks each one's SHA-256, and resumes from the
// last byte it has when the peer connection is replaced.
import { makeZip } from "client-zip";
import { BlockHasher } from "./hash";
import { entryKey, groupEntries, type Entry } from "./entries";
import { randomId, SpeedMeter } from "./format";
import { bytes, errorDetail, msg, type Msg } from "./i18n";
import { Intake } from "./intake";
import { debug } from "./log";
import { PeerLink, type PeerLinkEvents } from "./peer";
import {
  PROTOCOL_VERSION, decodeControl, decodeFrame, encodeControl, safePath,
  type ControlMessage, type ManifestItem,
} from "./protocol";
import type { Signaling } from "./signaling";
import {
  MEMORY_WARN_BYTES, copyToDir, openDirSink, openScratch, openSink, planSink, prepareReceiving, saveBlob, type Sink,
} from "./storage";

export type RxState = "queued" | "receiving" | "verifying" | "done" | "failed";

export interface RxTransfer {
  item: ManifestItem;
  state: RxState;
  /** The bytes so far: what is held (the resume offset), stored and acknowledged. */
  intake: Intake;
  /** What the row says about this file now (a message, redrawn in the active language). */
  note: Msg;
  meter: SpeedMeter;
  /** The received file once verified (null when written into a picked folder). */
  result: Blob | null;
  sha256: string | null;
  /**
   * The item digest over the bytes taken (hash.ts); null when the disk
   * worker hashes what it writes (the same bytes) and the sink has the
   * digest once closed.
   */
  hasher: BlockHasher | null;
  sink: Sink;
  done: Promise<boolean>;
  settle: (ok: boolean) => void;
}

export type EntryState = "pending" | "receiving" | "done" | "failed";

export interface ReceiverView {
  status(text: Msg, connected: boolean): void;
  manifestChanged(): void;
  /** An entry's progress changed; `final`: it reached an end (saved, failed), drawn at once rather than batched. */
  entryChanged(key: string, final?: boolean): void;
  textChanged(text: string | null): void;
  notice(message: Msg, kind: "error" | "info"): void;
  clearNotice(): void;
  /** Asks before a large file is buffered in memory. */
  confirmMemory(name: string, size: number): Promise<boolean>;
}

const ANNOUNCE_EVERY_MS = 5000;
/** The Intake's hasher where the disk worker hashes what it writes. */
const NO_HASH = { update(): void { /* hashed by the disk worker */ } };
/** Files received at the same time (each holds an open file for writing). */
const MAX_OPEN = 4;

export class Receiver {
  readonly clientId = randomId(12);
  private link: PeerLink | null = null;
  private session: string | null = null;
  private items = new Map<number, ManifestItem>();
  private parts: { revision: number; got: Map<number, ManifestItem[]>; parts: number } | null = null;
  private haveManifest = false;
  readonly transfers = new Map<number, RxTransfer>();
  private starting = new Map<number, Promise<RxTransfer | null>>();
  /** Entries saved (downloaded or written to a folder), by key. */
  private saved = new Set<string>();
  private busy = new Map<string, Msg>();
  private announceTimer: ReturnType<typeof setInterval>;
  private linkEvents: PeerLinkEvents;
  private memoryOk = false;
  private openSlots = MAX_OPEN;
  private slotWaiters: (() => void)[] = [];
  /** Socket id of the sender whose offer we took last. */
  private senderPeerId: string | null = null;
  /** Its signaling socket disconnected (peer-disconnected). */
  private senderGone = false;
  /** The sender's hello came before our channel's "open": ours goes out on open. */
  private helloOwed = false;
  text: string | null = null;
  private textId: number | null = null;

  constructor(private sig: Signaling, private ice: RTCIceServer[], private view: ReceiverView) {
    this.linkEvents = {
      open: (link) => this.onOpen(link),
      message: (link, data) => { if (link === this.link) this.onMessage(data); },
      lost: (link, reason) => this.onLost(link, reason),
      bufferLow: () => undefined,
    };
    this.announceTimer = setInterval(() => {
      if (this.sig.isJoined && (!this.link || this.link.isLost)) this.sig.announceRecipient();
    }, ANNOUNCE_EVERY_MS);
  }

  get connected(): boolean {
    return !!this.link?.isOpen && this.haveManifest;
  }

  // --- signaling ------------------------------------------------------------------

  onJoined(): void {
    this.view.clearNotice();
    this.view.status(msg(this.link?.isOpen ? "rx.connected" : "rx.waiting"), this.connected);
  }

  onOffer(from: string, offer: RTCSessionDescriptionInit): void {
    // Detach the old link first: its "lost" must not ask for yet another connection.
    const old = this.link;
    this.link = null;
    this.haveManifest = false;
    old?.close("replaced by a new connection");
    this.helloOwed = false;
    this.link = PeerLink.answer(from, offer, this.ice, this.sig, this.linkEvents);
    this.senderPeerId = from;
    this.senderGone = false;
    this.view.status(msg("rx.connecting"), false);
  }

  onCandidate(from: string, c: RTCIceCandidateInit): void {
    if (this.link && this.link.peerId === from) void this.link.addCandidate(c);
  }

  onInitiatorOnline(): void {
    this.senderGone = false;
    if (!this.link || this.link.isLost) this.sig.announceRecipient();
  }

  onPeerDisconnected(peerId: string): void {
    if (peerId !== this.senderPeerId) return;
    // The sender's signaling socket is gone. Its data channel may outlive it
    // for a moment (or for good, after a mere signaling blip): only a link
    // that is not carrying data any more means the sender left.
    this.senderGone = true;
    if (!this.link?.isOpen) this.senderLeftNotice();
    else this.link.expectLoss();
  }

  private senderLeftNotice(): void {
    this.link?.close("the sender left");
    this.view.notice(msg("rx.senderLeft"), "error");
    this.view.status(msg("rx.senderLeftStatus"), false);
  }

  // --- data channel -------------------------------------------------------------------

  /**
   * The receiver speaks only after the sender's hello (docs/datachannel-protocol.md §3):
   * a message the answering side sends the moment its channel opens can reach the
   * offering side before that side's channel is open, and Chromium then drops it.
   * A hello that arrived before our own "open" is answered here.
   */
  private onOpen(link: PeerLink): void {
    if (link !== this.link || !this.helloOwed) return;
    this.helloOwed = false;
    this.sayHello();
  }

  private sayHello(): void {
    if (!this.link?.isOpen) {
      this.helloOwed = true;
      return;
    }
    this.link.send(encodeControl({ type: "hello", version: PROTOCOL_VERSION, role: "receiver", clientId: this.clientId }));
  }

  private onLost(link: PeerLink, reason: string): void {
    if (link !== this.link) return;
    this.link = null;
    this.haveManifest = false;
    for (const t of this.transfers.values()) if (t.state === "receiving" || t.state === "queued") t.note = msg("rx.noteLost");
    for (const e of this.entries()) this.view.entryChanged(e.key);
    if (reason === "protocol version mismatch") return;
    if (this.senderGone) {
      this.senderLeftNotice();
      return;
    }
    debug(`link to the sender lost: ${reason}`);
    this.view.status(msg("rx.lost"), false);
    if (this.sig.isJoined) this.sig.announceRecipient();
  }

  private onMessage(data: string | ArrayBuffer): void {
    if (typeof data !== "string") {
      const f = decodeFrame(data);
      if (f) this.onChunk(f.id, f.offset, f.payload);
      return;
    }
    const m = decodeControl(data);
    if (!m) return;
    switch (m.type) {
      case "hello":
        if (m.version !== PROTOCOL_VERSION || m.role !== "sender") {
          this.sendControl({ type: "error", code: "version", message: `unsupported protocol version ${m.version}` });
          this.view.notice(msg("rx.version", { theirs: String(m.version), ours: String(PROTOCOL_VERSION) }), "error");
          this.link?.close("protocol version mismatch");
          return;
        }
        if (m.session && m.session !== this.session) this.resetSession(m.session);
        this.sayHello();
        break;
      case "manifest": this.onManifestPart(m); break;
      case "end": void this.onEnd(m); break;
      case "error":
        if (m.id !== undefined && this.transfers.has(m.id)) this.fail(this.transfers.get(m.id)!, remoteError(m.code, m.message));
        else this.view.notice(remoteError(m.code, m.message), "error");
        break;
      default: break;
    }
  }

  private resetSession(session: string): void {
    for (const t of this.transfers.values()) {
      if (t.state !== "done" && t.state !== "failed") {
        void t.sink.abort();
        t.settle(false);
      }
    }
    this.transfers.clear();
    this.saved.clear();
    this.items.clear();
    this.session = session;
    this.parts = null;
  }

  private onManifestPart(m: Extract<ControlMessage, { type: "manifest" }>): void {
    if (m.session !== this.session) return;
    if (!this.parts || this.parts.revision !== m.revision) this.parts = { revision: m.revision, got: new Map(), parts: m.parts };
    this.parts.got.set(m.part, m.items);
    if (this.parts.got.size < this.parts.parts) return;
    const items = new Map<number, ManifestItem>();
    for (let i = 0; i < this.parts.parts; i++) for (const it of this.parts.got.get(i) ?? []) items.set(it.id, it);
    this.parts = null;
    this.applyManifest(items);
  }

  private applyManifest(items: Map<number, ManifestItem>): void {
    this.items = items;
    const first = !this.haveManifest;
    this.haveManifest = true;
    for (const [id, t] of this.transfers) {
      if (!items.has(id)) {
        if (t.state !== "done" && t.state !== "failed") this.fail(t, msg("rx.withdrawn"));
        this.transfers.delete(id);
      }
    }
    if (first) {
      this.view.clearNotice();
      this.view.status(msg("rx.connected"), true);
      // Resume what was under way when the previous connection dropped.
      for (const t of this.transfers.values()) {
        if (t.state === "queued" || t.state === "receiving") {
          const offset = t.intake.received;
          t.note = offset > 0 ? msg("rx.resuming", { size: bytes(offset) }) : msg("rx.requested");
          t.meter.reset();
          debug(`resume item ${t.item.id} at ${offset}`);
          this.sendControl({ type: "request", id: t.item.id, offset });
        }
      }
    }
    if ([...items.values()].some((i) => i.kind === "file")) prepareReceiving();
    // Text is fetched right away: it is small and meant to be read.
    const texts = [...items.values()].filter((i) => i.kind === "text");
    const latest = texts.length ? texts[texts.length - 1] : null;
    if (!latest) {
      this.textId = null;
      this.text = null;
      this.view.textChanged(null);
    } else if (latest.id !== this.textId) {
      this.textId = latest.id;
      void this.start(latest, null).then(async (t) => {
        if (!t || !(await t.done) || this.textId !== latest.id || !t.result) return;
        this.text = await t.result.text();
        this.view.textChanged(this.text);
      });
    }
    this.view.manifestChanged();
  }

  private sendControl(m: ControlMessage): void {
    if (this.link?.isOpen) this.link.send(encodeControl(m));
  }

  private onChunk(id: number, offset: number, payload: Uint8Array): void {
    const t = this.transfers.get(id);
    if (!t || (t.state !== "queued" && t.state !== "receiving")) return;
    const got = t.intake.take(offset, payload);
    if (got === "dropped") return;
    if (got === "overflow") {
      this.fail(t, msg("rx.tooManyBytes"));
      return;
    }
    if (t.state === "queued") {
      t.state = "receiving";
      t.note = msg("rx.receiving");
    }
    t.meter.add(t.intake.received);
    t.intake.written.catch((e) => this.fail(t, msg("rx.storeFailed", { detail: errorDetail(e) })));
    this.changed(t);
  }

  private async onEnd(m: Extract<ControlMessage, { type: "end" }>): Promise<void> {
    const t = this.transfers.get(m.id);
    if (!t || (t.state !== "queued" && t.state !== "receiving")) return;
    const held = t.intake.received;
    if (m.size !== t.item.size || held !== t.item.size) {
      // Should not happen on an ordered channel; ask again from where we are.
      if (held < t.item.size) this.sendControl({ type: "request", id: t.item.id, offset: held });
      else this.fail(t, msg("rx.sizeMismatch"));
      return;
    }
    t.state = "verifying";
    t.note = msg("rx.verifying");
    this.changed(t);
    debug(`item ${t.item.id}: every byte in, verifying`);
    try {
      await t.intake.written;
      const file = await t.sink.close();
      const digest = t.hasher ? await t.hasher.digest() : t.sink.sha256;
      if (!digest) throw new Error("no SHA-256 from the disk worker");
      t.sha256 = digest;
      const ok = digest === m.sha256.toLowerCase();
      this.sendControl({ type: "result", id: t.item.id, ok, sha256: digest });
      if (!ok) {
        this.fail(t, msg("rx.checksum"));
        return;
      }
      t.result = file;
      t.state = "done";
      t.note = msg("rx.verified");
      debug(`item ${t.item.id}: verified`);
      t.settle(true);
      this.changed(t);
    } catch (e) {
      this.fail(t, msg("rx.finishFailed", { detail: errorDetail(e) }));
    }
  }

  private fail(t: RxTransfer, message: Msg): void {
    if (t.state === "failed") return;
    const wasActive = t.state === "queued" || t.state === "receiving";
    t.state = "failed";
    t.note = message;
    t.result = null;
    t.hasher?.release();
    void t.sink.abort();
    if (wasActive) this.sendControl({ type: "cancel", id: t.item.id });
    t.settle(false);
    this.changed(t);
  }

  private changed(t: RxTransfer): void {
    this.view.entryChanged(this.entryKeyOf(t.item), t.state === "failed");
  }

  // --- asking for items -------------------------------------------------------------

  /**
   * Starts receiving `item` (into `dir`/path when given, else disk or memory).
   * Resolves to the transfer, or null when the person declined or it could not start.
   */
  private start(item: ManifestItem, dir: FileSystemDirectoryHandle | null, dirPath?: string): Promise<RxTransfer | null> {
    const existing = this.transfers.get(item.id);
    if (existing && existing.state !== "failed") return Promise.resolve(existing);
    const pending = this.starting.get(item.id);
    if (pending) return pending;
    const p = this.open(item, dir, dirPath).finally(() => this.starting.delete(item.id));
    this.starting.set(item.id, p);
    return p;
  }

  /**
   * At most MAX_OPEN files are open for receiving at a time: a folder of
   * thousands of files is asked for a few at a time, not all at once.
   */
  private async acquireSlot(): Promise<() => void> {
    while (this.openSlots <= 0) await new Promise<void>((r) => this.slotWaiters.push(r));
    this.openSlots--;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.openSlots++;
      this.slotWaiters.shift()?.();
    };
  }

  private async open(item: ManifestItem, dir: FileSystemDirectoryHandle | null, dirPath?: string): Promise<RxTransfer | null> {
    const release = item.kind === "text" ? () => undefined : await this.acquireSlot();
    const t = await this.openWithSlot(item, dir, dirPath, release);
    if (!t) release();
    return t;
  }

  private async openWithSlot(item: ManifestItem, dir: FileSystemDirectoryHandle | null, dirPath: string | undefined,
                             release: () => void): Promise<RxTransfer | null> {
    if (!this.items.has(item.id)) return null;
    let sink: Sink;
    try {
      if (dir) {
        sink = await openDirSink(dir, dirPath ?? item.path);
      } else if (item.kind === "text") {
        sink = await openSink({ where: "memory" }, item.mime);
      } else {
        const plan = await planSink(item.size);
        if (plan.where === "memory" && item.size > MEMORY_WARN_BYTES && !this.memoryOk) {
          if (!(await this.view.confirmMemory(item.path, item.size))) return null;
          this.memoryOk = true;
        }
        sink = await openSink(plan, item.mime);
      }
    } catch (e) {
      this.view.notice(msg("rx.cannotStore", { name: item.path, detail: errorDetail(e) }), "error");
      return null;
    }
    // Where the disk worker writes the bytes, it hashes them (nothing to
    // copy or hash on the page's main thread); else the page.
    const inWorker = sink.hashInWorker?.(item.size) ?? false;
    const hasher = inWorker ? null : new BlockHasher(item.size);
    let settle!: (ok: boolean) => void;
    const done = new Promise<boolean>((r) => {
      settle = (ok) => {
        release();
        r(ok);
      };
    });
    const intake = new Intake(item.size, hasher ?? NO_HASH, sink, (offset) => this.sendControl({ type: "ack", id: item.id, offset }));
    const t: RxTransfer = {
      item, state: "queued", intake, note: msg("rx.requested"), meter: new SpeedMeter(),
      result: null, sha256: null, hasher, sink, done, settle,
    };
    if (!this.items.has(item.id)) {
      void sink.abort();
      return null;
    }
    this.transfers.set(item.id, t);
    // Writes the disk worker finishes after they were taken report failures here.
    sink.failure?.catch((e) => this.fail(t, msg("rx.storeFailed", { detail: errorDetail(e) })));
    debug(`receiving item ${item.id} (${item.size} bytes) ${dir ? "into the picked folder" : sink.inWorker ? "to disk by the disk worker" : sink.onDisk ? "to disk on the page" : "in memory"}, SHA-256 ${inWorker ? "by the disk worker" : "on the page"}`);
    if (this.connected) this.sendControl({ type: "request", id: item.id, offset: 0 });
    else t.note = msg("rx.waitingConnection");
    this.changed(t);
    return t;
  }

  // --- entries (what the person sees and picks) ---------------------------------------------

  entries(): Entry<ManifestItem>[] {
    return groupEntries(this.items.values());
  }

  entry(key: string): Entry<ManifestItem> | undefined {
    return this.entries().find((e) => e.key === key);
  }

  private entryKeyOf(item: ManifestItem): string {
    return entryKey(item);
  }

  /** Bytes received, state and a note for an entry. */
  entryProgress(e: Entry<ManifestItem>): { bytes: number; state: EntryState; note: Msg | null; verified: boolean } {
    let bytes = 0;
    let anyActive = false;
    let anyFailed = false;
    let allDone = e.files.length > 0;
    let note: Msg | null = null;
    for (const f of e.files) {
      const t = this.transfers.get(f.id);
      if (!t) {
        allDone = false;
        continue;
      }
      bytes += t.state === "done" ? f.size : t.intake.received;
      if (t.state === "failed") {
        anyFailed = true;
        note = t.note;
      } else if (t.state !== "done") {
        anyActive = true;
        note ||= t.note;
      }
      if (t.state !== "done") allDone = false;
    }
    const busy = this.busy.get(e.key);
    if (anyFailed) return { bytes, state: "failed", note, verified: false };
    if (allDone && this.saved.has(e.key) && !busy) return { bytes, state: "done", note: msg("rx.verifiedSha"), verified: true };
    if (anyActive || busy || allDone) return { bytes, state: "receiving", note: busy ?? note ?? msg("rx.receiving"), verified: false };
    return { bytes, state: "pending", note: null, verified: false };
  }

  /** Receives an entry and saves it: a file as itself, a folder as a zip. */
  async download(key: string): Promise<void> {
    const e = this.entry(key);
    if (!e || this.busy.has(key)) return;
    this.busy.set(key, msg("rx.requested"));
    this.view.entryChanged(key);
    try {
      this.saved.delete(key);
      // Files that went straight into a picked folder are not kept here:
      // fetch them again.
      for (const f of e.files) {
        const t = this.transfers.get(f.id);
        if (t?.state === "done" && !t.result) this.transfers.delete(f.id);
      }
      const ts = await Promise.all(e.files.map((f) => this.start(f, null)));
      this.busy.set(key, msg("rx.receiving"));
      this.view.entryChanged(key);
      if (ts.some((t) => !t)) return;
      const oks = await Promise.all(ts.map((t) => t!.done));
      if (!oks.every(Boolean)) return;
      if (e.kind === "file") {
        saveBlob(ts[0]!.result!, safePath(e.name)?.replace(/\//g, "_") ?? "download");
      } else {
        this.busy.set(key, msg("rx.packingZip"));
        this.view.entryChanged(key);
        const zip = await this.zip(e, ts as RxTransfer[]);
        saveBlob(zip, `${safePath(e.name) ?? "folder"}.zip`);
      }
      this.saved.add(key);
    } catch (err) {
      this.view.notice(msg("rx.saveFailed", { name: e.name, detail: errorDetail(err) }), "error");
    } finally {
      this.busy.delete(key);
      this.view.entryChanged(key, true);
    }
  }

  private async zip(e: Entry<ManifestItem>, ts: RxTransfer[]): Promise<Blob> {
    const files = ts.map((t) => ({
      name: safePath(t.item.path) ?? `${e.name}/unnamed`,
      input: t.result!,
      size: t.item.size,
      lastModified: new Date(t.item.lastModified),
    }));
    const stream = makeZip(files);
    const scratch = await openScratch();
    if (scratch) {
      await stream.pipeTo(scratch.writable);
      return await scratch.finish();
    }
    return await new Response(stream).blob();
  }

  /** Receives entries straight into a folder the person picked, keeping paths. */
  async saveToDirectory(keys: string[], dir: FileSystemDirectoryHandle): Promise<void> {
    await Promise.all(keys.map(async (key) => {
      const e = this.entry(key);
      if (!e || this.busy.has(key)) return;
      this.busy.set(key, msg("rx.savingInto", { name: dir.name }));
      this.view.entryChanged(key);
      try {
        const oks = await Promise.all(e.files.map(async (f) => {
          const have = this.transfers.get(f.id);
          if (have && have.state === "done" && have.result) {
            await copyToDir(dir, f.path, have.result);
            return true;
          }
          const t = await this.start(f, dir, f.path);
          if (!t || !(await t.done)) return false;
          // It was already on its way elsewhere (a download): copy it over.
          if (t.result) await copyToDir(dir, f.path, t.result);
          return true;
        }));
        if (oks.every(Boolean)) this.saved.add(key);
      } catch (err) {
        this.view.notice(msg("rx.saveFailed", { name: e.name, detail: errorDetail(err) }), "error");
      } finally {
        this.busy.delete(key);
        this.view.entryChanged(key, true);
      }
    }));
  }

  /** Every entry, each saved as its own download button would save it. */
  async downloadAll(): Promise<void> {
    await Promise.all(this.entries().map((e) => this.download(e.key)));
  }

  close(): void {
    clearInterval(this.announceTimer);
    this.link?.close("closed");
  }
}

/** A sender's error, worded here from its code (the wire text is the other page's, in English). */
function remoteError(code: string, text: string): Msg {
  switch (code) {
    case "not-found": return msg("rx.notOffered");
    case "bad-offset": return msg("rx.badOffset");
    case "read-failed": return msg("rx.readFailed");
    default: return msg("rx.senderReported", { detail: text });
  }
}
