// The data-channel protocol, version 2 (docs/datachannel-protocol.md).
// Pure encoders and decoders: no I/O here, so both ends and the docs agree
// on one definition of every message.

export const PROTOCOL_VERSION = 2;
/** RTCDataChannel label and sub-protocol the sender opens. */
export const CHANNEL_LABEL = "privydrop";
export const CHANNEL_PROTOCOL = `privydrop/${PROTOCOL_VERSION}`;

/** Chunk frame header: magic, version, flags, item id, offset (hi, lo). */
export const FRAME_MAGIC = 0x50; // 'P'
export const FRAME_HEADER_BYTES = 16;
/** Largest payload in one chunk frame (64 KiB measured fastest in Chromium); smaller when the
 *  peer announces a smaller SCTP max-message-size. */
export const CHUNK_BYTES = 64 * 1024;
/** The sender stops queuing while bufferedAmount is above this... */
export const BUFFER_HIGH = 8 * 1024 * 1024;
/** ...and resumes when it falls to this (bufferedamountlow). */
export const BUFFER_LOW = 2 * 1024 * 1024;
/** At most this many bytes of one item are sent but not yet acknowledged. */
export const ACK_WINDOW = 16 * 1024 * 1024;
/** The receiver acknowledges at least every this many persisted bytes. */
export const ACK_EVERY = 1024 * 1024;
/** Manifest parts are cut so that one JSON message stays below this size. */
export const MANIFEST_PART_BYTES = 48 * 1024;

export type ItemKind = "file" | "text";

/** One offered item. Folders are not items: a file's path carries them. */
export interface ManifestItem {
  id: number;
  kind: ItemKind;
  /** "/"-separated relative path; for a top-level file it is just the name. */
  path: string;
  size: number;
  mime: string;
  lastModified: number;
}

export type ControlMessage =
  | { type: "hello"; version: number; role: "sender" | "receiver"; clientId: string; session?: string }
  | { type: "manifest"; session: string; revision: number; part: number; parts: number; items: ManifestItem[] }
  | { type: "request"; id: number; offset: number }
  | { type: "cancel"; id: number }
  | { type: "ack"; id: number; offset: number }
  | { type: "end"; id: number; size: number; sha256: string }
  | { type: "result"; id: number; ok: boolean; sha256: string }
  | { type: "error"; id?: number; code: string; message: string };

export function encodeControl(msg: ControlMessage): string {
  return JSON.stringify(msg);
}

function isInt(v: unknown, min = 0): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= min;
}

function isItem(v: unknown): v is ManifestItem {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return isInt(o.id) && (o.kind === "file" || o.kind === "text") && typeof o.path === "string" &&
    isInt(o.size) && typeof o.mime === "string" && typeof o.lastModified === "number";
}

/** Parses one text message; returns null for anything malformed or unknown. */
export function decodeControl(text: string): ControlMessage | null {
  let o: Record<string, unknown>;
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== "object" || v === null || Array.isArray(v)) return null;
    o = v as Record<string, unknown>;
  } catch {
    return null;
  }
  switch (o.type) {
    case "hello":
      if (!isInt(o.version, 1) || (o.role !== "sender" && o.role !== "receiver") || typeof o.clientId !== "string") return null;
      if (o.session !== undefined && typeof o.session !== "string") return null;
      return o as ControlMessage;
    case "manifest":
      if (typeof o.session !== "string" || !isInt(o.revision) || !isInt(o.part) || !isInt(o.parts, 1) ||
          (o.part as number) >= (o.parts as number) || !Array.isArray(o.items) || !o.items.every(isItem)) return null;
      return o as ControlMessage;
    case "request":
    case "ack":
      return isInt(o.id) && isInt(o.offset) ? (o as ControlMessage) : null;
    case "cancel":
      return isInt(o.id) ? (o as ControlMessage) : null;
    case "end":
      return isInt(o.id) && isInt(o.size) && typeof o.sha256 === "string" ? (o as ControlMessage) : null;
    case "result":
      return isInt(o.id) && typeof o.ok === "boolean" && typeof o.sha256 === "string" ? (o as ControlMessage) : null;
    case "error":
      if (o.id !== undefined && !isInt(o.id)) return null;
      return typeof o.code === "string" && typeof o.message === "string" ? (o as ControlMessage) : null;
    default:
      return null;
  }
}

export interface ChunkFrame {
  id: number;
  offset: number;
  payload: Uint8Array;
}

/** Allocates a frame with room for `len` payload bytes and writes its header. */
export function makeFrame(id: number, offset: number, len: number): Uint8Array {
  const frame = new Uint8Array(FRAME_HEADER_BYTES + len);
  setFrameHeader(frame, id, offset);
  return frame;
}

/** Writes a frame header for item `id` at `offset` into the start of `frame` (reused frames). */
export function setFrameHeader(frame: Uint8Array, id: number, offset: number): void {
  const view = new DataView(frame.buffer, frame.byteOffset, FRAME_HEADER_BYTES);
  view.setUint8(0, FRAME_MAGIC);
  view.setUint8(1, PROTOCOL_VERSION);
  view.setUint16(2, 0);
  view.setUint32(4, id);
  view.setUint32(8, Math.floor(offset / 0x100000000));
  view.setUint32(12, offset % 0x100000000);
}

export function decodeFrame(buf: ArrayBuffer): ChunkFrame | null {
  if (buf.byteLength <= FRAME_HEADER_BYTES) return null;
  const view = new DataView(buf);
  if (view.getUint8(0) !== FRAME_MAGIC || view.getUint8(1) !== PROTOCOL_VERSION) return null;
  const offset = view.getUint32(8) * 0x100000000 + view.getUint32(12);
  if (!Number.isSafeInteger(offset)) return null;
  return { id: view.getUint32(4), offset, payload: new Uint8Array(buf, FRAME_HEADER_BYTES) };
}

/** Splits a manifest into messages that each stay below MANIFEST_PART_BYTES. */
export function manifestParts(session: string, revision: number, items: ManifestItem[]): ControlMessage[] {
  const groups: ManifestItem[][] = [[]];
  let size = 0;
  for (const item of items) {
    const len = JSON.stringify(item).length + 1;
    if (size + len > MANIFEST_PART_BYTES && groups[groups.length - 1].length > 0) {
      groups.push([]);
      size = 0;
    }
    groups[groups.length - 1].push(item);
    size += len;
  }
  return groups.map((g, part) => ({ type: "manifest", session, revision, part, parts: groups.length, items: g }));
}

/**
 * Makes a received path safe to use as a zip entry or a file below a picked
 * directory: "/"-separated, no empty, "." or ".." segments, no control or
 * reserved characters. Returns null when nothing usable is left.
 */
export function safePath(path: string): string | null {
  const segs = path.replace(/\\/g, "/").split("/")
    .map((s) => s.replace(/[\u0000-\u001f\u007f<>:"|?*]/g, "_").trim())
    .filter((s) => s !== "" && s !== "." && s !== "..");
  return segs.length ? segs.join("/") : null;
}
