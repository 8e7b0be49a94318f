// The "Receive" half of the page: joining a room by code or link, what the
// sender offers with each item's progress, received text, and saving (as
// downloads or into a picked folder). It owns the Receiver and the signaling
// connection of the room it joined.
import { validRoomId } from "./api";
import { $, copyText, h } from "./dom";
import { buildTree } from "./entries";
import { bytes, formatDuration, formatPercent, formatTime, msg, t, tm, type Msg } from "./i18n";
import type { ManifestItem } from "./protocol";
import { Receiver } from "./receiver";
import { Signaling } from "./signaling";
import { showBrowserNotes } from "./browser-notes";
import { canPickDirectory, pickDirectory } from "./storage";
import {
  ProgressAnnouncer, ProgressBar, ROOM_CODE_RULE, RedrawBatch, clearError, confirmDialog, entrySize, friendlyJoinError,
  kindIcon, notice, redrawKeepingFocus, setSignalStatus, setVerified, showError, toast, treeList, type PageContext,
} from "./ui";

interface RecvRow {
  progress: ProgressBar;
  verified: HTMLElement;
  button: HTMLButtonElement;
  tree: HTMLElement | null;
}

/** Folders with at most this many files show their contents unfolded. */
const OPEN_TREE_FILES = 20;

export class ReceiveView {
  private receiver: Receiver | null = null;
  private sig: Signaling | null = null;
  private rows = new Map<string, RecvRow>();
  private batch = new RedrawBatch((key) => this.updateEntry(key));
  private announcer = new ProgressAnnouncer({ progress: "live.receiving", done: "live.received", failed: "live.failed" });
  /** What `#recv-status` says (redrawn on a change of language). */
  private statusMsg: Msg | null = null;
  /** When the text shown arrived. */
  private textAt = new Date();

  constructor(private page: PageContext) {}

  /** 1 while connected to the sender over WebRTC, else 0. */
  get connectedCount(): number {
    return this.receiver?.connected ? 1 : 0;
  }

  /** Joins `roomId` as a receiver, replacing the room joined before. */
  async start(roomId: string): Promise<void> {
    if (!validRoomId(roomId)) {
      showError(ROOM_CODE_RULE);
      return;
    }
    if (this.receiver && this.sig?.roomId === roomId) return;
    this.receiver?.close();
    this.sig?.close();
    clearError();
    $("recv-room").textContent = roomId;
    $("recv-body").hidden = false;
    this.setStatus(msg("recv.joining"));
    const url = new URL(location.href);
    url.searchParams.set("room", roomId);
    history.replaceState(null, "", url);
    const ice = await this.page.iceServers();
    let r!: Receiver;
    const sig = new Signaling({
      status: (s) => {
        setSignalStatus(s);
        if (s === "reconnecting") this.setStatus(msg("recv.signalLost"));
      },
      joined: () => r.onJoined(),
      joinFailed: (reason, retryMs) => {
        const text = friendlyJoinError(reason);
        showError(retryMs ? msg("err.retrying", { message: text, time: () => formatDuration(Math.ceil(retryMs / 1000)) }) : text);
        this.setStatus(msg(retryMs ? "recv.waitingRetry" : "recv.couldNotJoin"));
      },
      offer: (from, o) => r.onOffer(from, o),
      candidate: (from, c) => r.onCandidate(from, c),
      initiatorOnline: () => r.onInitiatorOnline(),
      peerDisconnected: (id) => r.onPeerDisconnected(id),
      ready: () => undefined,
      answer: () => undefined,
      recipientReady: () => undefined,
    });
    r = new Receiver(sig, ice, {
      status: (text) => {
        this.setStatus(text);
        this.page.peersChanged();
        $("offered-empty").hidden = !(r.connected && r.entries().length === 0);
      },
      manifestChanged: () => this.renderOffered(),
      entryChanged: (key, final) => {
        this.batch.add(key);
        // A final state should not wait for the batch (the person waits for it).
        if (final) this.batch.flush();
      },
      textChanged: (text) => {
        this.textAt = new Date();
        this.renderText(text);
      },
      notice,
      clearNotice: clearError,
      confirmMemory: (name, size) => confirmDialog(
        msg("recv.confirmMemory", { name, size: bytes(size) }), msg("recv.confirmMemoryOk")),
    });
    this.receiver = r;
    this.sig = sig;
    sig.join(roomId);
    this.renderOffered();
    this.renderText(null);
    // Receiving comes first, on screen and in the keyboard's tab order. The
    // send half moves, not this one: moving the join form would take the
    // focus from it (the person just pressed Enter there).
    const recv = document.querySelector("section.receive");
    const send = document.querySelector("section.send");
    if (recv && send && recv.compareDocumentPosition(send) & Node.DOCUMENT_POSITION_PRECEDING) {
      const active = document.activeElement;
      recv.after(send);
      if (active instanceof HTMLElement && send.contains(active)) active.focus();
    }
  }

  private setStatus(m: Msg): void {
    this.statusMsg = m;
    $("recv-status").textContent = tm(m);
  }

  /** Redraws everything this view wrote, in the active language. */
  relabel(): void {
    if (this.statusMsg) this.setStatus(this.statusMsg);
    this.renderOffered();
    this.renderText(this.receiver?.text ?? null);
  }

  // --- what is offered ----------------------------------------------------------------------

  private renderOffered(): void {
    const list = $("offered-list");
    redrawKeepingFocus(list, () => this.drawOffered(list),
      () => list.querySelector<HTMLElement>("button") ?? $("join-input"));
  }

  private drawOffered(list: HTMLElement): void {
    list.replaceChildren();
    this.rows.clear();
    const receiver = this.receiver;
    if (!receiver) return;
    const entries = receiver.entries();
    $("offered-empty").hidden = entries.length > 0 || !receiver.connected;
    $("offered-actions").hidden = entries.length === 0;
    for (const e of entries) {
      const progress = new ProgressBar(e.name);
      const verified = h("span", { class: "badge ok", hidden: true }, t("recv.verified"));
      const button = h("button", { type: "button", class: "primary", "data-testid": "download-button", "data-name": e.name, "data-focus-key": `dl:${e.key}`,
        "aria-label": t("recv.downloadName", { name: e.name }), onclick: () => void receiver.download(e.key) },
      t(e.kind === "folder" ? "recv.downloadZip" : "recv.download"));
      const tree = e.kind === "folder" ? treeList(buildTree(e.files), (it) => this.fileMark(it)) : null;
      const actions = h("div", { class: "item-actions" }, button,
        e.kind === "folder" && canPickDirectory()
          ? h("button", { type: "button", "data-focus-key": `dir:${e.key}`, onclick: () => void this.saveIntoFolder([e.key]) }, t("recv.saveIntoFolder")) : null);
      const row = h("li", { class: "item", "data-testid": "offered-item", "data-name": e.name, "data-kind": e.kind, "data-size": e.size },
        h("div", { class: "item-head" },
          kindIcon(e.kind),
          h("span", { class: "name" }, e.name),
          h("span", { class: "size" }, entrySize(e.kind, e.files.length, e.size))),
        tree ? h("details", { open: e.files.length <= OPEN_TREE_FILES }, h("summary", { "data-focus-key": `tree:${e.key}` }, t("item.folderContents")), tree) : null,
        progress.root, actions, verified);
      list.append(row);
      this.rows.set(e.key, { progress, verified, button, tree });
      this.updateEntry(e.key);
    }
    this.announcer.forget(new Set(entries.map((e) => e.key)));
  }

  /** A folder's file in its tree: ✓ verified, ✗ failed, or the share received. */
  private fileMark(it: ManifestItem): string {
    const tr = this.receiver?.transfers.get(it.id);
    if (!tr) return "";
    if (tr.state === "done") return " ✓";
    if (tr.state === "failed") return " ✗";
    return ` ${formatPercent(it.size ? tr.intake.received / it.size : 0)}`;
  }

  private updateEntry(key: string): void {
    const row = this.rows.get(key);
    const receiver = this.receiver;
    if (!row || !receiver) return;
    const e = receiver.entry(key);
    if (!e) return;
    const p = receiver.entryProgress(e);
    row.progress.set(p.bytes, e.size, p.state, p.note ? tm(p.note) : "");
    setVerified(row.verified, p.verified, e.name);
    const label = t(p.state === "failed" ? "recv.retry" : p.state === "done" ? "recv.saveAgain" : e.kind === "folder" ? "recv.downloadZip" : "recv.download");
    if (row.button.textContent !== label) row.button.textContent = label;
    // Not `disabled`: a disabled button loses the keyboard focus (to <body>)
    // the moment Enter on it starts the download. aria-disabled says the same
    // to assistive technology, and download() ignores a second press.
    if (p.state === "receiving") {
      if (!row.button.hasAttribute("aria-disabled")) row.button.setAttribute("aria-disabled", "true");
    } else if (row.button.hasAttribute("aria-disabled")) {
      row.button.removeAttribute("aria-disabled");
    }
    this.announcer.update(key, e.name, p.bytes, e.size, p.state);
    if (row.tree) {
      for (const li of row.tree.querySelectorAll<HTMLElement>(".tree-file")) {
        const f = e.files.find((x) => x.path === li.dataset.path);
        const mark = li.querySelector(".mark");
        if (f && mark) mark.textContent = this.fileMark(f);
      }
    }
  }

  private renderText(text: string | null): void {
    const box = $("received-text-box");
    redrawKeepingFocus(box, () => this.drawText(box, text), () => $("join-input"));
  }

  private drawText(box: HTMLElement, text: string | null): void {
    box.replaceChildren();
    box.hidden = text === null;
    if (text === null) return;
    box.append(
      h("div", { class: "text-head" },
        h("h3", {}, t("recv.text"), " ", h("span", { class: "muted small" }, t("recv.textReceivedAt", { time: formatTime(this.textAt) }))),
        h("button", { type: "button", "data-testid": "copy-text", "data-focus-key": "copy-text", onclick: async () => toast(msg((await copyText(text)) ? "recv.textCopied" : "recv.textCopyFailed")) },
          t("recv.copyText"))),
      h("pre", { class: "received-text", "data-testid": "received-text", "data-focus-key": "received-text", tabindex: 0 }, text));
  }

  private async saveIntoFolder(keys: string[]): Promise<void> {
    const dir = await pickDirectory();
    if (!dir || !this.receiver) return;
    await this.receiver.saveToDirectory(keys, dir);
  }

  // --- input ---------------------------------------------------------------------------------

  /** Hooks the receive half's controls (join form, download all, save all into a folder). */
  bind(): void {
    $("join-form").addEventListener("submit", (e) => {
      e.preventDefault();
      let code = ($("join-input") as HTMLInputElement).value.trim();
      // Accept a pasted link as well as a bare code.
      try {
        const u = new URL(code);
        code = u.searchParams.get("room") ?? code;
      } catch { /* not a link */ }
      void this.start(code);
    });
    $("download-all").addEventListener("click", () => void this.receiver?.downloadAll());
    const saveAll = $("save-all-dir");
    saveAll.hidden = !canPickDirectory();
    showBrowserNotes($("recv-body"));
    saveAll.addEventListener("click", () => {
      if (this.receiver) void this.saveIntoFolder(this.receiver.entries().map((e) => e.key));
    });
  }
}
