// What a person sees as one thing: a top-level file, or a folder with all the
// files below it. Items carry only paths; folders are derived from them.

export interface PathItem {
  id: number;
  kind: "file" | "text";
  path: string;
  size: number;
}

export interface Entry<T extends PathItem> {
  /** "f:<id>" for a file, "d:<folder name>" for a folder. */
  key: string;
  kind: "file" | "folder";
  name: string;
  size: number;
  files: T[];
}

export function entryKey(item: PathItem): string {
  if (item.kind === "text") return "text";
  const slash = item.path.indexOf("/");
  return slash < 0 ? `f:${item.id}` : `d:${item.path.slice(0, slash)}`;
}

/** Groups file items into entries, in the order their first item appears. */
export function groupEntries<T extends PathItem>(items: Iterable<T>): Entry<T>[] {
  const out: Entry<T>[] = [];
  const folders = new Map<string, Entry<T>>();
  for (const it of items) {
    if (it.kind !== "file") continue;
    const slash = it.path.indexOf("/");
    if (slash < 0) {
      out.push({ key: `f:${it.id}`, kind: "file", name: it.path, size: it.size, files: [it] });
      continue;
    }
    const top = it.path.slice(0, slash);
    let e = folders.get(top);
    if (!e) {
      e = { key: `d:${top}`, kind: "folder", name: top, size: 0, files: [] };
      folders.set(top, e);
      out.push(e);
    }
    e.files.push(it);
    e.size += it.size;
  }
  return out;
}

export interface TreeNode {
  name: string;
  /** Set for files. */
  item?: PathItem;
  children: Map<string, TreeNode>;
}

/** The folder tree of an entry's files, below the entry's own folder. */
export function buildTree(files: PathItem[]): TreeNode {
  const root: TreeNode = { name: "", children: new Map() };
  for (const f of files) {
    const segs = f.path.split("/").slice(1);
    let node = root;
    segs.forEach((s, i) => {
      let next = node.children.get(s);
      if (!next) {
        next = { name: s, children: new Map() };
        node.children.set(s, next);
      }
      if (i === segs.length - 1) next.item = f;
      node = next;
    });
  }
  return root;
}
