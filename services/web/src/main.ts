// The page: one send view, one receive view, and what they share — the ICE
// servers, the header (peer count, theme) and the choice, from the URL, of
// which view starts.
import "./styles.css";
import { getIceServers } from "./api";
import { $ } from "./dom";
import { debug } from "./log";
import { setRelayOnly } from "./peer";
import { ReceiveView } from "./receive-view";
import { SendView } from "./send-view";
import { showError, type PageContext } from "./ui";

const THEMES = ["auto", "light", "dark"] as const;
const THEME_KEY = "privydrop-theme";

function initTheme(): void {
  const btn = $("theme-toggle");
  const apply = (t: string) => {
    if (t === "auto") document.documentElement.removeAttribute("data-theme");
    else document.documentElement.setAttribute("data-theme", t);
    btn.textContent = t === "auto" ? "Theme: auto" : t === "light" ? "Theme: light" : "Theme: dark";
  };
  let cur = localStorage.getItem(THEME_KEY) ?? "auto";
  apply(cur);
  btn.addEventListener("click", () => {
    cur = THEMES[(THEMES.indexOf(cur as (typeof THEMES)[number]) + 1) % THEMES.length];
    localStorage.setItem(THEME_KEY, cur);
    apply(cur);
  });
}

/** ICE servers, asked for once per page; `relayOnly` warns when no TURN server is offered. */
function iceServerSource(relayOnly: boolean): () => Promise<RTCIceServer[]> {
  let servers: Promise<RTCIceServer[]> | null = null;
  return () => {
    servers ??= getIceServers().then((list) => {
      const urls = list.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]));
      if (relayOnly && !urls.some((u) => /^turns?:/i.test(u))) {
        showError("Relay-only mode (?relay=1) is on, but this server offers no TURN relay: connections will fail.");
      }
      return list;
    });
    return servers;
  };
}

function main(): void {
  const params = new URLSearchParams(location.search);
  // `?relay=1`: relay-only ICE, for strict networks (and the TURN end-to-end test).
  const relayOnly = params.get("relay") === "1";
  if (relayOnly) {
    setRelayOnly(true);
    debug("relay-only ICE (?relay=1): peer connections go through TURN only");
  }
  let send: SendView | null = null;
  let receive: ReceiveView | null = null;
  const page: PageContext = {
    iceServers: iceServerSource(relayOnly),
    peersChanged: () => {
      const n = (send?.connectedCount ?? 0) + (receive?.connectedCount ?? 0);
      const el = $("peer-count");
      el.textContent = String(n);
      el.setAttribute("data-count", String(n));
    },
  };
  send = new SendView(page);
  receive = new ReceiveView(page);
  initTheme();
  send.bind();
  receive.bind();
  const room = params.get("room");
  if (room) {
    // Here to receive: the sending side starts only when asked for.
    send.hideUntilAsked();
    ($("join-input") as HTMLInputElement).value = room;
    void receive.start(room);
  } else {
    void send.start();
  }
}

main();
