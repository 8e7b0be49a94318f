// One WebRTC peer connection with its data channel: offer/answer, trickled
// ICE, and a single "lost" signal however the connection dies.
import { debug } from "./log";
import { BUFFER_LOW, CHANNEL_LABEL, CHANNEL_PROTOCOL } from "./protocol";

export interface SignalOut {
  sendOffer(peerId: string, offer: RTCSessionDescriptionInit): void;
  sendAnswer(peerId: string, answer: RTCSessionDescriptionInit): void;
  sendCandidate(peerId: string, candidate: RTCIceCandidateInit): void;
}

export interface PeerLinkEvents {
  open(link: PeerLink): void;
  message(link: PeerLink, data: string | ArrayBuffer): void;
  /** Fired once, when the connection can no longer carry data. */
  lost(link: PeerLink, reason: string): void;
  bufferLow(link: PeerLink): void;
}

/** A link that has not opened its channel by then is given up. */
const OPEN_TIMEOUT_MS = 25000;
/** How long "disconnected" may last before the link counts as lost. */
const DISCONNECTED_GRACE_MS = 6000;

let nextLinkNo = 1;

/** Relay-only ICE (`?relay=1`): every connection goes through a TURN server, or fails. */
let relayOnly = false;

/** Forces `iceTransportPolicy: "relay"` on every peer connection made from now on. */
export function setRelayOnly(on: boolean): void {
  relayOnly = on;
}

export class PeerLink {
  readonly pc: RTCPeerConnection;
  dc: RTCDataChannel | null = null;
  /** Local sequence number, for logs and the UI. */
  readonly no = nextLinkNo++;
  isLost = false;
  private pending: RTCIceCandidateInit[] = [];
  private haveRemote = false;
  private watchdog: ReturnType<typeof setInterval>;
  private disconnectedSince = 0;
  private readonly createdAt = performance.now();
  private wasOpen = false;
  private graceMs = DISCONNECTED_GRACE_MS;

  private constructor(readonly peerId: string, iceServers: RTCIceServer[], private sig: SignalOut, private ev: PeerLinkEvents) {
    this.pc = PeerLink.makePc(iceServers);
    this.pc.onicecandidate = (e) => {
      if (e.candidate && !this.isLost) this.sig.sendCandidate(this.peerId, e.candidate.toJSON());
    };
    this.pc.onconnectionstatechange = () => this.check();
    this.pc.oniceconnectionstatechange = () => this.check();
    this.watchdog = setInterval(() => this.check(), 1000);
    debug(`link ${this.no} to ${peerId}: created`);
  }

  /** A peer connection; ICE servers the browser rejects are dropped (loopback and LAN need none). */
  private static makePc(iceServers: RTCIceServer[]): RTCPeerConnection {
    const policy: RTCConfiguration = relayOnly ? { iceTransportPolicy: "relay" } : {};
    try {
      return new RTCPeerConnection({ iceServers, ...policy });
    } catch (e) {
      debug("ICE servers rejected, going on without them:", String(e));
      return new RTCPeerConnection({ iceServers: [], ...policy });
    }
  }

  /** The sending side: makes the channel and the offer. */
  static offer(peerId: string, iceServers: RTCIceServer[], sig: SignalOut, ev: PeerLinkEvents): PeerLink {
    const link = new PeerLink(peerId, iceServers, sig, ev);
    link.attach(link.pc.createDataChannel(CHANNEL_LABEL, { ordered: true, protocol: CHANNEL_PROTOCOL }));
    void link.makeOffer();
    return link;
  }

  private async makeOffer(): Promise<void> {
    try {
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      if (!this.isLost) this.sig.sendOffer(this.peerId, this.pc.localDescription!.toJSON());
    } catch (e) {
      this.fail(`could not create an offer: ${String(e)}`);
    }
  }

  /** The receiving side: answers an offer; the channel arrives by ondatachannel. */
  static answer(peerId: string, offer: RTCSessionDescriptionInit, iceServers: RTCIceServer[], sig: SignalOut, ev: PeerLinkEvents): PeerLink {
    const link = new PeerLink(peerId, iceServers, sig, ev);
    link.pc.ondatachannel = (e) => {
      if (e.channel.label === CHANNEL_LABEL) link.attach(e.channel);
      else e.channel.close();
    };
    void link.makeAnswer(offer);
    return link;
  }

  private async makeAnswer(offer: RTCSessionDescriptionInit): Promise<void> {
    try {
      await this.pc.setRemoteDescription(offer);
      this.haveRemote = true;
      await this.flushCandidates();
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      if (!this.isLost) this.sig.sendAnswer(this.peerId, this.pc.localDescription!.toJSON());
    } catch (e) {
      this.fail(`could not answer the offer: ${String(e)}`);
    }
  }

  async acceptAnswer(answer: RTCSessionDescriptionInit): Promise<void> {
    if (this.isLost || this.pc.signalingState !== "have-local-offer") return;
    try {
      await this.pc.setRemoteDescription(answer);
      this.haveRemote = true;
      await this.flushCandidates();
    } catch (e) {
      this.fail(`bad answer: ${String(e)}`);
    }
  }

  async addCandidate(c: RTCIceCandidateInit): Promise<void> {
    if (this.isLost) return;
    if (!this.haveRemote) {
      this.pending.push(c);
      return;
    }
    try {
      await this.pc.addIceCandidate(c);
    } catch {
      /* a candidate for an older connection: harmless */
    }
  }

  private async flushCandidates(): Promise<void> {
    const list = this.pending;
    this.pending = [];
    for (const c of list) {
      try {
        await this.pc.addIceCandidate(c);
      } catch {
        /* see addCandidate */
      }
    }
  }

  private attach(dc: RTCDataChannel): void {
    this.dc = dc;
    dc.binaryType = "arraybuffer";
    dc.bufferedAmountLowThreshold = BUFFER_LOW;
    dc.onopen = () => {
      // A channel announced to us may already be open (and still fire "open").
      if (this.wasOpen || this.isLost) return;
      debug(`link ${this.no} to ${this.peerId}: channel open`);
      this.wasOpen = true;
      this.ev.open(this);
    };
    dc.onmessage = (e) => {
      if (!this.isLost) this.ev.message(this, e.data as string | ArrayBuffer);
    };
    dc.onbufferedamountlow = () => this.ev.bufferLow(this);
    dc.onclose = () => this.fail("the data channel closed");
    dc.onerror = () => this.check();
    if (dc.readyState === "open") queueMicrotask(() => dc.onopen?.(new Event("open")));
  }

  get isOpen(): boolean {
    return !this.isLost && this.dc?.readyState === "open";
  }

  /** Largest message the remote side accepts (0 if unknown). */
  get maxMessageSize(): number {
    return this.pc.sctp?.maxMessageSize ?? 0;
  }

  send(data: string | Uint8Array): boolean {
    if (!this.isOpen) {
      this.check();
      return false;
    }
    try {
      if (typeof data === "string") this.dc!.send(data);
      else this.dc!.send(data as Uint8Array<ArrayBuffer>);
      return true;
    } catch (e) {
      this.fail(`send failed: ${String(e)}`);
      return false;
    }
  }

  get bufferedAmount(): number {
    return this.dc?.bufferedAmount ?? 0;
  }

  private check(): void {
    if (this.isLost) return;
    const cs = this.pc.connectionState;
    const ice = this.pc.iceConnectionState;
    if (cs === "failed" || cs === "closed" || ice === "failed" || ice === "closed" || this.pc.signalingState === "closed") {
      this.fail(`connection ${cs}`);
      return;
    }
    if (this.dc && (this.dc.readyState === "closed" || (this.wasOpen && this.dc.readyState === "closing"))) {
      this.fail("the data channel closed");
      return;
    }
    const now = performance.now();
    if (cs === "disconnected" || ice === "disconnected") {
      if (!this.disconnectedSince) this.disconnectedSince = now;
      if (this.graceMs === 0) this.fail("connection interrupted");
      else if (now - this.disconnectedSince >= this.graceMs) this.fail("connection interrupted");
      return;
    }
    this.disconnectedSince = 0;
    if (!this.wasOpen && now - this.createdAt > OPEN_TIMEOUT_MS) this.fail("the connection could not be established");
  }

  private fail(reason: string): void {
    if (this.isLost) return;
    this.isLost = true;
    debug(`link ${this.no} to ${this.peerId}: lost (${reason})`);
    clearInterval(this.watchdog);
    try {
      this.dc?.close();
    } catch { /* already closed */ }
    try {
      this.pc.close();
    } catch { /* already closed */ }
    this.ev.lost(this, reason);
  }

  /**
   * The remote side's signaling socket went away: from now on a
   * "disconnected" connection is taken as gone at once instead of after a grace.
   */
  expectLoss(): void {
    this.graceMs = 0;
    this.check();
  }

  /** Closes on purpose; `lost` still fires once so owners clean up in one place. */
  close(reason = "closed"): void {
    this.fail(reason);
  }
}
