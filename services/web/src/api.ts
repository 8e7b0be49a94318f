// The room API over HTTP (docs/wire-protocol.md §Room API), same origin as the page.

export class ApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
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
    throw new ApiError("The server cannot be reached. Check your connection and try again.", 0);
  }
  let data: unknown = null;
  try {
    data = await res.json();
  } catch {
    /* a non-JSON answer: reported below by status */
  }
  if (!res.ok) {
    const msg = (data as { error?: string; message?: string } | null)?.error ??
      (data as { message?: string } | null)?.message;
    if (res.status === 429) throw new ApiError(msg ?? "Too many requests. Wait a moment and try again.", 429);
    throw new ApiError(msg ?? `The server answered ${res.status}.`, res.status);
  }
  return data as T;
}

/** A fresh room id handed out by the server (already created). */
export async function getRoom(): Promise<string> {
  const r = await call<{ roomId?: string }>("GET", "/api/get_room");
  if (typeof r?.roomId !== "string" || !r.roomId) throw new ApiError("The server did not hand out a room.", 500);
  return r.roomId;
}

/** Creates a room with our own id; resolves to the server's message. */
export async function createRoom(roomId: string): Promise<string> {
  const r = await call<{ success?: boolean; message?: string }>("POST", "/api/create_room", { roomId });
  if (!r?.success) {
    const m = r?.message ?? "";
    throw new ApiError(/exist/i.test(m) ? `Room "${roomId}" is already taken. Pick another id.` : m || "The room could not be created.", 409);
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
