// Pieces of the page both views use: notices, the confirm dialog, progress
// bars, folder trees, icons, and a batcher that keeps progress updates from
// redrawing the page on every chunk.
import { $, h } from "./dom";
import type { TreeNode } from "./entries";
import { SpeedMeter, progressText } from "./format";
import { formatBytes, formatPercent, msg, t, tm, type Key, type Msg } from "./i18n";
import type { ManifestItem } from "./protocol";
import type { SignalStatus } from "./signaling";

export type NoticeKind = "error" | "info";

/** What each view gets from the page that holds both. */
export interface PageContext {
  /** ICE servers from the room API, fetched once per page. */
  iceServers(): Promise<RTCIceServer[]>;
  /** Connections of either view changed: the header's peer count is redrawn. */
  peersChanged(): void;
}

// --- notices --------------------------------------------------------------------------

// Notices, toasts and the signal status keep the message (key and
// parameters), not its text, so a change of language redraws them.

/** The error on screen (null when none), drawn again by `relabelNotices`. */
let shownError: Msg | null = null;
/** Where the keyboard was when the error appeared: dismissing it goes back there. */
let focusBeforeError: HTMLElement | null = null;

function drawError(): void {
  const box = $("notices");
  if (!shownError) {
    box.replaceChildren();
    return;
  }
  box.replaceChildren(h("div", { class: "notice error", role: "alert" },
    h("span", { "data-testid": "error" }, tm(shownError)),
    h("button", { type: "button", class: "icon", "aria-label": t("notice.dismiss"), onclick: () => dismissError() }, "×")));
}

/**
 * An error that stays until dismissed (or replaced): `#notices`, a `role=alert`
 * inside an assertive live region, so screen readers read it out at once.
 */
export function showError(m: Msg): void {
  if (!shownError) {
    const active = document.activeElement;
    focusBeforeError = active instanceof HTMLElement && active !== document.body ? active : null;
  }
  shownError = m;
  drawError();
}

export function clearError(): void {
  shownError = null;
  focusBeforeError = null;
  drawError();
}

/**
 * The dismiss button removes itself: the keyboard goes back to where it was
 * before the error (or to the start of the content) rather than to <body>.
 */
function dismissError(): void {
  const back = focusBeforeError;
  clearError();
  if (back?.isConnected && !back.closest("[hidden]")) back.focus();
  else $("main").focus();
}

/** The key of the error shown now, or null (a view clears only the errors it raised itself). */
export function currentErrorKey(): Key | null {
  return shownError?.key ?? null;
}

/**
 * Only one toast is on screen; a newer one replaces it and restarts its 3 s.
 * `#toast` is a `role=status` region that is always in the page (empty and
 * drawn as nothing between toasts): a live region that appears together
 * with its text is not reliably read out, one whose text changes is.
 */
let toastTimer: ReturnType<typeof setTimeout> | undefined;
let shownToast: Msg | null = null;
export function toast(m: Msg): void {
  const el = $("toast");
  shownToast = m;
  el.textContent = tm(m);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.textContent = ""; shownToast = null; }, 3000);
}

/**
 * Says `m` through `#live` (visually hidden, `role=status`, polite): the
 * progress and the end of transfers, which the bars show only to the eye.
 */
export function announce(m: Msg): void {
  $("live").textContent = tm(m);
}

/** What a view's announcements say: progress, success and failure of one entry. */
export interface TransferWords {
  progress: Key;
  done: Key;
  failed: Key;
}

/**
 * Turns an entry's progress into a few announcements: each quarter reached
 * (25 %, 50 %, 75 %), then done or failed. Redrawing a row (a change of
 * language, a new manifest) announces nothing: only a change of state or a
 * new quarter does, so the state is kept here by entry key, not in the row.
 */
export class ProgressAnnouncer {
  private seen = new Map<string, { quarter: number; state: string }>();

  constructor(private words: TransferWords) {}

  update(key: string, name: string, bytes: number, total: number, state: string): void {
    const prev = this.seen.get(key);
    const active = state === "sending" || state === "receiving";
    let quarter = prev?.quarter ?? 0;
    if (active && prev?.state !== state) quarter = 0; // a new run (or a retry) counts from nothing
    this.seen.set(key, { quarter, state });
    if (!prev) return; // first sight of the row: nothing happened yet
    if (state === "done" && prev.state !== "done") {
      announce(msg(this.words.done, { name }));
    } else if (state === "failed" && prev.state !== "failed") {
      announce(msg(this.words.failed, { name }));
    } else if (active && total > 0 && bytes < total) {
      const now = Math.min(3, Math.floor((bytes * 4) / total));
      if (now > quarter) {
        this.seen.set(key, { quarter: now, state });
        announce(msg(this.words.progress, { name, percent: () => formatPercent(now / 4) }));
      }
    }
  }

  forget(keep: Set<string>): void {
    for (const k of this.seen.keys()) if (!keep.has(k)) this.seen.delete(k);
  }
}

/**
 * Draws `list` again with `draw` without dropping the keyboard on <body>:
 * if the focus was on a control inside it, the control with the same
 * `data-focus-key` in the new drawing gets it back, else `fallback()`.
 */
export function redrawKeepingFocus(list: HTMLElement, draw: () => void, fallback?: () => HTMLElement | null): void {
  const active = document.activeElement;
  const inside = active instanceof HTMLElement && list.contains(active) ? active : null;
  const key = inside?.dataset.focusKey;
  draw();
  if (!inside || inside.isConnected) return;
  const same = key ? [...list.querySelectorAll<HTMLElement>("[data-focus-key]")].find((el) => el.dataset.focusKey === key) : undefined;
  (same ?? fallback?.() ?? null)?.focus();
}

export function notice(m: Msg, kind: NoticeKind): void {
  if (kind === "error") showError(m);
  else toast(m);
}

const statusKey: Record<SignalStatus, Key> = {
  connecting: "signal.connecting",
  joined: "signal.joined",
  reconnecting: "signal.reconnecting",
  offline: "signal.offline",
};
let signalState: SignalStatus = "connecting";

/** `#signal-status[data-state]`: the tests wait for `joined`. */
export function setSignalStatus(s: SignalStatus): void {
  const el = $("signal-status");
  signalState = s;
  el.textContent = t(statusKey[s]);
  el.setAttribute("data-state", s);
}

/** Redraws the error, the toast and the signal status in the active language. */
export function relabelNotices(): void {
  drawError();
  if (shownToast) $("toast").textContent = tm(shownToast);
  setSignalStatus(signalState);
}

/** What the signaling server's join error (English, from the server) means for the person reading it. */
export function friendlyJoinError(server: string): Msg {
  if (/does not exist/i.test(server)) return msg("err.roomMissing");
  if (/rate limit/i.test(server)) return msg("err.joinRateLimit", { detail: server });
  if (/full/i.test(server)) return msg("err.roomFull");
  if (/already bound/i.test(server)) return msg("err.alreadyBound");
  if (/server error/i.test(server)) return msg("err.joinServer");
  return server ? msg("err.joinOther", { detail: server }) : msg("err.joinRefused");
}

export const ROOM_CODE_RULE: Msg = msg("err.roomCodeRule");

export function confirmDialog(message: Msg, ok: Msg): Promise<boolean> {
  const dlg = $("confirm") as HTMLDialogElement;
  $("confirm-text").textContent = tm(message);
  $("confirm-ok").textContent = tm(ok);
  return new Promise((resolve) => {
    dlg.onclose = () => {
      $("confirm-ok").textContent = t("dialog.continue");
      resolve(dlg.returnValue === "ok");
    };
    dlg.showModal();
  });
}

/**
 * Fills index.html's static text from the catalogs: `data-i18n="key"` sets
 * the text, `data-i18n-attr="attr:key;attr:key"` sets attributes.
 */
export function applyStatic(root: ParentNode): void {
  for (const el of root.querySelectorAll<HTMLElement>("[data-i18n]")) el.textContent = t(el.dataset.i18n as Key);
  for (const el of root.querySelectorAll<HTMLElement>("[data-i18n-attr]")) {
    for (const pair of (el.dataset.i18nAttr ?? "").split(";")) {
      const [attr, key] = pair.split(":").map((x) => x.trim());
      if (attr && key) el.setAttribute(attr, t(key as Key));
    }
  }
}

// --- items ------------------------------------------------------------------------------

const ICONS = {
  file: "M6 2h8l6 6v14H6z M14 2v6h6",
  folder: "M3 6h6l2 2h10v12H3z",
};

export function kindIcon(kind: "file" | "folder"): Element {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `kind ${kind}`);
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[kind]);
  svg.append(path);
  return svg;
}

/** "3 files · 1.2 MiB" for a folder, "1.2 MiB" for a file. */
export function entrySize(kind: "file" | "folder", files: number, size: number): string {
  return kind === "folder" ? t("item.folderSize", { count: files, size: formatBytes(size) }) : formatBytes(size);
}

/** A nested list of a folder's files, folders first; `mark` adds a per-file note. */
export function treeList(node: TreeNode, mark?: (item: ManifestItem) => string): HTMLElement {
  const ul = h("ul", { class: "tree" });
  const kids = [...node.children.values()].sort((a, b) => Number(!!a.item) - Number(!!b.item) || a.name.localeCompare(b.name));
  for (const c of kids) {
    if (c.item) {
      ul.append(h("li", { class: "tree-file", "data-path": c.item.path },
        h("span", { class: "fname" }, c.name), " ", h("span", { class: "size" }, formatBytes(c.item.size)),
        mark ? h("span", { class: "mark" }, mark(c.item as ManifestItem)) : null));
    } else {
      ul.append(h("li", { class: "tree-dir" }, h("span", { class: "dname" }, `${c.name}/`), treeList(c, mark)));
    }
  }
  return ul;
}

/** The "✓ verified" badge: carries `data-testid="verified"` only while shown. */
export function setVerified(badge: HTMLElement, on: boolean, name?: string): void {
  // Called on every redraw of a row: unchanged, the DOM is left alone.
  if (badge.hidden === !on && (on ? badge.getAttribute("data-testid") === "verified" &&
      (name === undefined || badge.getAttribute("data-name") === name) : !badge.hasAttribute("data-testid"))) return;
  badge.hidden = !on;
  if (on) {
    badge.setAttribute("data-testid", "verified");
    if (name !== undefined) badge.setAttribute("data-name", name);
  } else {
    badge.removeAttribute("data-testid");
  }
}

// --- progress -----------------------------------------------------------------------------

/** One progress bar: `data-testid="progress"`, `data-name`, `data-state`, `data-bytes`. */
export class ProgressBar {
  readonly root: HTMLElement;
  private bar: HTMLProgressElement;
  private text: HTMLElement;
  private meter = new SpeedMeter();

  constructor(name: string) {
    this.bar = h("progress", { max: 1, value: 0, "aria-label": t("progress.label", { name }) });
    this.text = h("span", { class: "ptext", "aria-live": "off" });
    this.root = h("div", { class: "progress", "data-testid": "progress", "data-name": name, "data-state": "pending" }, this.bar, this.text);
  }

  /**
   * Redraws the bar (several times a second during a transfer): only what
   * changed is written, as every write to the DOM costs the page a new style
   * and layout pass.
   */
  set(bytes: number, total: number, state: string, note: string): void {
    if (this.root.getAttribute("data-state") !== state) this.root.setAttribute("data-state", state);
    const b = String(bytes);
    if (this.root.getAttribute("data-bytes") !== b) this.root.setAttribute("data-bytes", b);
    const max = Math.max(total, 1);
    if (this.bar.max !== max) this.bar.max = max;
    const value = total === 0 ? (state === "done" ? 1 : 0) : bytes;
    if (this.bar.value !== value) this.bar.value = value;
    if (state === "sending" || state === "receiving") this.meter.add(bytes);
    else this.meter.reset();
    // Nothing asked for yet: an empty bar says enough.
    const prog = state === "pending" && bytes === 0 ? "" : progressText(bytes, total, this.meter.rate());
    const text = [prog, note].filter(Boolean).join(" — ");
    if (this.text.textContent !== text) this.text.textContent = text;
  }
}

/**
 * Collects keys of rows to redraw and redraws each once per `delayMs`:
 * chunks arrive far more often than a person can read a number. A row's
 * redraw costs the page more than its script: in Firefox ESR 153, drawing
 * the receiving row every 100 ms took 0.13–0.15 s of the page's main thread
 * per 64 MiB (of 0.47–0.54 s in all), time the browser's own data-channel
 * work on the same two cores did not get (docs/benchmarks.md, "Firefox:
 * where the gap was"). Four redraws a second still read as a moving bar.
 */
export class RedrawBatch {
  private dirty = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private redraw: (key: string) => void, private delayMs = 250) {}

  add(key: string): void {
    this.dirty.add(key);
    this.timer ??= setTimeout(() => this.flush(), this.delayMs);
  }

  /** Redraws every collected row now (a final state should not wait). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const keys = [...this.dirty];
    this.dirty.clear();
    for (const k of keys) this.redraw(k);
  }
}
