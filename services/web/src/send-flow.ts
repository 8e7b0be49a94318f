// The sender's flow control (docs/datachannel-protocol.md §5): one item's
// bytes, from a requested offset, as chunk frames, paced by the data
// channel's send buffer and by the receiver's acknowledgements. No WebRTC
// here, only the FrameChannel interface, so it runs (and is tested) in Node.
import { ACK_WINDOW, BUFFER_HIGH, CHUNK_BYTES, FRAME_HEADER_BYTES, setFrameHeader } from "./protocol";

/** What sending needs of a data channel; PeerLink is the real one. */
export interface FrameChannel {
  readonly isOpen: boolean;
  /** Bytes queued in the channel and not yet handed to the network. */
  readonly bufferedAmount: number;
  /** Largest message the far side accepts; 0 when unknown. */
  readonly maxMessageSize: number;
  /**
   * False when the channel could not take the message (it is then closing).
   * Copies `data` before it returns (RTCDataChannel.send does): the caller
   * reuses the buffer for the next frame.
   */
  send(data: Uint8Array): boolean;
}

/** What is being sent: item `id`, `size` bytes read from `blob`. */
export interface OutItem {
  id: number;
  size: number;
  blob: Blob;
  /** Reads bytes `from` to `end` elsewhere (the disk worker); without it the blob is read here. */
  read?: (from: number, end: number) => Promise<Uint8Array>;
}

/** One request of one receiver, served until the end or until `aborted` is set. */
export interface OutRequest {
  id: number;
  offset: number;
  aborted: boolean;
}

/** The receiver's side of flow control, as the sender sees it. */
export interface FlowGate {
  /** Highest offset of item `id` the receiver has acknowledged. */
  acked(id: number): number;
  /**
   * Resolves when waiting may be over: an ack arrived, the channel's buffer
   * drained, the request was aborted. Resolving for nothing is harmless; the
   * conditions are checked again.
   */
  wait(): Promise<void>;
}

/** Bytes read from the file at a time, then cut into frames. */
export const READ_BYTES = 1024 * 1024;
/** Smallest payload, whatever the peer's max-message-size says. */
export const MIN_PAYLOAD_BYTES = 1024;
/** Max-message-size assumed when the browser does not say (RFC 8841's default). */
const DEFAULT_MAX_MESSAGE = 65536;

/** Payload bytes per frame for a channel whose far side accepts `maxMessageSize`. */
export function payloadBytes(maxMessageSize: number): number {
  const max = maxMessageSize || DEFAULT_MAX_MESSAGE + FRAME_HEADER_BYTES;
  return Math.max(MIN_PAYLOAD_BYTES, Math.min(CHUNK_BYTES, max - FRAME_HEADER_BYTES));
}

/**
 * True while the next block must wait: the channel holds more than
 * BUFFER_HIGH, or ACK_WINDOW bytes past the last ack are already sent. Checked
 * before each READ_BYTES block, so at most a block more than either limit is
 * ever outstanding.
 */
export function mustWait(bufferedAmount: number, sent: number, acked: number): boolean {
  return bufferedAmount > BUFFER_HIGH || sent - acked >= ACK_WINDOW;
}

/**
 * Sends `item` from `req.offset` to its end as frames, in order of offset.
 * Resolves true once every byte is handed to the channel, false when the
 * request was aborted or the channel closed first. Rejects when the blob
 * cannot be read or no longer has `item.size` bytes. `onBlock` sees every
 * block read, in order of offset, after its frames went out (the sender
 * hashes them there: one pass over the file instead of two); the next block
 * is sent once what it returns resolves (hashing that fell behind).
 *
 * The next block is read while the current one is sent and while the
 * sender waits: a read is a round trip to the browser's file service, and
 * the channel would drain meanwhile. Sending, not reading, is what the two
 * limits gate, so a read ahead holds at most one block more in memory.
 */
export async function sendItem(ch: FrameChannel, item: OutItem, req: OutRequest, gate: FlowGate,
                               onBlock?: (block: Uint8Array) => void | Promise<void>): Promise<boolean> {
  const maxPayload = payloadBytes(ch.maxMessageSize);
  const read = async (from: number): Promise<Uint8Array> => {
    const end = Math.min(item.size, from + READ_BYTES);
    const block = item.read ? await item.read(from, end) : new Uint8Array(await item.blob.slice(from, end).arrayBuffer());
    if (block.byteLength !== end - from) throw new Error("the file changed while it was being sent");
    return block;
  };
  let ahead: Promise<Uint8Array> | null = null;
  let frame: Uint8Array<ArrayBuffer> | null = null;
  const drop = (): false => {
    ahead?.catch(() => undefined); // nobody waits for it any more
    return false;
  };
  let off = req.offset;
  while (off < item.size) {
    while (!req.aborted && ch.isOpen && mustWait(ch.bufferedAmount, off, gate.acked(item.id))) {
      ahead ??= read(off);
      await gate.wait();
    }
    if (req.aborted || !ch.isOpen) return drop();
    const pending = ahead ?? read(off);
    ahead = null;
    const block = await pending;
    // Reading took a while: the request may have been called off meanwhile.
    if (req.aborted || !ch.isOpen) return drop();
    const end = off + block.byteLength;
    if (end < item.size) ahead = read(end);
    for (let o = 0; o < block.byteLength; o += maxPayload) {
      const n = Math.min(maxPayload, block.byteLength - o);
      // One frame buffer for the whole item: a fresh 64 KiB per frame was
      // garbage for the page to collect, 16 times per MiB.
      frame ??= new Uint8Array(FRAME_HEADER_BYTES + maxPayload);
      setFrameHeader(frame, item.id, off + o);
      frame.set(block.subarray(o, o + n), FRAME_HEADER_BYTES);
      if (!ch.send(n === maxPayload ? frame : frame.subarray(0, FRAME_HEADER_BYTES + n))) return drop();
    }
    if (onBlock) {
      try {
        await onBlock(block);
      } catch (e) {
        drop();
        throw e;
      }
    }
    off = end;
  }
  return true;
}
