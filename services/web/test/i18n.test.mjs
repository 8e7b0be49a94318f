// The catalogs (src/i18n/): every locale has exactly English's keys, the same
// {placeholders} per key, and the plural forms its language needs; t(),
// sizes and the choice of locale behave. index.html names only keys that exist.
import assert from "node:assert/strict";
import fs from "node:fs";
import { describe, it } from "node:test";
import { loadSources } from "./load.mjs";

const LOCALES = ["en", "zh", "es", "ja", "de", "fr", "ko"];
const cats = await loadSources(...LOCALES.map((l) => `i18n/${l}.ts`));
const i18n = await loadSources("i18n/index.ts");
const en = cats.en;

const placeholders = (s) => new Set([...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]));
const forms = (v) => (typeof v === "string" ? [v] : Object.values(v));
const sorted = (set) => [...set].sort().join(",");

describe("catalogs", () => {
  it("the module list is the one the page offers", () => {
    assert.deepEqual([...i18n.LOCALES], LOCALES);
  });

  for (const l of LOCALES) {
    const cat = cats[l];
    const tag = i18n.LOCALE_TAGS[l];

    it(`${l}: exactly the English keys`, () => {
      assert.ok(cat, `no catalog exported as ${l}`);
      const missing = Object.keys(en).filter((k) => !(k in cat));
      const extra = Object.keys(cat).filter((k) => !(k in en));
      assert.deepEqual({ missing, extra }, { missing: [], extra: [] });
    });

    it(`${l}: the same {placeholders} per key, no empty text`, () => {
      const bad = [];
      for (const k of Object.keys(en)) {
        const want = sorted(new Set(forms(en[k]).flatMap((f) => [...placeholders(f)])));
        const v = cat[k];
        if (typeof v !== typeof en[k]) {
          bad.push(`${k}: ${typeof en[k] === "string" ? "a string" : "plural forms"} expected`);
          continue;
        }
        for (const [form, text] of typeof v === "string" ? [["", v]] : Object.entries(v)) {
          if (!text.trim()) bad.push(`${k}${form && `.${form}`}: empty`);
          const got = placeholders(text);
          // A plural form may say its number in words ("one file"), so {count} is optional outside "other".
          if (form && form !== "other") got.add("count");
          if (sorted(got) !== want) bad.push(`${k}${form && `.${form}`}: {${sorted(got)}} instead of {${want}}`);
        }
      }
      assert.deepEqual(bad, []);
    });

    it(`${l}: the plural forms ${tag} needs, and no others`, () => {
      const need = new Intl.PluralRules(tag).resolvedOptions().pluralCategories;
      const bad = [];
      for (const k of Object.keys(en)) {
        if (typeof en[k] === "string") continue;
        const have = Object.keys(cat[k]);
        for (const c of need) if (!have.includes(c)) bad.push(`${k}: no "${c}"`);
        for (const c of have) if (!need.includes(c)) bad.push(`${k}: "${c}" is not a category of ${tag}`);
      }
      assert.deepEqual(bad, []);
    });

    it(`${l}: its name in the switcher is its own lang.name`, () => {
      assert.equal(i18n.NATIVE_NAMES[l], cat["lang.name"]);
    });
  }

  it("index.html names only existing keys, and every text in it has one", () => {
    const html = fs.readFileSync(new URL("../index.html", import.meta.url), "utf8");
    const keys = [...html.matchAll(/data-i18n="([^"]+)"/g)].map((m) => m[1]);
    for (const m of html.matchAll(/data-i18n-attr="([^"]+)"/g)) {
      for (const pair of m[1].split(";")) keys.push(pair.split(":")[1].trim());
    }
    assert.ok(keys.length > 30, `only ${keys.length} keys found`);
    assert.deepEqual(keys.filter((k) => !(k in en)), []);
  });
});

describe("t() and formats", () => {
  it("falls back to English, fills parameters, picks plural forms", async () => {
    await i18n.setLocale("en");
    assert.equal(i18n.t("send.added", { count: 1 }), "Added 1 file.");
    assert.equal(i18n.t("send.added", { count: 1200 }), "Added 1,200 files.");
    assert.equal(i18n.t("progress.label", { name: "a.txt" }), "Progress of a.txt");
    await i18n.setLocale("de");
    assert.equal(i18n.t("send.added", { count: 1 }), "1 Datei hinzugefügt.");
    assert.equal(i18n.t("send.added", { count: 3 }), "3 Dateien hinzugefügt.");
    assert.equal(i18n.formatBytes(1_234_567), "1,2 MB");
    await i18n.setLocale("fr");
    assert.equal(i18n.t("send.added", { count: 1_000_000 }), "1\u202f000\u202f000 de fichiers ajoutés.");
    assert.equal(i18n.formatBytes(1), "1 octet");
    assert.equal(i18n.formatBytes(2), "2 octets");
    await i18n.setLocale("ja");
    assert.equal(i18n.t("send.added", { count: 3 }), "3 個のファイルを追加しました。");
    // A message as a parameter is drawn in the active language too.
    assert.equal(i18n.t("send.receiverLeft", { name: i18n.msg("send.receiverLabel", { n: 2 }) }), "受信者 2 がルームを退出しました。");
    await i18n.setLocale("en");
  });

  it("formats sizes, rates and durations for the active locale", async () => {
    await i18n.setLocale("en");
    assert.equal(i18n.formatBytes(0), "0 bytes");
    assert.equal(i18n.formatBytes(1), "1 byte");
    assert.equal(i18n.formatBytes(999), "999 bytes");
    assert.equal(i18n.formatBytes(1000), "1 kB");
    assert.equal(i18n.formatBytes(15_300_000), "15 MB");
    assert.equal(i18n.formatBytes(999_999), "1 MB", "no \"1000 kB\"");
    assert.equal(i18n.formatRate(2_500_000), "2.5 MB/s");
    assert.equal(i18n.formatDuration(5), "5 sec");
    assert.match(i18n.formatDuration(125), /^2 min,? 5 sec$/);
    assert.equal(i18n.formatDuration(Infinity), "–");
    assert.equal(i18n.formatPercent(0.427), "42%");
    await i18n.setLocale("zh");
    assert.equal(i18n.formatBytes(10), "10 字节");
    assert.equal(i18n.formatDuration(5), "5秒");
    await i18n.setLocale("en");
  });

  it("picks the best locale from the browser's preferences, else English", () => {
    assert.equal(i18n.matchLocale(["de-AT", "en"]), "de");
    assert.equal(i18n.matchLocale(["pt-BR", "zh-TW", "en"]), "zh");
    assert.equal(i18n.matchLocale(["ja_JP"]), "ja");
    assert.equal(i18n.matchLocale(["pt-BR", "ru"]), "en");
    assert.equal(i18n.matchLocale([]), "en");
    const store = (v) => ({ getItem: () => v });
    assert.equal(i18n.initialLocale(store("ko"), ["fr"]), "ko", "a saved choice wins");
    assert.equal(i18n.initialLocale(store("xx"), ["fr"]), "fr", "an unknown saved value is ignored");
    assert.equal(i18n.initialLocale({ getItem: () => { throw new Error("blocked"); } }, ["es-MX"]), "es");
  });
});
