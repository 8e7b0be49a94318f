// The page: wires the room API, signaling, the sender and the receiver to the DOM.
import "./styles.css";
import { createRoom, getIceServers, getRoom, validRoomId } from "./api";
import { $, copyText, h } from "./dom";
import { buildTree, groupEntries, type TreeNode } from "./entries";
import { fromDrop, fromInput } from "./files";
import { SpeedMeter, formatBytes, progressText } from "./format";
import { debug } from "./log";
import { setRelayOnly } from "./peer";
import { qrSvg } from "./qr";
import { Receiver } from "./receiver";
import { Sender, type OutTransfer } from "./sender";
import { Signaling, type SignalStatus } from "./signaling";
import { canPickDirectory, pickDirectory } from "./storage";
import type { ManifestItem } from "./protocol";

// --- shared state --------------------------------------------------------------------

let sender: Sender | null = null;
let senderSig: Signaling | null = null;
let receiver: Receiver | null = null;
let receiverSig: Signaling | null = null;
let icePromise: Promise<RTCIceServer[]> | null = null;
/** `?relay=1`: relay-only ICE, for strict networks (and the TURN end-to-end test). */
const relayOnly = new URLSearchParams(location.search).get("relay") === "1";

function iceServers(): Promise<RTCIceServer[]> {
  icePromise ??= getIceServers().then((servers) => {
    const urls = servers.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]));
    if (relayOnly && !urls.some((u) => /^turns?:/i.test(u))) {
      showError("Relay-only mode (?relay=1) is on, but this server offers no TURN relay: connections will fail.");
    }
    return servers;
  });
  return icePromise;
}

// --- notices, status, theme --------------------------------------------------------------

function showError(message: string): void {
  const box = $("notices");
  box.replaceChildren(h("div", { class: "notice error", role: "alert" },
    h("span", { "data-testid": "error" }, message),
    h("button", { type: "button", class: "icon", "aria-label": "Dismiss", onclick: () => box.replaceChildren() }, "×")));
}

function clearError(): void {
  $("notices").replaceChildren();
}

let toastTimer: ReturnType<typeof setTimeout> | undefined;
function toast(message: string): void {
  const t = $("toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 3000);
}

function notice(message: string, kind: "error" | "info"): void {
  if (kind === "error") showError(message);
  else toast(message);
}

function updatePeerCount(): void {
  const n = (sender?.connectedCount ?? 0) + (receiver?.connected ? 1 : 0);
  const el = $("peer-count");
  el.textContent = String(n);
  el.setAttribute("data-count", String(n));
}

const statusText: Record<SignalStatus, string> = {
  connecting: "Connecting…",
  joined: "Online",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

function setSignalStatus(s: SignalStatus): void {
  const el = $("signal-status");
  el.textContent = statusText[s];
  el.setAttribute("data-state", s);
}

function initTheme(): void {
  const btn = $("theme-toggle");
  const order = ["auto", "light", "dark"] as const;
  const apply = (t: string) => {
    if (t === "auto") document.documentElement.removeAttribute("data-theme");
    else document.documentElement.setAttribute("data-theme", t);
    btn.textContent = t === "auto" ? "Theme: auto" : t === "light" ? "Theme: light" : "Theme: dark";
  };
  let cur = localStorage.getItem("privydrop-theme") ?? "auto";
  apply(cur);
  btn.addEventListener("click", () => {
    cur = order[(order.indexOf(cur as (typeof order)[number]) + 1) % order.length];
    localStorage.setItem("privydrop-theme", cur);
    apply(cur);
  });
}

function confirmDialog(message: string, ok: string): Promise<boolean> {
  const dlg = $("confirm") as HTMLDialogElement;
  $("confirm-text").textContent = message;
  $("confirm-ok").textContent = ok;
  return new Promise((resolve) => {
    dlg.onclose = () => resolve(dlg.returnValue === "ok");
    dlg.showModal();
  });
}

const ICONS = {
  file: "M6 2h8l6 6v14H6z M14 2v6h6",
  folder: "M3 6h6l2 2h10v12H3z",
};

function kindIcon(kind: "file" | "folder"): Element {
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

// --- progress widget -------------------------------------------------------------------

interface ProgressRefs {
  root: HTMLElement;
  bar: HTMLProgressElement;
  text: HTMLElement;
  meter: SpeedMeter;
}

function progressWidget(name: string): ProgressRefs {
  const bar = h("progress", { max: 1, value: 0, "aria-label": `Progress of ${name}` });
  const text = h("span", { class: "ptext", "aria-live": "off" });
  const root = h("div", { class: "progress", "data-testid": "progress", "data-name": name, "data-state": "pending" }, bar, text);
  return { root, bar, text, meter: new SpeedMeter() };
}

function setProgress(p: ProgressRefs, bytes: number, total: number, state: string, note: string): void {
  p.root.setAttribute("data-state", state);
  p.root.setAttribute("data-bytes", String(bytes));
  p.bar.max = Math.max(total, 1);
  p.bar.value = total === 0 ? (state === "done" ? 1 : 0) : bytes;
  if (state === "sending" || state === "receiving") p.meter.add(bytes);
  else p.meter.reset();
  // Nothing asked for yet: an empty bar says enough.
  const prog = state === "pending" && bytes === 0 ? "" : progressText(bytes, total, p.meter.rate());
  p.text.textContent = [prog, note].filter(Boolean).join(" — ");
}

function treeList(node: TreeNode, mark?: (item: ManifestItem) => string): HTMLElement {
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

// --- sending ---------------------------------------------------------------------------------

const sendRows = new Map<string, { progress: ProgressRefs; verified: HTMLElement }>();

function renderShared(): void {
  const list = $("shared-list");
  list.replaceChildren();
  sendRows.clear();
  if (!sender) return;
  const entries = groupEntries([...sender.items.values()]);
  $("shared-empty").hidden = entries.length > 0;
  for (const e of entries) {
    const progress = progressWidget(e.name);
    const verified = h("span", { class: "badge ok", hidden: true }, "✓ received and verified");
    const ids = e.files.map((f) => f.id);
    const row = h("li", { class: "item", "data-testid": "shared-item", "data-name": e.name },
      h("div", { class: "item-head" },
        kindIcon(e.kind),
        h("span", { class: "name" }, e.name),
        h("span", { class: "size" }, e.kind === "folder" ? `${e.files.length} files · ${formatBytes(e.size)}` : formatBytes(e.size)),
        h("button", { type: "button", class: "icon", "aria-label": `Stop sharing ${e.name}`, title: "Stop sharing", onclick: () => sender?.remove(ids) }, "×")),
      e.kind === "folder" ? h("details", {}, h("summary", {}, "Folder contents"), treeList(buildTree(e.files))) : null,
      progress.root, verified);
    list.append(row);
    sendRows.set(e.key, { progress, verified });
    updateSendEntry(e.key);
  }
}

function updateSendEntry(key: string): void {
  const row = sendRows.get(key);
  if (!row || !sender) return;
  const entry = groupEntries([...sender.items.values()]).find((e) => e.key === key);
  if (!entry) return;
  const ids = new Set(entry.files.map((f) => f.id));
  // Per receiver: bytes acknowledged over this entry's files.
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
  let state: string = "pending";
  const notes: string[] = [];
  let anyDone = false;
  let anySending = false;
  let anyFailed = false;
  for (const [client, r] of per) {
    acked += r.acked;
    total += r.requested;
    const label = sender.receivers.get(client)?.label ?? "Receiver";
    const complete = r.states.every((s) => s === "done") && r.requested >= entry.size;
    if (complete) anyDone = true;
    if (r.states.some((s) => s === "sending")) anySending = true;
    if (r.states.some((s) => s === "failed")) anyFailed = true;
    notes.push(`${label}: ${complete ? "verified" : `${r.requested ? Math.floor((100 * r.acked) / r.requested) : 0}%`}`);
  }
  if (anySending) state = "sending";
  else if (anyFailed) state = "failed";
  else if (anyDone) state = "done";
  else if (per.size > 0) state = "pending";
  setProgress(row.progress, acked, per.size ? total : entry.size, state, notes.join(", "));
  if (anyDone && !anySending) {
    row.verified.hidden = false;
    row.verified.setAttribute("data-testid", "verified");
  } else {
    row.verified.hidden = true;
    row.verified.removeAttribute("data-testid");
  }
}

function renderPeers(): void {
  const ul = $("peer-list");
  ul.replaceChildren();
  if (sender) {
    for (const r of sender.receivers.values()) {
      ul.append(h("li", { class: r.connected ? "peer on" : "peer off" }, `${r.label} — ${r.connected ? "connected" : "disconnected"}`));
    }
  }
  $("peers-empty").hidden = ul.children.length > 0;
  updatePeerCount();
}

function showRoom(roomId: string): void {
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

let sendTextTimer: ReturnType<typeof setTimeout> | undefined;

/** The sending side exists before its room does, so items can be added at once. */
function ensureSender(): Sender {
  sender ??= new Sender(null, iceServers, {
    itemsChanged: () => renderShared(),
    peersChanged: () => renderPeers(),
    transferChanged: (t) => scheduleSend(t),
    notice,
  });
  return sender;
}

let senderStarting: Promise<void> | null = null;

/** Gets a room (ours, or `customId`) and joins it; one automatic room per page. */
function startSender(customId?: string): Promise<void> {
  if (customId) return openSenderRoom(customId);
  senderStarting ??= openSenderRoom().catch(() => {
    // No room yet (the room API is unreachable?): keep trying.
    senderStarting = null;
    setTimeout(() => void startSender(), 4000);
  });
  return senderStarting;
}

async function openSenderRoom(customId?: string): Promise<void> {
  $("send-start").hidden = true;
  $("send-body").hidden = false;
  const ice = iceServers();
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
      showError(`Could not use room "${customId}": ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    showError(`Could not get a room: ${e instanceof Error ? e.message : String(e)} Trying again…`);
    if (!senderSig) $("room-id").textContent = "—";
    throw e;
  }
  const old = senderSig;
  const sig = new Signaling({
    status: (s) => setSignalStatus(s),
    joined: () => {
      sig.announceInitiator();
      renderPeers();
    },
    joinFailed: (msg, retryMs) => {
      if (/does not exist/i.test(msg)) {
        // Our room expired while we were away: make it again under the same id.
        createRoom(roomId).then(() => sig.retryJoin(), (e) => showError(`The room expired and could not be re-created: ${String(e)}`));
        return;
      }
      showError(retryMs ? `${friendlyJoinError(msg)} Retrying in ${Math.ceil(retryMs / 1000)} s…` : friendlyJoinError(msg));
    },
    ready: (id) => void sender?.connectTo(id),
    recipientReady: (id) => void sender?.connectTo(id),
    answer: (from, a) => sender?.onAnswer(from, a),
    candidate: (from, c) => sender?.onCandidate(from, c),
    peerDisconnected: (id) => sender?.onPeerDisconnected(id),
    offer: () => undefined,
    initiatorOnline: () => undefined,
  });
  ensureSender().rebind(sig);
  await ice;
  senderSig = sig;
  old?.close();
  sig.join(roomId);
  if (/^Could not (get a room|use room)/.test($("notices").textContent ?? "")) clearError();
  showRoom(roomId);
  renderShared();
  renderPeers();
}

const dirtySend = new Set<string>();
let sendFlush: ReturnType<typeof setTimeout> | undefined;
function scheduleSend(t: OutTransfer): void {
  const item = sender?.items.get(t.itemId);
  if (!item) return;
  const e = groupEntries([item])[0];
  if (!e) return;
  dirtySend.add(e.key);
  if (t.state === "done" || t.state === "failed") flushSend();
  else sendFlush ??= setTimeout(flushSend, 100);
}
function flushSend(): void {
  clearTimeout(sendFlush);
  sendFlush = undefined;
  for (const k of dirtySend) updateSendEntry(k);
  dirtySend.clear();
}

function addFiles(files: { file: File; path: string }[]): void {
  if (!files.length) return;
  ensureSender().addFiles(files);
  toast(`Added ${files.length} file${files.length === 1 ? "" : "s"}.`);
}

function initSend(): void {
  const fileInput = $("file-input") as HTMLInputElement;
  const folderInput = $("folder-input") as HTMLInputElement;
  fileInput.addEventListener("change", () => {
    addFiles(fromInput(fileInput.files));
    fileInput.value = "";
  });
  folderInput.addEventListener("change", () => {
    addFiles(fromInput(folderInput.files));
    folderInput.value = "";
  });
  const zone = $("dropzone");
  const over = (e: DragEvent) => {
    if (!e.dataTransfer?.types.includes("Files")) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
    zone.classList.add("over");
  };
  document.addEventListener("dragover", over);
  document.addEventListener("dragleave", (e) => { if (e.target === zone || !e.relatedTarget) zone.classList.remove("over"); });
  document.addEventListener("drop", async (e) => {
    if (!e.dataTransfer?.types.includes("Files")) return;
    e.preventDefault();
    zone.classList.remove("over");
    void startSender();
    try {
      addFiles(await fromDrop(e.dataTransfer));
    } catch (err) {
      showError(`Could not read what was dropped: ${String(err)}`);
    }
  });
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      fileInput.click();
    }
  });
  const text = $("text-input") as HTMLTextAreaElement;
  const share = () => {
    clearTimeout(sendTextTimer);
    const s = ensureSender();
    s.setText(text.value);
    const t = s.text;
    $("text-status").textContent = t ? `Text shared (${formatBytes(t.size)}).` : "";
  };
  text.addEventListener("input", () => {
    clearTimeout(sendTextTimer);
    sendTextTimer = setTimeout(share, 300);
  });
  text.addEventListener("change", share);
  $("copy-link").addEventListener("click", async () => {
    const link = ($("share-link") as HTMLAnchorElement).href;
    toast((await copyText(link)) ? "Link copied." : "Copy failed: select the link and copy it by hand.");
  });
  $("custom-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const id = ($("custom-room") as HTMLInputElement).value.trim();
    if (!validRoomId(id)) {
      showError("A room code is 1 to 64 letters, digits, '-' or '_'.");
      return;
    }
    clearError();
    await startSender(id);
  });
  $("send-start").addEventListener("click", () => void startSender());
}

// --- receiving ---------------------------------------------------------------------------------

interface RecvRow {
  progress: ProgressRefs;
  verified: HTMLElement;
  button: HTMLButtonElement;
  tree: HTMLElement | null;
}
const recvRows = new Map<string, RecvRow>();

function friendlyJoinError(msg: string): string {
  if (/does not exist/i.test(msg)) return "This room does not exist or has expired. Check the code, or ask the sender for a new link.";
  if (/rate limit/i.test(msg)) return `Too many attempts to join from your network (${msg}).`;
  if (/full/i.test(msg)) return "This room is full: it has as many people as it allows. Ask the sender for a new room.";
  if (/already bound/i.test(msg)) return "This connection is already in another room. Reload the page.";
  if (/server error/i.test(msg)) return "The server had a problem joining the room.";
  return msg;
}

function renderOffered(): void {
  const list = $("offered-list");
  list.replaceChildren();
  recvRows.clear();
  if (!receiver) return;
  const entries = receiver.entries();
  $("offered-empty").hidden = entries.length > 0 || !receiver.connected;
  $("offered-actions").hidden = entries.length === 0;
  for (const e of entries) {
    const progress = progressWidget(e.name);
    const verified = h("span", { class: "badge ok", hidden: true }, "✓ SHA-256 verified");
    const button = h("button", { type: "button", class: "primary", "data-testid": "download-button", "data-name": e.name,
      "aria-label": `Download ${e.name}`, onclick: () => void receiver?.download(e.key) }, e.kind === "folder" ? "Download (zip)" : "Download");
    const tree = e.kind === "folder" ? treeList(buildTree(e.files), (it) => fileMark(it)) : null;
    const actions = h("div", { class: "item-actions" }, button,
      e.kind === "folder" && canPickDirectory()
        ? h("button", { type: "button", onclick: () => void saveIntoFolder([e.key]) }, "Save into a folder…") : null);
    const row = h("li", { class: "item", "data-testid": "offered-item", "data-name": e.name, "data-kind": e.kind, "data-size": e.size },
      h("div", { class: "item-head" },
        kindIcon(e.kind),
        h("span", { class: "name" }, e.name),
        h("span", { class: "size" }, e.kind === "folder" ? `${e.files.length} files · ${formatBytes(e.size)}` : formatBytes(e.size))),
      tree ? h("details", { open: e.files.length <= 20 }, h("summary", {}, "Folder contents"), tree) : null,
      progress.root, actions, verified);
    list.append(row);
    recvRows.set(e.key, { progress, verified, button, tree });
    updateRecvEntry(e.key);
  }
}

function fileMark(it: ManifestItem): string {
  const t = receiver?.transfers.get(it.id);
  if (!t) return "";
  if (t.state === "done") return " ✓";
  if (t.state === "failed") return " ✗";
  return ` ${it.size ? Math.floor((100 * t.received) / it.size) : 0}%`;
}

function updateRecvEntry(key: string): void {
  const row = recvRows.get(key);
  if (!row || !receiver) return;
  const e = receiver.entry(key);
  if (!e) return;
  const p = receiver.entryProgress(e);
  setProgress(row.progress, p.bytes, e.size, p.state, p.note);
  if (p.verified) {
    row.verified.hidden = false;
    row.verified.setAttribute("data-testid", "verified");
    row.verified.setAttribute("data-name", e.name);
  } else {
    row.verified.hidden = true;
    row.verified.removeAttribute("data-testid");
  }
  row.button.textContent = p.state === "failed" ? "Retry" : p.state === "done" ? "Save again" : e.kind === "folder" ? "Download (zip)" : "Download";
  row.button.disabled = p.state === "receiving";
  if (row.tree) {
    for (const li of row.tree.querySelectorAll<HTMLElement>(".tree-file")) {
      const f = e.files.find((x) => x.path === li.dataset.path);
      const mark = li.querySelector(".mark");
      if (f && mark) mark.textContent = fileMark(f);
    }
  }
}

const dirtyRecv = new Set<string>();
let recvFlush: ReturnType<typeof setTimeout> | undefined;
function scheduleRecv(key: string): void {
  dirtyRecv.add(key);
  recvFlush ??= setTimeout(flushRecv, 100);
}
function flushRecv(): void {
  clearTimeout(recvFlush);
  recvFlush = undefined;
  for (const k of dirtyRecv) updateRecvEntry(k);
  dirtyRecv.clear();
}

function renderText(text: string | null): void {
  const box = $("received-text-box");
  box.replaceChildren();
  box.hidden = text === null;
  if (text === null) return;
  box.append(
    h("div", { class: "text-head" }, h("h3", {}, "Text"),
      h("button", { type: "button", "data-testid": "copy-text", onclick: async () => toast((await copyText(text)) ? "Text copied." : "Copy failed.") }, "Copy text")),
    h("pre", { class: "received-text", "data-testid": "received-text", tabindex: 0 }, text));
}

async function saveIntoFolder(keys: string[]): Promise<void> {
  const dir = await pickDirectory();
  if (!dir || !receiver) return;
  await receiver.saveToDirectory(keys, dir);
}

async function startReceiver(roomId: string): Promise<void> {
  if (!validRoomId(roomId)) {
    showError("A room code is 1 to 64 letters, digits, '-' or '_'.");
    return;
  }
  if (receiver && receiverSig?.roomId === roomId) return;
  receiver?.close();
  receiverSig?.close();
  clearError();
  $("recv-room").textContent = roomId;
  $("recv-body").hidden = false;
  $("recv-status").textContent = "Joining…";
  const url = new URL(location.href);
  url.searchParams.set("room", roomId);
  history.replaceState(null, "", url);
  const ice = await iceServers();
  let r!: Receiver;
  const sig = new Signaling({
    status: (s) => {
      setSignalStatus(s);
      if (s === "reconnecting") $("recv-status").textContent = "Signaling connection lost, reconnecting…";
    },
    joined: () => r.onJoined(),
    joinFailed: (msg, retryMs) => {
      const text = friendlyJoinError(msg);
      showError(retryMs ? `${text} Retrying in ${Math.ceil(retryMs / 1000)} s…` : text);
      $("recv-status").textContent = retryMs ? "Waiting to retry…" : "Could not join.";
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
      $("recv-status").textContent = text;
      updatePeerCount();
      $("offered-empty").hidden = !(r.connected && r.entries().length === 0);
    },
    manifestChanged: () => renderOffered(),
    entryChanged: (key) => scheduleRecv(key),
    textChanged: (t) => renderText(t),
    notice,
    clearNotice: clearError,
    confirmMemory: (name, size) => confirmDialog(
      `This browser cannot write "${name}" to disk as it arrives, so all ${formatBytes(size)} will be held in memory. ` +
      "A file this large may slow down or crash the tab. Continue?", "Receive into memory"),
  });
  receiver = r;
  receiverSig = sig;
  sig.join(roomId);
  renderOffered();
  renderText(null);
  // Receiving comes first, on screen and in the keyboard's tab order.
  const recv = document.querySelector("section.receive");
  if (recv && recv.parentElement?.firstElementChild !== recv) recv.parentElement?.prepend(recv);
}

function initReceive(): void {
  $("join-form").addEventListener("submit", (e) => {
    e.preventDefault();
    let code = ($("join-input") as HTMLInputElement).value.trim();
    // Accept a pasted link as well as a bare code.
    try {
      const u = new URL(code);
      code = u.searchParams.get("room") ?? code;
    } catch { /* not a link */ }
    void startReceiver(code);
  });
  $("download-all").addEventListener("click", () => void receiver?.downloadAll());
  const saveAll = $("save-all-dir");
  saveAll.hidden = !canPickDirectory();
  saveAll.addEventListener("click", () => { if (receiver) void saveIntoFolder(receiver.entries().map((e) => e.key)); });
}

// --- start ------------------------------------------------------------------------------------

function main(): void {
  if (relayOnly) {
    setRelayOnly(true);
    debug("relay-only ICE (?relay=1): peer connections go through TURN only");
  }
  initTheme();
  initSend();
  initReceive();
  const room = new URLSearchParams(location.search).get("room");
  if (room) {
    // Here to receive: the sending side starts only when asked for.
    $("send-body").hidden = true;
    $("send-start").hidden = false;
    ($("join-input") as HTMLInputElement).value = room;
    void startReceiver(room);
  } else {
    void startSender();
  }
}

main();

