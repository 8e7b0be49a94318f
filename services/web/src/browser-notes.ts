// What the receiving page does where this browser lacks an API, said on the
// page: no directory picker (Firefox, Safari: File System Access is
// Chromium's) means folders arrive as one zip in the downloads and files one
// by one; no writable origin-private file system means received files are
// held in memory until saved. Shown once, above what is offered.
import { h } from "./dom";
import { canPickDirectory, opfsUsable } from "./storage";

// ==== User-visible strings of this module (one place, for the i18n catalogs) ====
export const BROWSER_NOTE_TEXT = {
  noDirectoryPicker:
    "This browser cannot save into a folder you pick: each folder is downloaded as one zip file, and each file on its own, into your downloads.",
  noDiskWrites:
    "This browser cannot write received files to disk as they arrive: they are held in memory until they are saved.",
} as const;
// ==== end of user-visible strings ====

/** The notes that apply to this browser, in the order shown. */
export function browserNotes(): string[] {
  const notes: string[] = [];
  if (!canPickDirectory()) notes.push(BROWSER_NOTE_TEXT.noDirectoryPicker);
  if (!opfsUsable()) notes.push(BROWSER_NOTE_TEXT.noDiskWrites);
  return notes;
}

/** Puts the notes that apply (if any) at the start of `parent`. */
export function showBrowserNotes(parent: HTMLElement): void {
  const notes = browserNotes();
  if (notes.length === 0) return;
  parent.prepend(h("div", { class: "browser-notes muted small", "data-testid": "browser-note", role: "note" },
    ...notes.map((n) => h("p", {}, n))));
}
