// The "Send" half of the page: the room (code, link, QR code), what is shared
// (files, folders, text) with each item's progress per receiver, and the
// receivers connected. It owns the Sender and the signaling connection of its
// room.
import { createRoom, getRoom, validRoomId } from "./api";
import { $, copyText, h } from "./dom";
import { buildTree, groupEntries } from "./entries";
import { fromDrop, fromInput, type PickedFile } from "./files";
import { bytes, errorDetail, formatDuration, formatPercent, msg, t, type Msg } from "./i18n";
import { qrSvg } from "./qr";
import { Sender, type OutTransfer } from "./sender";
import { Signaling } from "./signaling";
import {
  ProgressAnnouncer, ProgressBar, ROOM_CODE_RULE, RedrawBatch, clearError, currentErrorKey, entrySize, friendlyJoinError,
  kindIcon, notice, redrawKeepingFocus, setSignalStatus, setVerified, showError, toast, treeList, type PageContext,
} from "./ui";

/** "Receiver 2": receivers are numbered in the order they first connected. */
function receiverLabel(no: number): Msg {
  return msg("send.receiverLabel", { n: no });
}

interface SendRow {
  progress: ProgressBar;
  verified: HTMLElement;
}

/** A page without a room of its own retries getting one this often. */
const ROOM_RETRY_MS = 4000;
/** Typing pauses this long before the text is shared. */
const TEXT_SETTLE_MS = 300;

export class SendView {
  /** Exists before its room does, so items can be added at once. */
  private sender: Sender | null = null;
  private sig: Signaling | null = null;
  /** The automatic room being fetched and joined (one per page). */
  private starting: Promise<void> | null = null;
  private rows = new Map<string, SendRow>();
  private batch = new RedrawBatch((key) => this.updateEntry(key));
  private announcer = new ProgressAnnouncer({ progress: "live.sending", done: "live.sent", failed: "live.failed" });
  private textTimer: ReturnType<typeof setTimeout> | undefined;
  /** What `#text-status` says (redrawn on a change of language). */
  private textStatus: Msg | null = null;

  constructor(private page: PageContext) {}

  /** Receivers connected over WebRTC right now. */
  get connectedCount(): number {
    return this.sender?.connectedCount ?? 0;
  }

  /** Here to receive: the sending side waits for "Send something from here". */
  hideUntilAsked(): void {
    $("send-body").hidden = true;
    $("send-start").hidden = false;
  }

  /** Gets a room (ours, or `customId`) and joins it; one automatic room per page. */
  start(customId?: string): Promise<void> {
    if (customId) return this.openRoom(customId);
    this.starting ??= this.openRoom().catch(() => {
      // No room yet (the room API is unreachable?): keep trying.
      this.starting = null;
      setTimeout(() => void this.start(), ROOM_RETRY_MS);
    });
    return this.starting;
  }

  private ensureSender(): Sender {
    this.sender ??= new Sender(null, () => this.page.iceServers(), {
      itemsChanged: () => this.renderShared(),
      peersChanged: () => this.renderPeers(),
      transferChanged: (t) => this.transferChanged(t),
      notice,
    });
    return this.sender;
  }

  private async openRoom(customId?: string): Promise<void> {
    $("send-start").hidden = true;
    $("send-body").hidden = false;
    const ice = this.page.iceServers();
    let roomId: string;
    try {
      if (customId) {
        await createRoom(customId);
        roomId = customId;
      } else {
        roomId = await getRoom();
      }
    } catch (e) {
      if (customId) {
        showError(msg("err.useRoom", { room: customId, detail: errorDetail(e) }));
        return;
      }
      showError(msg("err.getRoom", { detail: errorDetail(e) }));
      if (!this.sig) $("room-id").textContent = "—";
      throw e;
    }
    const old = this.sig;
    const sig = new Signaling({
      status: (s) => setSignalStatus(s),
      joined: () => {
        sig.announceInitiator();
        this.renderPeers();
      },
      joinFailed: (reason, retryMs) => {
        if (/does not exist/i.test(reason)) {
          // Our room expired while we were away: make it again under the same id.
          createRoom(roomId).then(() => sig.retryJoin(), (e) => showError(msg("err.recreateRoom", { detail: errorDetail(e) })));
          return;
        }
        const text = friendlyJoinError(reason);
        showError(retryMs ? msg("err.retrying", { message: text, time: () => formatDuration(Math.ceil(retryMs / 1000)) }) : text);
      },
      ready: (id) => void this.sender?.connectTo(id),
      recipientReady: (id) => void this.sender?.connectTo(id),
      answer: (from, a) => this.sender?.onAnswer(from, a),
      candidate: (from, c) => this.sender?.onCandidate(from, c),
      peerDisconnected: (id) => this.sender?.onPeerDisconnected(id),
      offer: () => undefined,
      initiatorOnline: () => undefined,
    });
    this.ensureSender().rebind(sig);
    await ice;
    this.sig = sig;
    old?.close();
    sig.join(roomId);
    // Only the errors about getting this room are ours to clear.
    const shown = currentErrorKey();
    if (shown === "err.getRoom" || shown === "err.useRoom") clearError();
    this.showRoom(roomId);
    this.renderShared();
    this.renderPeers();
  }

  private showRoom(roomId: string): void {
    const link = `${location.origin}/?room=${encodeURIComponent(roomId)}`;
    $("room-id").textContent = roomId;
    const a = $("share-link") as HTMLAnchorElement;
    a.href = link;
    a.textContent = link;
    const qr = $("qr-code");
    qr.innerHTML = qrSvg(link);
    qr.setAttribute("data-link", link);
    $("room-card").setAttribute("data-ready", "true");
  }

  // --- what is shared --------------------------------------------------------------------

  private renderShared(): void {
    // A removed item's "×" had the focus: the next item's takes it, else the drop zone.
    const list = $("shared-list");
    redrawKeepingFocus(list, () => this.drawShared(list),
      () => list.querySelector<HTMLElement>("button.icon") ?? $("dropzone"));
  }

  private drawShared(list: HTMLElement): void {
    list.replaceChildren();
    this.rows.clear();
    const sender = this.sender;
    if (!sender) return;
    const entries = groupEntries([...sender.items.values()]);
    $("shared-empty").hidden = entries.length > 0;
    for (const e of entries) {
      const progress = new ProgressBar(e.name);
      const verified = h("span", { class: "badge ok", hidden: true }, t("send.verified"));
      const ids = e.files.map((f) => f.id);
      const row = h("li", { class: "item", "data-testid": "shared-item", "data-name": e.name },
        h("div", { class: "item-head" },
          kindIcon(e.kind),
          h("span", { class: "name" }, e.name),
          h("span", { class: "size" }, entrySize(e.kind, e.files.length, e.size)),
          h("button", { type: "button", class: "icon", "data-focus-key": `stop:${e.key}`, "aria-label": t("send.stopSharingName", { name: e.name }), title: t("send.stopSharing"), onclick: () => sender.remove(ids) }, "×")),
        e.kind === "folder" ? h("details", {}, h("summary", { "data-focus-key": `tree:${e.key}` }, t("item.folderContents")), treeList(buildTree(e.files))) : null,
        progress.root, verified);
      list.append(row);
      this.rows.set(e.key, { progress, verified });
      this.updateEntry(e.key);
    }
    this.announcer.forget(new Set(entries.map((e) => e.key)));
  }

  /** One entry's row: bytes acknowledged over its files, summed over receivers, and a note per receiver. */
  private updateEntry(key: string): void {
    const row = this.rows.get(key);
    const sender = this.sender;
    if (!row || !sender) return;
    const entry = groupEntries([...sender.items.values()]).find((e) => e.key === key);
    if (!entry) return;
    const ids = new Set(entry.files.map((f) => f.id));
    const per = new Map<string, { acked: number; requested: number; states: OutTransfer["state"][] }>();
    for (const t of sender.transfers.values()) {
      if (!ids.has(t.itemId)) continue;
      let r = per.get(t.receiver);
      if (!r) per.set(t.receiver, (r = { acked: 0, requested: 0, states: [] }));
      r.acked += t.state === "done" ? t.size : t.acked;
      r.requested += t.size;
      r.states.push(t.state);
    }
    let acked = 0;
    let total = 0;
    const notes: string[] = [];
    let anyDone = false;
    let anySending = false;
    let anyFailed = false;
    for (const [client, r] of per) {
      acked += r.acked;
      total += r.requested;
      const label = receiverLabel(sender.receivers.get(client)?.no ?? 0);
      const complete = r.states.every((s) => s === "done") && r.requested >= entry.size;
      if (complete) anyDone = true;
      if (r.states.some((s) => s === "sending")) anySending = true;
      if (r.states.some((s) => s === "failed")) anyFailed = true;
      notes.push(t("send.note", { name: label, state: complete ? t("send.noteVerified") : formatPercent(r.requested ? r.acked / r.requested : 0) }));
    }
    const state = anySending ? "sending" : anyFailed ? "failed" : anyDone ? "done" : "pending";
    row.progress.set(acked, per.size ? total : entry.size, state, notes.join(", "));
    this.announcer.update(key, entry.name, acked, per.size ? total : entry.size, state);
    setVerified(row.verified, anyDone && !anySending);
  }

  private transferChanged(t: OutTransfer): void {
    const item = this.sender?.items.get(t.itemId);
    const e = item ? groupEntries([item])[0] : undefined;
    if (!e) return;
    this.batch.add(e.key);
    if (t.state === "done" || t.state === "failed") this.batch.flush();
  }

  private renderPeers(): void {
    const ul = $("peer-list");
    ul.replaceChildren();
    for (const r of this.sender?.receivers.values() ?? []) {
      ul.append(h("li", { class: r.connected ? "peer on" : "peer off" },
        t(r.connected ? "send.peerConnected" : "send.peerDisconnected", { name: receiverLabel(r.no) })));
    }
    $("peers-empty").hidden = ul.children.length > 0;
    this.page.peersChanged();
  }

  // --- input ---------------------------------------------------------------------------------

  private addFiles(files: PickedFile[]): void {
    if (!files.length) return;
    this.ensureSender().addFiles(files);
    toast(msg("send.added", { count: files.length }));
  }

  private shareText(text: string): void {
    clearTimeout(this.textTimer);
    const s = this.ensureSender();
    s.setText(text);
    this.textStatus = s.text ? msg("send.textShared", { size: bytes(s.text.size) }) : null;
    this.drawTextStatus();
  }

  private drawTextStatus(): void {
    $("text-status").textContent = this.textStatus ? t(this.textStatus.key, this.textStatus.params) : "";
  }

  /** Redraws everything this view wrote, in the active language. */
  relabel(): void {
    this.renderShared();
    this.renderPeers();
    this.drawTextStatus();
  }

  /** Hooks the send half's controls (file and folder pickers, drop zone, text, room forms). */
  bind(): void {
    const fileInput = $("file-input") as HTMLInputElement;
    const folderInput = $("folder-input") as HTMLInputElement;
    for (const input of [fileInput, folderInput]) {
      input.addEventListener("change", () => {
        this.addFiles(fromInput(input.files));
        input.value = "";
      });
    }
    const zone = $("dropzone");
    document.addEventListener("dragover", (e) => {
      if (!e.dataTransfer?.types.includes("Files")) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
      zone.classList.add("over");
    });
    document.addEventListener("dragleave", (e) => { if (e.target === zone || !e.relatedTarget) zone.classList.remove("over"); });
    document.addEventListener("drop", async (e) => {
      if (!e.dataTransfer?.types.includes("Files")) return;
      e.preventDefault();
      zone.classList.remove("over");
      void this.start();
      try {
        this.addFiles(await fromDrop(e.dataTransfer));
      } catch (err) {
        showError(msg("err.dropRead", { detail: errorDetail(err) }));
      }
    });
    zone.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        fileInput.click();
      }
    });
    const text = $("text-input") as HTMLTextAreaElement;
    text.addEventListener("input", () => {
      clearTimeout(this.textTimer);
      this.textTimer = setTimeout(() => this.shareText(text.value), TEXT_SETTLE_MS);
    });
    text.addEventListener("change", () => this.shareText(text.value));
    $("copy-link").addEventListener("click", async () => {
      const link = ($("share-link") as HTMLAnchorElement).href;
      toast(msg((await copyText(link)) ? "send.linkCopied" : "send.linkCopyFailed"));
    });
    $("custom-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const id = ($("custom-room") as HTMLInputElement).value.trim();
      if (!validRoomId(id)) {
        showError(ROOM_CODE_RULE);
        return;
      }
      clearError();
      await this.start(id);
    });
    $("send-start").addEventListener("click", () => void this.start());
  }
}
