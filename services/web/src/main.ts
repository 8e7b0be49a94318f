// The page: one send view, one receive view, and what they share — the ICE
// servers, the header (peer count, theme) and the choice, from the URL, of
// which view starts.
import "./styles.css";
import { getIceServers } from "./api";
import { $, h } from "./dom";
import {
  LOCALES, LOCALE_KEY, LOCALE_TAGS, NATIVE_NAMES, initialLocale, isLocale, locale, msg, onLocaleChange, setLocale, t, type Key,
} from "./i18n";
import { debug } from "./log";
import { setRelayOnly } from "./peer";
import { ReceiveView } from "./receive-view";
import { SendView } from "./send-view";
import { applyStatic, relabelNotices, showError, type PageContext } from "./ui";

const THEMES = ["auto", "light", "dark"] as const;
const THEME_KEY = "privydrop-theme";

const THEME_LABEL: Record<(typeof THEMES)[number], Key> = { auto: "theme.auto", light: "theme.light", dark: "theme.dark" };

function initTheme(): void {
  const btn = $("theme-toggle");
  const apply = (theme: (typeof THEMES)[number]) => {
    if (theme === "auto") document.documentElement.removeAttribute("data-theme");
    else document.documentElement.setAttribute("data-theme", theme);
    btn.textContent = t(THEME_LABEL[theme]);
  };
  const saved = localStorage.getItem(THEME_KEY);
  let cur: (typeof THEMES)[number] = THEMES.find((x) => x === saved) ?? "auto";
  apply(cur);
  btn.addEventListener("click", () => {
    cur = THEMES[(THEMES.indexOf(cur) + 1) % THEMES.length];
    localStorage.setItem(THEME_KEY, cur);
    apply(cur);
  });
  onLocaleChange(() => apply(cur));
}

/**
 * The language: a choice saved with the switcher, else the best match for
 * navigator.languages (English when none matches). The switcher lists each
 * language in its own words; choosing one redraws the page at once and is
 * remembered in localStorage.
 */
async function initLanguage(): Promise<void> {
  let store: Storage | null = null;
  try {
    store = localStorage;
  } catch { /* storage blocked: the choice lasts for this page only */ }
  const first = initialLocale(store, navigator.languages?.length ? navigator.languages : [navigator.language]);
  await setLocale(first).catch(() => setLocale("en"));
  const select = $("lang-select") as HTMLSelectElement;
  select.replaceChildren(...LOCALES.map((l) => h("option", { value: l, lang: LOCALE_TAGS[l] }, NATIVE_NAMES[l])));
  select.value = locale();
  select.addEventListener("change", () => {
    const l = select.value;
    if (!isLocale(l)) return;
    try {
      store?.setItem(LOCALE_KEY, l);
    } catch { /* full or blocked: the page still switches */ }
    // Not fetched (offline?): the switcher goes back to the language shown.
    setLocale(l).catch(() => { select.value = locale(); });
  });
  // The browser's preferences changed: follow them, unless a choice was made here.
  window.addEventListener("languagechange", () => {
    void setLocale(initialLocale(store, navigator.languages)).catch(() => undefined);
  });
  onLocaleChange((l) => {
    select.value = l;
    applyStatic(document);
    relabelNotices();
  });
  applyStatic(document);
  relabelNotices();
}

/** ICE servers, asked for once per page; `relayOnly` warns when no TURN server is offered. */
function iceServerSource(relayOnly: boolean): () => Promise<RTCIceServer[]> {
  let servers: Promise<RTCIceServer[]> | null = null;
  return () => {
    servers ??= getIceServers().then((list) => {
      const urls = list.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]));
      if (relayOnly && !urls.some((u) => /^turns?:/i.test(u))) {
        showError(msg("err.relayNoTurn"));
      }
      return list;
    });
    return servers;
  };
}

async function main(): Promise<void> {
  await initLanguage();
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
  onLocaleChange(() => {
    send?.relabel();
    receive?.relabel();
  });
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

void main();
