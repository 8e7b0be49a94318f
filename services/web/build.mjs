// Builds dist/: index.html plus the bundled app.js and app.css under /assets/.
import { build, context } from "esbuild";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const watch = process.argv.includes("--watch");

await rm(dist, { recursive: true, force: true });
await mkdir(join(dist, "assets"), { recursive: true });

// The disk worker (src/disk-worker.ts) is a script of its own, built first:
// the page is given its URL (__DISK_WORKER_URL__). A classic script, not a
// module: every browser we target runs those in workers.
const workerOptions = {
  entryPoints: { "disk-worker": join(here, "src/disk-worker.ts") },
  outdir: join(dist, "assets"),
  entryNames: watch ? "[name]" : "[name]-[hash]",
  metafile: true,
  bundle: true,
  format: "iife",
  target: ["chrome109", "firefox115", "safari16"],
  minify: !watch,
  sourcemap: true,
  legalComments: "linked",
  logLevel: "info",
};

/** The built worker's URL under /assets/. */
function workerUrl(metafile) {
  const out = Object.keys(metafile.outputs).find((o) => o.endsWith(".js"));
  return `/assets/${out.slice(out.lastIndexOf("/") + 1)}`;
}

let workerMeta;
if (watch) {
  const wctx = await context(workerOptions);
  workerMeta = (await wctx.rebuild()).metafile;
  await wctx.watch();
} else {
  workerMeta = (await build(workerOptions)).metafile;
}

const options = {
  entryPoints: { app: join(here, "src/main.ts") },
  define: { __DISK_WORKER_URL__: JSON.stringify(workerUrl(workerMeta)) },
  outdir: join(dist, "assets"),
  // Content-hashed names: a new build is never mixed with a cached old one.
  entryNames: watch ? "[name]" : "[name]-[hash]",
  metafile: true,
  bundle: true,
  format: "esm",
  // Each non-English catalog is a chunk of its own (loaded on demand).
  splitting: true,
  chunkNames: watch ? "[name]" : "[name]-[hash]",
  target: ["chrome109", "firefox115", "safari16"],
  minify: !watch,
  sourcemap: true,
  legalComments: "linked",
  // Catalogs in CJK scripts are a third the size as UTF-8 than as \u escapes.
  charset: "utf8",
  logLevel: "info",
};

/** index.html with its asset URLs pointing at the files just built. */
async function writeIndex(metafile) {
  let html = await readFile(join(here, "index.html"), "utf8");
  for (const out of Object.keys(metafile.outputs)) {
    const name = out.slice(out.lastIndexOf("/") + 1);
    // Only the page's own entry (app-*): catalog chunks are loaded by it.
    if (!/^app[-.]/.test(name)) continue;
    if (name.endsWith(".js")) html = html.replace('src="/assets/app.js"', `src="/assets/${name}"`);
    if (name.endsWith(".css")) html = html.replace('href="/assets/app.css"', `href="/assets/${name}"`);
  }
  await writeFile(join(dist, "index.html"), html);
}

if (watch) {
  const ctx = await context({
    ...options,
    plugins: [{ name: "index", setup(b) { b.onEnd((r) => r.metafile && writeIndex(r.metafile)); } }],
  });
  await ctx.watch();
} else {
  const result = await build(options);
  await writeIndex(result.metafile);
}
