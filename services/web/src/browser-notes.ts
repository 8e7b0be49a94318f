// What the receiving page does where this browser lacks an API, said on the
// page: no directory picker (Firefox, Safari: File System Access is
// Chromium's) means folders arrive as one zip in the downloads and files one
// by one; no writable origin-private file system means received files are
// held in memory until saved. Shown once, above what is offered.
import { h } from "./dom";
import { onLocaleChange, t, type Key } from "./i18n";
import { canPickDirectory, opfsUsable } from "./storage";


/** The notes that apply to this browser (catalog keys), in the order shown. */
export function browserNotes(): Key[] {
  const notes: Key[] = [];
  if (!canPickDirectory()) notes.push("recv.noteNoDirectoryPicker");
  if (!opfsUsable()) notes.push("recv.noteNoDiskWrites");
  return notes;
}

/** Puts the notes that apply (if any) at the start of `parent`. */
export function showBrowserNotes(parent: HTMLElement): void {
  const notes = browserNotes();
  if (notes.length === 0) return;
  const paras = notes.map((k) => h("p", {}, t(k)));
  parent.prepend(h("div", { class: "browser-notes muted small", "data-testid": "browser-note", role: "note" }, ...paras));
  onLocaleChange(() => notes.forEach((k, i) => (paras[i].textContent = t(k))));
}
