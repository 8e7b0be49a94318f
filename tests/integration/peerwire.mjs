// Helpers for the tests of the links between workers (docs/wire-protocol.md
// §Links between workers): the workers' records in Redis, raw connections to
// a link port, frames, and the metrics that say which way requests went.
import net from "node:net";

import { metricValue, metrics } from "./wire.mjs";

/** The workers' records in Redis: [{ tag, ip, port, token }]. */
export async function records(c) {
  const keys = (await c.redisCli("KEYS", "pd:peer:*")).split("\n").filter(Boolean);
  const out = [];
  for (const k of keys) {
    const [ip, port, token] = (await c.redisCli("GET", k)).split(" ");
    out.push({ tag: k.slice("pd:peer:".length), ip, port: Number(port), token });
  }
  return out;
}

/** One frame: a 4-byte big-endian length, then the bytes (a string or a Buffer). */
export function frame(s) {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
  const h = Buffer.alloc(4);
  h.writeUInt32BE(b.length);
  return Buffer.concat([h, b]);
}

/** Connect to a link port; `got` collects what comes back, `gone` says it closed. */
export function rawLink(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => resolve(s));
    s.got = Buffer.alloc(0);
    s.gone = false;
    s.on("data", (d) => { s.got = Buffer.concat([s.got, d]); });
    s.on("close", () => { s.gone = true; });
    s.on("error", () => {});
    s.once("error", reject);
  });
}

/** Forwarded requests of worker `w` that went by `p` ("link" or "redis"). */
export const forwardPath = async (w, p) =>
  metricValue(await metrics(w.url), `privydrop_signal_poll_forward_path_total{path="${p}"}`);

/** Links of worker `w` that are up, by direction ("in" or "out"). */
export const linksUp = async (w, d) => metricValue(await metrics(w.url), `privydrop_signal_peer_links{dir="${d}"}`);
