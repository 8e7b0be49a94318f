// The sending side: owns the room, the offered items, and one peer connection
// per receiver; serves requested items in chunks with flow control.
import { BlockHasher, hashBlob, hashRest } from "./hash";
import { randomId, SpeedMeter } from "./format";
import { errorDetail, msg, type Msg } from "./i18n";
import { debug } from "./log";
import { PeerLink, type PeerLinkEvents } from "./peer";
import {
  PROTOCOL_VERSION, decodeControl, encodeControl, manifestParts, type ControlMessage, type ManifestItem,
} from "./protocol";
import { sendItem, type FlowGate, type OutRequest } from "./send-flow";
import type { Signaling } from "./signaling";
import { workerDigest, workerSource, type BlockSource } from "./storage";

/** An offered item: what the manifest says of it, and where its bytes are. */
export interface SharedItem extends ManifestItem {
  blob: Blob;
  /**
   * The item digest (hex, docs/datachannel-protocol.md §7), computed once:
   * from the blocks read for sending when the first request starts at
   * offset 0, else by reading the file on its own; in the disk worker where
   * one runs. Forgotten when it fails, so that a later request tries again.
   */
  hash?: Promise<string>;
  /** The request whose blocks make `hash` as they are sent, while it runs. */
  hashedBy?: OutRequest | null;
  /** When that request last sent a block (ms since the epoch). */
  hashMoved?: number;
}

/**
 * The item digest (hex) of a whole file, read on its own: by the disk
 * worker where one runs, so the page's main thread neither reads nor
 * hashes it; on the page where none does (or it stopped).
 */
function digestWhole(blob: Blob): Promise<string> {
  return workerDigest(blob).catch(() => null).then((h) => h ?? hashBlob(blob));
}

/** The manifest's view of an item (no blob, no hash). */
function manifestItem({ id, kind, path, size, mime, lastModified }: SharedItem): ManifestItem {
  return { id, kind, path, size, mime, lastModified };
}

export type TransferState = "pending" | "sending" | "receiving" | "done" | "failed";

/** One item's transfer to one receiver, as shown on the sending side. */
export interface OutTransfer {
  itemId: number;
  receiver: string;
  acked: number;
  size: number;
  state: TransferState;
  note: string;
  meter: SpeedMeter;
}

export interface ReceiverInfo {
  /** Stable per receiver tab (from its hello), survives reconnects. */
  clientId: string;
  /** 1, 2, …: the order in which receivers first connected (the view names them by it). */
  no: number;
  connected: boolean;
}

export interface SenderView {
  itemsChanged(): void;
  peersChanged(): void;
  transferChanged(t: OutTransfer): void;
  notice(message: Msg, kind: "error" | "info"): void;
}

interface Peer {
  link: PeerLink;
  clientId: string | null;
  queue: OutRequest[];
  current: OutRequest | null;
  pumping: boolean;
  /** Highest acknowledged offset per item. */
  acked: Map<number, number>;
  wakers: (() => void)[];
  /** Its signaling socket disconnected (peer-disconnected). */
  gone: boolean;
}

/** A flow-control wait re-checks after this even without a wake-up (a missed bufferedamountlow must not stall). */
const WAKE_POLL_MS = 250;
/**
 * How long the request making an item's digest from the blocks it sends
 * may send none before a request that has sent every byte stops waiting
 * for it (digestFor).
 */
const HASH_STALL_MS = 5000;

export class Sender {
  readonly session = randomId(12);
  readonly items = new Map<number, SharedItem>();
  readonly receivers = new Map<string, ReceiverInfo>();
  readonly transfers = new Map<string, OutTransfer>();
  private nextId = 1;
  private revision = 0;
  private peers = new Map<string, Peer>();
  private textId: number | null = null;
  private currentText = "";
  private receiverNo = 0;
  private linkEvents: PeerLinkEvents;

  constructor(private sig: Signaling | null, private iceServers: () => Promise<RTCIceServer[]>, private view: SenderView) {
    this.linkEvents = {
      open: (link) => this.onOpen(link),
      message: (link, data) => this.onMessage(link, data),
      lost: (link, reason) => this.onLost(link, reason),
      bufferLow: (link) => this.wake(this.peers.get(link.peerId)),
    };
  }

  // --- items ------------------------------------------------------------------

  addFiles(files: { file: File; path: string }[]): void {
    for (const { file, path } of files) {
      const id = this.nextId++;
      this.items.set(id, {
        id, kind: "file", path, size: file.size, mime: file.type || "application/octet-stream",
        lastModified: file.lastModified || Date.now(), blob: file,
      });
    }
    this.manifestChanged();
  }

  /** Shares `text` (replacing the text shared before); empty text withdraws it. */
  setText(text: string): void {
    if (text === this.currentText) return;
    this.currentText = text;
    if (this.textId !== null) {
      this.withdraw(this.textId, false);
      this.textId = null;
    }
    if (text !== "") {
      const blob = new Blob([text], { type: "text/plain;charset=utf-8" });
      const id = this.nextId++;
      this.items.set(id, { id, kind: "text", path: "text", size: blob.size, mime: "text/plain;charset=utf-8", lastModified: Date.now(), blob });
      this.textId = id;
    }
    this.manifestChanged();
  }

  get text(): SharedItem | null {
    return this.textId === null ? null : this.items.get(this.textId) ?? null;
  }

  remove(ids: number[]): void {
    for (const id of ids) this.withdraw(id, false);
    this.manifestChanged();
  }

  private withdraw(id: number, announce: boolean): void {
    this.items.delete(id);
    for (const p of this.peers.values()) {
      p.queue = p.queue.filter((r) => r.id !== id);
      if (p.current?.id === id) p.current.aborted = true;
      this.wake(p);
    }
    for (const [k, t] of this.transfers) if (t.itemId === id) this.transfers.delete(k);
    if (announce) this.manifestChanged();
  }

  private manifestChanged(): void {
    this.revision++;
    this.view.itemsChanged();
    for (const p of this.peers.values()) if (p.link.isOpen) this.sendManifest(p);
  }

  private manifest(): ManifestItem[] {
    return [...this.items.values()].map(manifestItem);
  }

  private sendManifest(p: Peer): void {
    for (const m of manifestParts(this.session, this.revision, this.manifest())) p.link.send(encodeControl(m));
  }

  private hashOf(item: SharedItem): Promise<string> {
    return item.hash ?? this.setHash(item, digestWhole(item.blob));
  }

  private setHash(item: SharedItem, hash: Promise<string>): Promise<string> {
    item.hash = hash;
    hash.catch(() => {
      if (item.hash === hash) item.hash = undefined;
    });
    return hash;
  }

  /**
   * The item digest for a request that has sent every byte. Should another
   * request still be making it from the blocks it sends, that one goes at
   * the pace of its own receiver, which may stop acknowledging for as long
   * as it likes. This one waits for it while it moves; once it has sent no
   * block for HASH_STALL_MS, the file is read on its own for the digest,
   * and whichever of the two succeeds first serves both.
   */
  private async digestFor(item: SharedItem, req: OutRequest): Promise<string> {
    for (;;) {
      const hash = item.hash;
      const owner = item.hashedBy;
      if (!hash || !owner || owner === req) return this.hashOf(item);
      const idle = Date.now() - (item.hashMoved ?? 0);
      if (idle >= HASH_STALL_MS) {
        debug(`item ${item.id}: the transfer making its SHA-256 has sent nothing for ${HASH_STALL_MS / 1000} s; reading the file for it too`);
        item.hashedBy = null;
        return this.setHash(item, Promise.any([hash, digestWhole(item.blob)]));
      }
      await Promise.race([hash.catch(() => undefined), new Promise((r) => setTimeout(r, HASH_STALL_MS - idle))]);
    }
  }

  // --- signaling ----------------------------------------------------------------

  /** A receiver joined (`ready`) or asked for a fresh connection (`recipient-ready`). */
  async connectTo(peerId: string): Promise<void> {
    const sig = this.sig;
    if (!sig || peerId === sig.id) return;
    const ice = await this.iceServers();
    if (sig !== this.sig) return; // moved to another room meanwhile
    const old = this.peers.get(peerId);
    if (old) this.dropPeer(peerId, old, "replaced by a new connection");
    const link = PeerLink.offer(peerId, ice, sig, this.linkEvents);
    this.peers.set(peerId, { link, clientId: null, queue: [], current: null, pumping: false, acked: new Map(), wakers: [], gone: false });
    this.view.peersChanged();
  }

  onAnswer(from: string, answer: RTCSessionDescriptionInit): void {
    void this.peers.get(from)?.link.acceptAnswer(answer);
  }

  onCandidate(from: string, c: RTCIceCandidateInit): void {
    void this.peers.get(from)?.link.addCandidate(c);
  }

  /** The receiver's signaling socket went away; its data channel may live on. */
  onPeerDisconnected(peerId: string): void {
    const p = this.peers.get(peerId);
    if (!p) return;
    p.gone = true;
    if (p.link.isOpen) p.link.expectLoss();
    else p.link.close("the receiver left");
  }

  get connectedCount(): number {
    let n = 0;
    for (const r of this.receivers.values()) if (r.connected) n++;
    return n;
  }

  // --- data channel -----------------------------------------------------------------

  private onOpen(link: PeerLink): void {
    const p = this.peers.get(link.peerId);
    if (!p || p.link !== link) return;
    link.send(encodeControl({ type: "hello", version: PROTOCOL_VERSION, role: "sender", clientId: this.session, session: this.session }));
    this.sendManifest(p);
  }

  private peerOf(link: PeerLink): Peer | null {
    const p = this.peers.get(link.peerId);
    return p && p.link === link ? p : null;
  }

  private onMessage(link: PeerLink, data: string | ArrayBuffer): void {
    const p = this.peerOf(link);
    if (!p || typeof data !== "string") return;
    const m = decodeControl(data);
    if (!m) return;
    switch (m.type) {
      case "hello": this.onHello(p, m); break;
      case "request": this.onRequest(p, m.id, m.offset); break;
      case "cancel": {
        p.queue = p.queue.filter((r) => r.id !== m.id);
        if (p.current?.id === m.id) p.current.aborted = true;
        const t = this.transfer(p, m.id);
        if (t) this.update(t, { state: "pending", note: "cancelled by the receiver" });
        this.wake(p);
        break;
      }
      case "ack": {
        if (m.offset > (p.acked.get(m.id) ?? 0)) p.acked.set(m.id, m.offset);
        const t = this.transfer(p, m.id);
        if (t) {
          t.meter.add(m.offset);
          this.update(t, { acked: m.offset });
        }
        this.wake(p);
        break;
      }
      case "result": {
        const t = this.transfer(p, m.id);
        if (t) this.update(t, m.ok ? { state: "done", acked: t.size, note: "verified by the receiver" } : { state: "failed", note: "the receiver's checksum did not match" });
        break;
      }
      case "error":
        this.view.notice(msg("send.receiverReported", { detail: m.message }), "error");
        break;
      default:
        break;
    }
  }

  private onHello(p: Peer, m: Extract<ControlMessage, { type: "hello" }>): void {
    if (m.version !== PROTOCOL_VERSION || m.role !== "receiver") {
      p.link.send(encodeControl({ type: "error", code: "version", message: `unsupported protocol version ${m.version}` }));
      p.link.close("protocol version mismatch");
      return;
    }
    p.clientId = m.clientId;
    // A receiver that reconnected may still have an older connection open.
    for (const [pid, other] of this.peers) {
      if (other !== p && other.clientId === m.clientId) this.dropPeer(pid, other, "replaced by a new connection");
    }
    let info = this.receivers.get(m.clientId);
    if (!info) {
      info = { clientId: m.clientId, no: ++this.receiverNo, connected: true };
      this.receivers.set(m.clientId, info);
    }
    info.connected = true;
    this.view.peersChanged();
  }

  /** Ends a connection that a newer one replaces, without the "lost" bookkeeping. */
  private dropPeer(peerId: string, p: Peer, reason: string): void {
    this.peers.delete(peerId);
    if (p.current) p.current.aborted = true;
    this.wake(p);
    p.link.close(reason);
  }

  private onLost(link: PeerLink, reason: string): void {
    const p = this.peerOf(link);
    if (!p) return;
    this.peers.delete(link.peerId);
    if (p.current) p.current.aborted = true;
    this.wake(p);
    if (p.gone) {
      const no = p.clientId ? this.receivers.get(p.clientId)?.no : undefined;
      this.view.notice(no ? msg("send.receiverLeft", { name: msg("send.receiverLabel", { n: no }) }) : msg("send.someoneLeft"), "info");
    }
    if (p.clientId) {
      const still = [...this.peers.values()].some((o) => o.clientId === p.clientId && o.link.isOpen);
      const info = this.receivers.get(p.clientId);
      if (info && !still) info.connected = false;
      for (const t of this.transfers.values()) {
        if (t.receiver === p.clientId && t.state === "sending") this.update(t, { state: "pending", note: `interrupted (${reason}); waiting for the receiver to reconnect` });
      }
    }
    this.view.peersChanged();
  }

  private key(clientId: string, id: number): string {
    return `${clientId}:${id}`;
  }

  private transfer(p: Peer, id: number): OutTransfer | null {
    return p.clientId ? this.transfers.get(this.key(p.clientId, id)) ?? null : null;
  }

  private update(t: OutTransfer, patch: Partial<OutTransfer>): void {
    Object.assign(t, patch);
    this.view.transferChanged(t);
  }

  private onRequest(p: Peer, id: number, offset: number): void {
    debug(`request item ${id} from ${offset} by ${p.clientId ?? p.link.peerId}`);
    const item = this.items.get(id);
    if (!item) {
      p.link.send(encodeControl({ type: "error", id, code: "not-found", message: "This item is no longer offered." }));
      return;
    }
    if (offset > item.size) {
      p.link.send(encodeControl({ type: "error", id, code: "bad-offset", message: "Requested offset is past the end of the item." }));
      return;
    }
    p.queue = p.queue.filter((r) => r.id !== id);
    if (p.current?.id === id) p.current.aborted = true;
    // Text first: it is small and shown as soon as it arrives.
    const req = { id, offset, aborted: false };
    if (item.kind === "text") p.queue.unshift(req);
    else p.queue.push(req);
    if (p.clientId) {
      const k = this.key(p.clientId, id);
      let t = this.transfers.get(k);
      if (!t) {
        t = { itemId: id, receiver: p.clientId, acked: offset, size: item.size, state: "pending", note: "queued", meter: new SpeedMeter() };
        this.transfers.set(k, t);
      }
      t.meter.reset();
      this.update(t, { acked: offset, state: "pending", note: offset > 0 ? `resuming at byte ${offset}` : "queued" });
    }
    this.wake(p);
    void this.pump(p);
  }

  private wake(p: Peer | undefined): void {
    if (!p) return;
    const w = p.wakers;
    p.wakers = [];
    for (const f of w) f();
  }

  private waitWake(p: Peer): Promise<void> {
    return new Promise((resolve) => {
      p.wakers.push(resolve);
      setTimeout(resolve, WAKE_POLL_MS);
    });
  }

  private async pump(p: Peer): Promise<void> {
    if (p.pumping) return;
    p.pumping = true;
    try {
      while (p.link.isOpen) {
        const req = p.queue.shift();
        if (!req) break;
        p.current = req;
        await this.serve(p, req);
        p.current = null;
      }
    } finally {
      p.pumping = false;
      p.current = null;
    }
  }

  private async serve(p: Peer, req: OutRequest): Promise<void> {
    const item = this.items.get(req.id);
    if (!item) return;
    const t = this.transfer(p, req.id);
    // Nobody hashes the item yet and this request reads it from the start:
    // the blocks read for sending are hashed as they go out (one pass over
    // the file), in the disk worker that reads them where one runs, else on
    // the page. Should this request stop early, the rest of the file is read
    // for the hash on its own, for whoever waits on the promise.
    let inline: { settle: (make: () => Promise<string>) => void } | null = null;
    if (!item.hash && req.offset === 0) {
      let resolve!: (h: Promise<string>) => void;
      const own = this.setHash(item, new Promise<string>((r) => { resolve = r; }));
      item.hashedBy = req;
      item.hashMoved = Date.now();
      inline = {
        // `make` runs only while the digest is still this request's to make:
        // once digestFor gave it to a read of its own, reading the rest here
        // would be wasted.
        settle: (make) => {
          if (item.hashedBy === req) item.hashedBy = null;
          resolve(item.hash === own ? make() : Promise.reject(new Error("made by a read of its own")));
        },
      };
    }
    const fresh = !item.hash;
    // The blocks are read by the disk worker where one runs, else on the page.
    let source: BlockSource | null;
    try {
      source = await workerSource(item.blob, !!inline);
    } catch (e) {
      // Whoever waits on the hash this request took on must not wait for ever.
      inline?.settle(() => Promise.reject(e instanceof Error ? e : new Error(String(e))));
      throw e;
    }
    const pageHasher = inline && !source?.hashes ? new BlockHasher(item.size) : null;
    this.hashOf(item); // runs alongside the sending
    if (fresh || inline) {
      debug(`item ${item.id}: SHA-256 ${inline ? `from the blocks sent, ${pageHasher ? "on the page" : "by the disk worker"}` : "read on its own"}`);
    }
    const onBlock = inline ? (block: Uint8Array) => {
      item.hashMoved = Date.now();
      if (!pageHasher) return undefined;
      pageHasher.update(block);
      // A block's digest that failed is no failed read: the digest is then
      // read on its own (below), and the sending goes on.
      return pageHasher.ready().catch(() => undefined);
    } : undefined;
    // The window counts from where this request starts; acks of an earlier request for the item do not count.
    p.acked.set(item.id, req.offset);
    const gate: FlowGate = { acked: (id) => p.acked.get(id) ?? 0, wait: () => this.waitWake(p) };
    if (t) this.update(t, { state: "sending", note: "sending" });
    let complete = false;
    debug(`item ${item.id} from ${req.offset}: blocks read ${source ? "by the disk worker" : "on the page"}`);
    const out = { id: item.id, size: item.size, blob: item.blob, read: source ? source.read : undefined };
    try {
      complete = await sendItem(p.link, out, req, gate, onBlock);
      if (inline) {
        inline.settle(() => (pageHasher ? hashRest(pageHasher, item.blob) : source!.digest()).catch((e: unknown) => {
          debug(`item ${item.id}: no SHA-256 from the blocks sent (${String(e)}); reading the file again for it`);
          return digestWhole(item.blob);
        }));
        inline = null;
      }
      if (!complete) return;
      const sha256 = await this.digestFor(item, req);
      if (req.aborted || !p.link.isOpen) return;
      p.link.send(encodeControl({ type: "end", id: item.id, size: item.size, sha256 }));
      if (t) this.update(t, { note: "waiting for the receiver to verify" });
    } catch (e) {
      inline?.settle(() => digestWhole(item.blob));
      // The wire message is for logs on the other side; its page words it from `code`.
      const message = `could not read "${item.path}": ${e instanceof Error ? e.message : String(e)}`;
      p.link.send(encodeControl({ type: "error", id: item.id, code: "read-failed", message }));
      if (t) this.update(t, { state: "failed", note: message });
      this.view.notice(msg("send.readFailed", { name: item.path, detail: errorDetail(e) }), "error");
    } finally {
      source?.close();
    }
  }

  /** Moves to another signaling connection (a new room): existing links end. */
  rebind(sig: Signaling): void {
    this.close();
    for (const r of this.receivers.values()) r.connected = false;
    this.sig = sig;
    this.view.peersChanged();
  }

  close(): void {
    for (const p of [...this.peers.values()]) p.link.close("closed");
    this.peers.clear();
  }
}
