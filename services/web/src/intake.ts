// One item's bytes arriving at the receiver (docs/datachannel-protocol.md
// §4–6): taken strictly in order of offset, hashed, handed to storage, and
// acknowledged once storage has them. Resuming rests on `received`: after a
// lost connection the receiver asks again from there, and whatever arrives
// below it is dropped. No WebRTC or storage API here, so it runs (and is
// tested) in Node.
import { ACK_EVERY } from "./protocol";

/** Where the bytes go, in order; a write resolves once they are taken over. */
export interface IntakeSink {
  write(data: Uint8Array): Promise<void>;
}

/** A running hash over exactly the bytes taken (the item digest, in the page). */
export interface IntakeHasher {
  update(data: Uint8Array): unknown;
  /** Resolves once the hash keeps up again; acknowledgements wait for it. */
  ready?(): Promise<void>;
}

/**
 * What became of one chunk: `taken` (all or its new tail), `dropped` (all
 * below what is held, or a gap above it), `overflow` (past the announced size;
 * nothing taken).
 */
export type IntakeResult = "taken" | "dropped" | "overflow";

export class Intake {
  /** Bytes taken in order (hashed, handed to the sink); the offset a resumed request asks for. */
  private held = 0;
  /** Bytes the sink has taken over; acknowledgements report this. */
  private stored = 0;
  private lastAck = 0;
  /** Settles after every write handed over so far; rejects once one failed. */
  private writes: Promise<void> = Promise.resolve();

  /**
   * `size` is the manifest's; `ack(offset)` is called with the bytes stored,
   * at least every ACK_EVERY bytes and once at the end.
   */
  constructor(readonly size: number, private hasher: IntakeHasher, private sink: IntakeSink,
              private ack: (offset: number) => void) {}

  get received(): number {
    return this.held;
  }

  get accepted(): number {
    return this.stored;
  }

  /** Every write so far: rejects with the first storage error. */
  get written(): Promise<void> {
    return this.writes;
  }

  /** A chunk frame's payload for offset `offset`. */
  take(offset: number, payload: Uint8Array): IntakeResult {
    // A gap: the next request restarts at `held`, and the sender sends from there.
    if (offset > this.held) return "dropped";
    if (offset < this.held) {
      const skip = this.held - offset;
      if (skip >= payload.byteLength) return "dropped";
      payload = payload.subarray(skip);
    }
    const n = payload.byteLength;
    if (this.held + n > this.size) return "overflow";
    this.hasher.update(payload);
    this.held += n;
    const { sink, hasher } = this;
    let stored = this.writes.then(() => sink.write(payload));
    // A hash that falls behind holds the acks back, as a slow disk does (§5).
    if (hasher.ready) stored = stored.then(() => hasher.ready!());
    this.writes = stored.then(() => {
      this.stored += n;
      if (this.stored - this.lastAck >= ACK_EVERY || this.stored === this.size) {
        this.lastAck = this.stored;
        this.ack(this.stored);
      }
    });
    return "taken";
  }
}
