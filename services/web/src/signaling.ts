// Signaling over Socket.IO v5 (docs/wire-protocol.md §Events): join a room,
// relay offers, answers and ICE candidates, and re-join by itself after the
// connection drops.
import { io, type Socket } from "socket.io-client";
import { debug } from "./log";

export type SignalStatus = "connecting" | "joined" | "reconnecting" | "offline";

export interface SignalEvents {
  status(status: SignalStatus, detail?: string): void;
  /** Joined the room; `rejoin` is true after a reconnect (new socket id). */
  joined(rejoin: boolean): void;
  /** The server refused the join; `retryMs` is set when we will try again. */
  joinFailed(message: string, retryMs?: number): void;
  ready(peerId: string): void;
  offer(from: string, offer: RTCSessionDescriptionInit): void;
  answer(from: string, answer: RTCSessionDescriptionInit): void;
  candidate(from: string, candidate: RTCIceCandidateInit): void;
  initiatorOnline(): void;
  recipientReady(peerId: string): void;
  peerDisconnected(peerId: string): void;
}

interface JoinResponse {
  success?: boolean;
  message?: string;
  roomId?: string;
}

/** The server's join limit counts attempts over this sliding window
 * (docs/wire-protocol.md §Join). */
const JOIN_WINDOW_MS = 5500;

type Relayed = { peerId?: string; from?: string; [k: string]: unknown };

function origin(r: Relayed): string | null {
  const id = typeof r?.peerId === "string" ? r.peerId : typeof r?.from === "string" ? r.from : null;
  return id && id.length > 0 ? id : null;
}

export class Signaling {
  private socket: Socket;
  private room: string | null = null;
  private joinedOnce = false;
  private joined = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private limitedInARow = 0;

  constructor(private ev: SignalEvents) {
    this.socket = io({
      path: "/socket.io/",
      // WebSocket first; HTTP long-polling where a proxy blocks it. Without
      // tryAllTransports the client would retry WebSocket forever. Any
      // worker serves either (no sticky sessions needed).
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      forceNew: true,
      reconnection: true,
      reconnectionDelay: 500,
      reconnectionDelayMax: 4000,
      randomizationFactor: 0.3,
      timeout: 10000,
    });
    const s = this.socket;
    s.on("connect", () => {
      debug("signaling connected", s.id);
      if (this.room) this.emitJoin();
      else ev.status("connecting");
    });
    s.on("disconnect", (reason) => {
      debug("signaling disconnected:", reason);
      this.joined = false;
      ev.status("reconnecting", reason);
      // The server closing us on purpose (e.g. a worker shutting down) does
      // not trigger socket.io's own reconnection: ask for it.
      if (reason === "io server disconnect") setTimeout(() => s.connect(), 300 + Math.random() * 700);
    });
    s.on("connect_error", () => {
      this.joined = false;
      ev.status("reconnecting", "the signaling server cannot be reached");
    });
    s.on("joinResponse", (r: JoinResponse) => this.onJoinResponse(r));
    s.on("ready", (r: Relayed) => { debug("ready", r); const id = origin(r); if (id) ev.ready(id); });
    s.on("offer", (r: Relayed) => {
      const id = origin(r);
      debug("offer from", id);
      if (id && r.offer) ev.offer(id, r.offer as RTCSessionDescriptionInit);
    });
    s.on("answer", (r: Relayed) => {
      const id = origin(r);
      debug("answer from", id);
      if (id && r.answer) ev.answer(id, r.answer as RTCSessionDescriptionInit);
    });
    s.on("ice-candidate", (r: Relayed) => {
      const id = origin(r);
      if (id && r.candidate) ev.candidate(id, r.candidate as RTCIceCandidateInit);
    });
    s.on("initiator-online", () => { debug("initiator-online"); ev.initiatorOnline(); });
    s.on("recipient-ready", (r: Relayed) => { debug("recipient-ready", r); const id = origin(r); if (id) ev.recipientReady(id); });
    s.on("peer-disconnected", (r: Relayed) => { debug("peer-disconnected", r); const id = origin(r); if (id) ev.peerDisconnected(id); });
  }

  /** Our socket id, or "" while disconnected. */
  get id(): string {
    return this.socket.id ?? "";
  }

  get roomId(): string | null {
    return this.room;
  }

  get isJoined(): boolean {
    return this.joined && this.socket.connected;
  }

  join(roomId: string): void {
    this.room = roomId;
    this.joinedOnce = false;
    if (this.socket.connected) this.emitJoin();
  }

  private emitJoin(): void {
    if (!this.room) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.ev.status("connecting");
    this.socket.emit("join", { roomId: this.room });
  }

  private onJoinResponse(r: JoinResponse): void {
    debug("joinResponse", r);
    if (r?.roomId && this.room && r.roomId !== this.room) return;
    if (r?.success) {
      this.limitedInARow = 0;
      const rejoin = this.joinedOnce;
      this.joined = true;
      this.joinedOnce = true;
      this.ev.status("joined");
      this.ev.joined(rejoin);
      return;
    }
    const msg = r?.message ?? "";
    const m = /try again in (\d+(?:\.\d+)?)\s*s/i.exec(msg);
    if (m) {
      // Refused attempts count against the limit too (as in PrivyDrop), so
      // retrying at the hinted moment is refused again: wait for the whole
      // window (5 s) to drain, longer after each refusal in a row.
      this.limitedInARow++;
      const hinted = Math.ceil(parseFloat(m[1]) * 1000) + 300;
      const ms = Math.min(30000, Math.max(hinted, JOIN_WINDOW_MS * 1.5 ** (this.limitedInARow - 1)));
      this.ev.joinFailed(msg, ms);
      this.retryTimer = setTimeout(() => this.emitJoin(), ms);
      return;
    }
    if (/server error/i.test(msg)) {
      this.ev.joinFailed(msg, 3000);
      this.retryTimer = setTimeout(() => this.emitJoin(), 3000);
      return;
    }
    this.ev.joinFailed(msg);
  }

  /** Tries the join again now (after the caller fixed the cause). */
  retryJoin(): void {
    if (this.socket.connected) this.emitJoin();
  }

  sendOffer(peerId: string, offer: RTCSessionDescriptionInit): void {
    this.socket.emit("offer", { peerId, offer, from: this.id });
  }

  sendAnswer(peerId: string, answer: RTCSessionDescriptionInit): void {
    this.socket.emit("answer", { peerId, answer, from: this.id });
  }

  sendCandidate(peerId: string, candidate: RTCIceCandidateInit): void {
    this.socket.emit("ice-candidate", { peerId, candidate, from: this.id });
  }

  announceInitiator(): void {
    debug("announce initiator-online");
    if (this.room && this.isJoined) this.socket.emit("initiator-online", { roomId: this.room });
  }

  announceRecipient(): void {
    debug("announce recipient-ready");
    if (this.room && this.isJoined) this.socket.emit("recipient-ready", { roomId: this.room, peerId: this.id });
  }

  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.room = null;
    this.socket.disconnect();
  }
}
