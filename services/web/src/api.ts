// The room API over HTTP (docs/wire-protocol.md §Room API), same origin as the page.

import { LocalizedError, msg, type Msg } from "./i18n";

/** A failed room API call; the server's own text (English) is kept as a detail. */
export class ApiError extends LocalizedError {
  constructor(m: Msg, readonly status: number) {
    super(m);
  }
}

async function call<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: body === undefined ? undefined : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(msg("api.unreachable"), 0);
  }
  let data: unknown = null;
  try {
    data = await res.json();
  } catch {
    /* a non-JSON answer: reported below by status */
  }
  if (!res.ok) {
    const text = (data as { error?: string; message?: string } | null)?.error ??
      (data as { message?: string } | null)?.message;
    if (res.status === 429) throw new ApiError(msg("api.tooMany"), 429);
    throw new ApiError(text ? msg("api.status", { status: `${res.status} (${text})` }) : msg("api.status", { status: String(res.status) }), res.status);
  }
  return data as T;
}

/** A fresh room id handed out by the server (already created). */
export async function getRoom(): Promise<string> {
  const r = await call<{ roomId?: string }>("GET", "/api/get_room");
  if (typeof r?.roomId !== "string" || !r.roomId) throw new ApiError(msg("api.noRoom"), 500);
  return r.roomId;
}

/** Creates a room with our own id; resolves to the server's message. */
export async function createRoom(roomId: string): Promise<string> {
  const r = await call<{ success?: boolean; message?: string }>("POST", "/api/create_room", { roomId });
  if (!r?.success) {
    const m = r?.message ?? "";
    throw new ApiError(/exist/i.test(m) ? msg("api.roomTaken", { room: roomId }) : m ? msg("api.serverSaid", { detail: m }) : msg("api.createFailed"), 409);
  }
  return r.message ?? "";
}

export interface IceConfig {
  iceServers: RTCIceServer[];
}

/** STUN/TURN servers with fresh credentials; none when the route is absent. */
export async function getIceServers(): Promise<RTCIceServer[]> {
  try {
    const res = await fetch("/api/ice_servers");
    if (!res.ok) return [];
    const data = (await res.json()) as { iceServers?: unknown };
    return Array.isArray(data.iceServers) ? (data.iceServers as RTCIceServer[]) : [];
  } catch {
    return [];
  }
}

/** Room ids the server accepts: 1–64 of [A-Za-z0-9_-]. */
export function validRoomId(id: string): boolean {
  return /^[A-Za-z0-9_-]{1,64}$/.test(id);
}
