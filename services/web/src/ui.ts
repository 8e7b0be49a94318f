// Pieces of the page both views use: notices, the confirm dialog, progress
// bars, folder trees, icons, and a batcher that keeps progress updates from
// redrawing the page on every chunk.
import { $, h } from "./dom";
import type { TreeNode } from "./entries";
import { SpeedMeter, formatBytes, progressText } from "./format";
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

/** An error that stays until dismissed (or replaced): `#notices`. */
export function showError(message: string): void {
  const box = $("notices");
  box.replaceChildren(h("div", { class: "notice error", role: "alert" },
    h("span", { "data-testid": "error" }, message),
    h("button", { type: "button", class: "icon", "aria-label": "Dismiss", onclick: () => box.replaceChildren() }, "×")));
}

export function clearError(): void {
  $("notices").replaceChildren();
}

/** The error shown now, or "" (a view clears only the errors it raised itself). */
export function currentError(): string {
  return $("notices").textContent ?? "";
}

/** Only one toast is on screen; a newer one replaces it and restarts its 3 s. */
let toastTimer: ReturnType<typeof setTimeout> | undefined;
export function toast(message: string): void {
  const t = $("toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 3000);
}

export function notice(message: string, kind: NoticeKind): void {
  if (kind === "error") showError(message);
  else toast(message);
}

const statusText: Record<SignalStatus, string> = {
  connecting: "Connecting…",
  joined: "Online",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

/** `#signal-status[data-state]`: the tests wait for `joined`. */
export function setSignalStatus(s: SignalStatus): void {
  const el = $("signal-status");
  el.textContent = statusText[s];
  el.setAttribute("data-state", s);
}

/** What the signaling server's join error means for the person reading it. */
export function friendlyJoinError(msg: string): string {
  if (/does not exist/i.test(msg)) return "This room does not exist or has expired. Check the code, or ask the sender for a new link.";
  if (/rate limit/i.test(msg)) return `Too many attempts to join from your network (${msg}).`;
  if (/full/i.test(msg)) return "This room is full: it has as many people as it allows. Ask the sender for a new room.";
  if (/already bound/i.test(msg)) return "This connection is already in another room. Reload the page.";
  if (/server error/i.test(msg)) return "The server had a problem joining the room.";
  return msg;
}

export const ROOM_CODE_RULE = "A room code is 1 to 64 letters, digits, '-' or '_'.";

export function confirmDialog(message: string, ok: string): Promise<boolean> {
  const dlg = $("confirm") as HTMLDialogElement;
  $("confirm-text").textContent = message;
  $("confirm-ok").textContent = ok;
  return new Promise((resolve) => {
    dlg.onclose = () => resolve(dlg.returnValue === "ok");
    dlg.showModal();
  });
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
  return kind === "folder" ? `${files} files · ${formatBytes(size)}` : formatBytes(size);
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
    this.bar = h("progress", { max: 1, value: 0, "aria-label": `Progress of ${name}` });
    this.text = h("span", { class: "ptext", "aria-live": "off" });
    this.root = h("div", { class: "progress", "data-testid": "progress", "data-name": name, "data-state": "pending" }, this.bar, this.text);
  }

  set(bytes: number, total: number, state: string, note: string): void {
    this.root.setAttribute("data-state", state);
    this.root.setAttribute("data-bytes", String(bytes));
    this.bar.max = Math.max(total, 1);
    this.bar.value = total === 0 ? (state === "done" ? 1 : 0) : bytes;
    if (state === "sending" || state === "receiving") this.meter.add(bytes);
    else this.meter.reset();
    // Nothing asked for yet: an empty bar says enough.
    const prog = state === "pending" && bytes === 0 ? "" : progressText(bytes, total, this.meter.rate());
    this.text.textContent = [prog, note].filter(Boolean).join(" — ");
  }
}

/**
 * Collects keys of rows to redraw and redraws each once per `delayMs`:
 * chunks arrive far more often than a person can read a number.
 */
export class RedrawBatch {
  private dirty = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private redraw: (key: string) => void, private delayMs = 100) {}

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
