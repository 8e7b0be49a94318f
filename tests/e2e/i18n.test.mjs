// End-to-end: the page in each of its languages, in Chromium against a real
// cluster. The language switcher redraws the whole page (static text from
// index.html and what the views drew), the choice survives a reload, and a
// browser whose preferred language (navigator.languages, Accept-Language) is
// French or Korean gets the page in that language without choosing. An
// axe-core audit runs in English and in two other languages.

import assert from "node:assert/strict";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { openBrowser, startE2ECluster } from "./harness.mjs";

const require = createRequire(import.meta.url);
const AXE = require.resolve("axe-core/axe.min.js");

const TAGS = { en: "en", zh: "zh-Hans", es: "es", ja: "ja", de: "de", fr: "fr", ko: "ko" };
const NAMES = ["English", "简体中文", "Español", "日本語", "Deutsch", "Français", "한국어"];
// A few words per language, written here by hand: the page must show these.
const WORDS = {
  en: { send: "Send", receive: "Receive", join: "Join" },
  zh: { send: "发送", receive: "接收", join: "加入" },
  es: { send: "Enviar", receive: "Recibir", join: "Unirse" },
  ja: { send: "送信", receive: "受信", join: "参加" },
  de: { send: "Senden", receive: "Empfangen", join: "Beitreten" },
  fr: { send: "Envoyer", receive: "Recevoir", join: "Rejoindre" },
  ko: { send: "보내기", receive: "받기", join: "참여" },
};

let env;
let logDir;
let work;
const browsers = [];

/** What the page says now: every catalog-driven text and attribute, and some state. */
function snapshot(page) {
  return page.evaluate(() => {
    const texts = {};
    for (const el of document.querySelectorAll("[data-i18n]")) texts[el.dataset.i18n] = el.textContent;
    for (const el of document.querySelectorAll("[data-i18n-attr]")) {
      for (const pair of el.dataset.i18nAttr.split(";")) {
        const [attr, key] = pair.split(":");
        texts[`${key}@${attr}`] = el.getAttribute(attr);
      }
    }
    const stop = document.querySelector('[data-testid="shared-item"] button.icon');
    return {
      lang: document.documentElement.lang,
      dir: document.documentElement.dir,
      title: document.title,
      texts,
      theme: document.getElementById("theme-toggle").textContent,
      stopLabel: stop?.getAttribute("aria-label") ?? null,
      size: document.querySelector('[data-testid="shared-item"] .size')?.textContent ?? null,
      textStatus: document.getElementById("text-status").textContent,
      selected: document.getElementById("lang-select").value,
      options: [...document.querySelectorAll("#lang-select option")].map((o) => ({ value: o.value, text: o.textContent, lang: o.lang })),
      selectLabel: document.querySelector('label[for="lang-select"]').textContent,
    };
  });
}

const waitLang = (page, tag) => page.waitForFunction((t) => document.documentElement.lang === t && document.title !== "", tag, { timeout: 15000 });
const joined = (page) => page.waitForFunction(
  () => document.querySelector("#signal-status")?.getAttribute("data-state") === "joined", null, { timeout: 60000 });

async function axeAudit(page) {
  await page.addScriptTag({ path: AXE });
  const r = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
  }));
  return r.violations.map((v) => `${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

describe("the page in seven languages", { timeout: 5 * 60 * 1000 }, () => {
  let sender;
  let roomId;
  let english;

  before(async () => {
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-e2e-i18n-"));
    work = fs.mkdtempSync(path.join(os.tmpdir(), "pd-e2e-i18n-data-"));
    fs.writeFileSync(path.join(work, "notes.txt"), "x".repeat(12345));
    env = await startE2ECluster({ keepLogsIn: logDir });
    sender = await openBrowser("sender", logDir, { contextOptions: { locale: "en-US" } });
    browsers.push(sender);
    await sender.page.goto(`${env.fronts[0].url}/`);
    await joined(sender.page);
    roomId = (await sender.page.getByTestId("room-id").textContent()).trim();
    await sender.page.getByTestId("file-input").setInputFiles(path.join(work, "notes.txt"));
    await sender.page.getByTestId("shared-item").waitFor({ timeout: 10000 });
    await sender.page.getByTestId("text-input").fill("hello");
    await sender.page.waitForFunction(() => document.getElementById("text-status")?.textContent !== "");
  });

  after(async () => {
    for (const b of browsers) await b.close();
    if (env) await env.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
    console.log(`browser console and server logs: ${logDir}`);
  });

  it("starts in English for an English browser, with a labelled switcher listing each language in itself", async () => {
    english = await snapshot(sender.page);
    assert.equal(english.lang, "en");
    assert.equal(english.dir, "ltr");
    assert.equal(english.texts["send.title"], WORDS.en.send);
    assert.equal(english.selected, "en");
    assert.equal(english.selectLabel, "Language");
    assert.deepEqual(english.options.map((o) => o.text), NAMES);
    assert.deepEqual(english.options.map((o) => o.lang), Object.values(TAGS));
    assert.equal(english.stopLabel, "Stop sharing notes.txt");
    assert.equal(english.size, "12 kB");
    assert.equal(english.textStatus, "Text shared (5 bytes).");
    // Nothing from the catalogs is left empty.
    assert.deepEqual(Object.entries(english.texts).filter(([, v]) => !v).map(([k]) => k), []);
  });

  it("redraws the whole page in each language chosen with the switcher (keyboard-operable select)", async () => {
    const p = sender.page;
    for (const l of ["zh", "es", "ja", "de", "fr", "ko"]) {
      await p.getByLabel(/Language|语言|Idioma|言語|Sprache|Langue|언어/).selectOption(l);
      await waitLang(p, TAGS[l]);
      const s = await snapshot(p);
      assert.equal(s.selected, l);
      assert.equal(s.texts["send.title"], WORDS[l].send, `${l}: send title`);
      assert.equal(s.texts["recv.title"], WORDS[l].receive, `${l}: receive title`);
      assert.equal(s.texts["recv.join"], WORDS[l].join, `${l}: join button`);
      assert.notEqual(s.title, english.title, `${l}: document title`);
      assert.notEqual(s.theme, english.theme, `${l}: theme button`);
      assert.notEqual(s.selectLabel, english.selectLabel, `${l}: switcher label`);
      assert.ok(s.stopLabel && s.stopLabel !== english.stopLabel && s.stopLabel.includes("notes.txt"), `${l}: a view's aria-label (${s.stopLabel})`);
      // Every text and attribute from index.html is redrawn; a few words are
      // the same in both languages ("PrivyDrop", German "Signal:").
      assert.ok(s.textStatus !== english.textStatus && (l === "es" || !s.textStatus.includes("bytes")), `${l}: text status and its size (${s.textStatus})`);
      const same = Object.keys(english.texts).filter((k) => s.texts[k] === english.texts[k]);
      assert.ok(same.length <= 4, `${l}: still as in English: ${same.join(", ")}`);
      assert.deepEqual(s.options.map((o) => o.text), NAMES, "the switcher keeps each language's own name");
    }
    // Keyboard: focus the switcher and move one option up (ko → fr).
    await p.locator("#lang-select").focus();
    await p.keyboard.press("ArrowUp");
    await waitLang(p, "fr");
    assert.equal((await snapshot(p)).texts["send.title"], WORDS.fr.send);
    assert.match((await snapshot(p)).size, /^12\s?ko$/, "file sizes in French units");
  });

  it("keeps the choice across a reload (localStorage)", async () => {
    const p = sender.page;
    await p.locator("#lang-select").selectOption("ja");
    await waitLang(p, "ja");
    assert.equal(await p.evaluate(() => localStorage.getItem("privydrop-lang")), "ja");
    await p.reload();
    await waitLang(p, "ja");
    await joined(p);
    const s = await snapshot(p);
    assert.equal(s.selected, "ja");
    assert.equal(s.texts["send.title"], WORDS.ja.send);
    assert.equal(await p.locator("#signal-status").textContent(), "オンライン");
    // The sender's reloaded page has a new room; share the file again for the receivers below.
    roomId = (await p.getByTestId("room-id").textContent()).trim();
    await p.getByTestId("file-input").setInputFiles(path.join(work, "notes.txt"));
    await p.getByTestId("shared-item").waitFor({ timeout: 10000 });
  });

  it("follows the browser's language (Accept-Language, navigator.languages) without a choice", async () => {
    const fr = await openBrowser("fr", logDir, { contextOptions: { locale: "fr-FR" } });
    browsers.push(fr);
    const sent = [];
    fr.page.on("request", (r) => { if (r.resourceType() === "document") sent.push(r.headers()["accept-language"] ?? ""); });
    await fr.page.goto(`${env.fronts[1].url}/`);
    await waitLang(fr.page, "fr");
    assert.match(sent[0], /^fr/, "the browser asked for French");
    const s = await snapshot(fr.page);
    assert.equal(s.selected, "fr");
    assert.equal(s.texts["send.title"], WORDS.fr.send);
    assert.equal(await fr.page.evaluate(() => localStorage.getItem("privydrop-lang")), null, "nothing saved without a choice");
  });

  it("shows the receiver view in Korean for a Korean browser, and passes an axe audit there", async () => {
    const ko = await openBrowser("ko", logDir, { contextOptions: { locale: "ko-KR" } });
    browsers.push(ko);
    const p = ko.page;
    await p.goto(`${env.fronts[1].url}/?room=${encodeURIComponent(roomId)}`);
    await waitLang(p, "ko");
    await p.getByTestId("download-button").waitFor({ timeout: 30000 });
    assert.equal(await p.getByTestId("download-button").textContent(), "다운로드");
    assert.equal(await p.getByTestId("download-button").getAttribute("aria-label"), "notes.txt 다운로드");
    await p.waitForFunction(() => /[\uac00-\ud7af]/.test(document.getElementById("recv-status")?.textContent ?? ""), null, { timeout: 15000 });
    assert.equal(await p.locator('[data-testid="offered-item"] .size').textContent(), "12kB");
    assert.deepEqual(await axeAudit(p), []);
  });

  it("passes an axe audit in English and in Japanese (sender view)", async () => {
    const p = sender.page;
    await p.locator("#lang-select").selectOption("en");
    await waitLang(p, "en");
    assert.deepEqual(await axeAudit(p), [], "English");
    await p.locator("#lang-select").selectOption("ja");
    await waitLang(p, "ja");
    assert.deepEqual(await axeAudit(p), [], "Japanese");
  });
});
