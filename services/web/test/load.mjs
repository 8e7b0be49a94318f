// Loads page modules (TypeScript under src/) into Node for unit tests,
// bundled on the fly with esbuild so the tests run the very source the page ships.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

/** One module object with every export of the named files under src/. */
export async function loadSources(...files) {
  const src = fileURLToPath(new URL("../src/", import.meta.url));
  const out = await build({
    stdin: { contents: files.map((f) => `export * from "./${f}";`).join("\n"), resolveDir: src, loader: "ts" },
    bundle: true, format: "esm", write: false, platform: "neutral",
    // Packages (hash-wasm) name their entry points the usual way; "neutral" looks for none.
    mainFields: ["module", "main"],
  });
  return import(`data:text/javascript;base64,${Buffer.from(out.outputFiles[0].text).toString("base64")}`);
}
