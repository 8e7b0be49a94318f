// End-to-end: the page for people who use a keyboard or a screen reader, in
// one Chromium (two pages: a sender behind signal worker 1, a receiver
// behind worker 2) against a real cluster.
//
// 1. The whole flow with the keyboard alone (Tab, Shift+Tab, Enter, Space;
//    typing into fields): add a file through the file input, copy the link,
//    join by link on the other page, download, and the received file's
//    SHA-256. Every stop of the tab walk must show a focus outline, and
//    after each action the focus must still be on a control (never <body>).
//    The browser's file dialog is intercepted over CDP and answered with the
//    file once the keyboard has opened it.
// 2. Toasts and errors reach assistive technology through live regions
//    (role=status / role=alert), and a transfer's progress and end are
//    announced through #live in the language shown at the time (two
//    languages on the receiver, a third on the sender).
// 3. axe-core (WCAG 2.1 A/AA and best practices) on the sender's and the
//    receiver's view, each empty and in the middle of a transfer, in all
//    seven languages and both themes: no serious or critical finding.
//
// "In the middle of a transfer" is held, not raced: a page is paused in
// its debugger (CDP Debugger.pause) while the other one is audited. The
// receiver paused: the sender sends one window (16 MiB past the last ack,
// docs/datachannel-protocol.md §5) and waits, "sending", for acks that do
// not come. Then the sender paused: the receiver takes what was already on
// the wire and waits, "receiving", at a third of the file or so. Nothing
// here depends on how fast the machine is.

import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { openBrowser, sha256, sha256File, startE2ECluster } from "./harness.mjs";

const require = createRequire(import.meta.url);
const AXE = require.resolve("axe-core/axe.min.js");

const LANGS = ["en", "zh", "es", "ja", "de", "fr", "ko"];
const TAGS = { en: "en", zh: "zh-Hans", es: "es", ja: "ja", de: "de", fr: "fr", ko: "ko" };
const MiB = 1024 * 1024;
// What the dark theme is audited for, after the light one had every rule.
const THEME_RULES = ["color-contrast", "link-in-text-block"];
// Large enough that one flow-control window (16 MiB) is well inside it.
const BIG_BYTES = 48 * MiB;

let env;
let logDir;
let work;
let browser;
let sendPage;
let recvPage;
const cdp = new Map();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const joined = (page) => page.waitForFunction(
  () => document.querySelector("#signal-status")?.getAttribute("data-state") === "joined", null, { timeout: 60000 });
const waitLang = (page, tag) => page.waitForFunction((t) => document.documentElement.lang === t && document.title !== "", tag, { timeout: 15000 });

/** Where the focus is, and whether it is drawn (for a visually hidden file input: on its label). */
function focusState(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body || el === document.documentElement) return { onBody: true };
    const drawn = el.matches("input[type=file]") ? el.closest(".button") ?? el : el;
    const cs = getComputedStyle(drawn);
    return {
      onBody: false,
      id: el.id,
      testid: el.getAttribute("data-testid"),
      tag: el.tagName.toLowerCase(),
      outline: cs.outlineStyle,
      outlineWidth: parseFloat(cs.outlineWidth) || 0,
      describe: `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ""}${el.getAttribute("data-testid") ? `[${el.getAttribute("data-testid")}]` : ""}`,
    };
  });
}

async function assertFocused(page, selector, what) {
  const f = await focusState(page);
  assert.ok(!f.onBody, `${what}: the focus fell to <body>`);
  const ok = await page.evaluate((sel) => document.activeElement?.matches(sel) ?? false, selector);
  assert.ok(ok, `${what}: focus is on ${f.describe}, expected ${selector}`);
}

/**
 * Presses Tab (Shift+Tab with `back`) until the focused element matches
 * `selector`; every element passed on the way must show a focus outline.
 */
async function tabTo(page, selector, { back = false, max = 60 } = {}) {
  const seen = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press(back ? "Shift+Tab" : "Tab");
    const f = await focusState(page);
    assert.ok(!f.onBody, `tabbing to ${selector}: the focus fell to <body> after ${seen.join(" → ")}`);
    assert.ok(f.outline !== "none" && f.outlineWidth >= 2, `no visible focus on ${f.describe} (outline ${f.outline} ${f.outlineWidth}px)`);
    seen.push(f.describe);
    if (await page.evaluate((sel) => document.activeElement?.matches(sel) ?? false, selector)) return seen;
  }
  throw new Error(`${selector} not reached with ${back ? "Shift+Tab" : "Tab"} in ${max} presses: ${seen.join(" → ")}`);
}

/** Every text #live took from now on, in order (watched in the page, so none is missed). */
function recordLive(page) {
  return page.evaluate(() => {
    window.__live = [];
    const el = document.getElementById("live");
    window.__liveObs?.disconnect();
    window.__liveObs = new MutationObserver(() => { if (el.textContent) window.__live.push(el.textContent); });
    window.__liveObs.observe(el, { childList: true, characterData: true, subtree: true });
  });
}
const liveSaid = (page) => page.evaluate(() => window.__live.slice());

async function pause(page) {
  const s = cdp.get(page);
  // It stops at the next JavaScript the page runs: a timer, an event.
  const stopped = new Promise((resolve) => s.once("Debugger.paused", resolve));
  await s.send("Debugger.enable");
  await s.send("Debugger.pause");
  await Promise.race([stopped, sleep(30000).then(() => { throw new Error("the page did not pause"); })]);
}
async function resume(page) {
  const s = cdp.get(page);
  await s.send("Debugger.resume");
  await s.send("Debugger.disable");
}

/** Sets the theme with the page's own toggle: "light" (chosen) or "auto" (the emulated dark preference). */
async function setTheme(page, theme) {
  for (let i = 0; i < 3; i++) {
    const cur = await page.evaluate(() => document.documentElement.getAttribute("data-theme") ?? "auto");
    if (cur === theme) return;
    await page.locator("#theme-toggle").click();
  }
  throw new Error(`theme ${theme} not reached with the toggle`);
}

/**
 * One axe run: every WCAG 2.1 A/AA and best-practice rule, or with `colorsOnly`
 * only the rules a change of theme can change the outcome of (the theme
 * changes colours and nothing else: same elements, names, roles and text).
 */
async function axeRun(page, { colorsOnly = false } = {}) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.addScriptTag({ path: AXE });
  const runOnly = colorsOnly ? { type: "rule", values: THEME_RULES }
    : { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] };
  const r = await page.evaluate((runOnly) => window.axe.run(document, { runOnly, resultTypes: ["violations"] }), runOnly);
  return r.violations.map((v) => ({ id: v.id, impact: v.impact, text: `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}` }));
}

/**
 * axe in every language (switched with the page's own switcher) and both
 * themes. Returns the serious and critical findings, labelled; prints the others.
 */
async function auditEverywhere(page, view) {
  const bad = [];
  const bg = {};
  for (const l of LANGS) {
    await page.locator("#lang-select").selectOption(l);
    await waitLang(page, TAGS[l]);
    for (const theme of ["light", "dark"]) {
      await setTheme(page, theme === "light" ? "light" : "auto");
      bg[theme] = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      for (const v of await axeRun(page, { colorsOnly: theme === "dark" })) {
        if (v.impact === "serious" || v.impact === "critical") bad.push(`${view}, ${l}, ${theme}: ${v.text}`);
        else console.log(`axe, ${view}, ${l}, ${theme} (not failing): ${v.text}`);
      }
    }
  }
  // The two themes really differ (the dark one comes from the emulated preference).
  assert.notEqual(bg.light, bg.dark, `${view}: light and dark themes look the same (${bg.light})`);
  return bad;
}

/**
 * The receiver's origin: the same front by the name "localhost", a different
 * site from the sender's 127.0.0.1, so site isolation gives each page its
 * own renderer process and pausing one cannot stall the other.
 */
const recvBase = () => env.fronts[1].url.replace("//127.0.0.1:", "//localhost:");

const progressOf = (page) => page.evaluate(() => {
  const p = document.querySelector('[data-testid="progress"]');
  return p ? { state: p.getAttribute("data-state"), bytes: Number(p.getAttribute("data-bytes")) } : null;
});

describe("keyboard, screen readers and axe", { timeout: 10 * 60 * 1000 }, () => {
  let small;
  let big;

  before(async () => {
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-e2e-a11y-"));
    work = fs.mkdtempSync(path.join(os.tmpdir(), "pd-e2e-a11y-data-"));
    small = path.join(work, "keyboard.bin");
    fs.writeFileSync(small, crypto.randomBytes(3 * MiB + 123));
    big = path.join(work, "big.bin");
    fs.writeFileSync(big, crypto.randomBytes(BIG_BYTES));
    env = await startE2ECluster({ keepLogsIn: logDir });
    browser = await openBrowser("a11y", logDir, { contextOptions: { locale: "en-US", colorScheme: "dark" } });
    await browser.ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: env.fronts[0].url });
    sendPage = browser.page;
    recvPage = await browser.ctx.newPage();
    const log = (line) => fs.appendFileSync(path.join(logDir, "a11y-receiver.console.log"), `${new Date().toISOString()} ${line}\n`);
    recvPage.on("console", (m) => log(`${m.type()}: ${m.text()}`));
    recvPage.on("pageerror", (e) => log(`PAGE ERROR: ${e.stack || e}`));
    for (const p of [sendPage, recvPage]) cdp.set(p, await browser.ctx.newCDPSession(p));
  });

  after(async () => {
    for (const p of [sendPage, recvPage]) await cdp.get(p)?.send("Debugger.resume").catch(() => undefined);
    await browser?.close();
    if (env) await env.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
    console.log(`browser console and server logs: ${logDir}`);
  });

  it("sends, copies the link, joins and downloads with the keyboard alone; focus always visible, never on <body>", async () => {
    const s = sendPage;
    await s.goto(`${env.fronts[0].url}/`);
    await joined(s);
    const link = await s.locator("#share-link").getAttribute("href");

    // The drop zone and then the file input itself are tab stops; Space on the input opens the file dialog.
    // The dialog is intercepted over CDP, switched on (and acknowledged)
    // before the key is pressed, and answered with the file: the page's own
    // "change" handler does the rest.
    const c = cdp.get(s);
    await c.send("Page.enable");
    await c.send("Page.setInterceptFileChooserDialog", { enabled: true });
    const dialog = new Promise((resolve) => c.once("Page.fileChooserOpened", resolve));
    await tabTo(s, "#dropzone");
    await tabTo(s, "#file-input");
    await s.keyboard.press("Space");
    const opened = await Promise.race([dialog, sleep(60000).then(() => null)]);
    assert.ok(opened, "Space on the file input opened no file dialog");
    assert.equal(opened.mode, "selectMultiple");
    await c.send("DOM.setFileInputFiles", { files: [small], backendNodeId: opened.backendNodeId });
    await c.send("Page.setInterceptFileChooserDialog", { enabled: false });
    await s.getByTestId("shared-item").waitFor({ timeout: 15000 });
    await assertFocused(s, "#file-input", "after choosing a file");

    // Back up to "Copy link" and press it with Space: the clipboard holds the link,
    // and the confirmation is said in the role=status toast.
    await tabTo(s, "#copy-link", { back: true });
    await s.keyboard.press("Space");
    await s.waitForFunction(() => document.getElementById("toast").textContent === "Link copied.", null, { timeout: 10000 });
    assert.equal(await s.evaluate(() => navigator.clipboard.readText()), link);
    await assertFocused(s, "#copy-link", "after copying the link");

    // The receiver: a page of its own, which first mistypes the room.
    const r = recvPage;
    await r.goto(`${recvBase()}/`);
    await joined(r);
    await tabTo(r, "#join-input");
    await r.keyboard.type("no-such-room-here");
    await r.keyboard.press("Enter");
    await r.getByTestId("error").waitFor({ timeout: 30000 });
    // The error is a role=alert inside the assertive #notices region.
    assert.equal(await r.evaluate(() => document.querySelector('[data-testid="error"]').closest('[role="alert"]')?.parentElement?.id), "notices");
    await assertFocused(r, "#join-input", "after Enter in the join form (the receive half moved to the top)");
    // Dismiss it from the keyboard: the focus comes back to the field.
    await tabTo(r, '#notices button', { back: true });
    await r.keyboard.press("Enter");
    await r.waitForFunction(() => !document.querySelector('[data-testid="error"]'));
    await assertFocused(r, "#join-input", "after dismissing the error");

    // The real link, then Enter.
    await r.keyboard.press("ControlOrMeta+a");
    await r.keyboard.type(link);
    await r.keyboard.press("Enter");
    await r.getByTestId("download-button").waitFor({ timeout: 60000 });
    await assertFocused(r, "#join-input", "after joining");
    await tabTo(r, '[data-testid="download-button"]');
    const download = r.waitForEvent("download", { timeout: 180000 });
    await r.keyboard.press("Enter");
    // Still on the button while it receives (it is aria-disabled, not disabled).
    await assertFocused(r, '[data-testid="download-button"]', "right after Enter on Download");
    const dl = await download;
    assert.equal(await sha256File(await dl.path()), sha256(fs.readFileSync(small)));
    await r.getByTestId("verified").waitFor({ timeout: 30000 });
    await assertFocused(r, '[data-testid="download-button"]', "after the download");
    // The sender's row says it was verified, and its page kept its focus.
    await s.getByTestId("verified").waitFor({ timeout: 30000 });
    await assertFocused(s, "#copy-link", "on the sender after the transfer");
  });

  it("says toasts and errors through live regions that are in the page before they speak", async () => {
    // #toast: role=status, present (not hidden) and empty between toasts.
    const toast = await sendPage.evaluate(() => {
      const el = document.getElementById("toast");
      return { role: el.getAttribute("role"), live: el.getAttribute("aria-live"), hidden: el.hidden || getComputedStyle(el).display === "none" };
    });
    assert.deepEqual(toast, { role: "status", live: "polite", hidden: false });
    const live = await sendPage.evaluate(() => {
      const el = document.getElementById("live");
      return { role: el.getAttribute("role"), live: el.getAttribute("aria-live"), atomic: el.getAttribute("aria-atomic") };
    });
    assert.deepEqual(live, { role: "status", live: "polite", atomic: "true" });
    // The sender's #live said the item was delivered (the keyboard test's transfer).
    assert.match(await sendPage.locator("#live").textContent(), /^keyboard\.bin: delivered and verified$/);
    assert.match(await recvPage.locator("#live").textContent(), /^keyboard\.bin: received and verified$/);
  });

  it("has no serious or critical axe findings on the empty sender and receiver views (7 languages × 2 themes)", async () => {
    await sendPage.goto(`${env.fronts[0].url}/`);
    await joined(sendPage);
    const roomId = (await sendPage.getByTestId("room-id").textContent()).trim();
    await recvPage.goto(`${recvBase()}/?room=${encodeURIComponent(roomId)}`);
    await recvPage.locator("#offered-empty").waitFor({ state: "visible", timeout: 60000 });
    const bad = [...await auditEverywhere(sendPage, "sender, empty"), ...await auditEverywhere(recvPage, "receiver, empty")];
    assert.deepEqual(bad, []);
  });

  it("has none mid-transfer either, and announces progress and the end in the language shown", async () => {
    const s = sendPage;
    const r = recvPage;
    for (const p of [s, r]) {
      await p.locator("#lang-select").selectOption("en");
      await waitLang(p, "en");
    }
    await s.getByTestId("file-input").setInputFiles(big);
    await r.getByTestId("download-button").waitFor({ timeout: 60000 });
    await recordLive(r);
    await recordLive(s);

    // The sender paused before the request reaches it; the receiver asks, then pauses.
    await pause(s);
    await r.getByTestId("download-button").click();
    await r.waitForFunction(() => /receiving/.test(document.querySelector('[data-testid="progress"] .ptext')?.textContent ?? ""), null, { timeout: 60000 });
    await pause(r);
    await resume(s);
    await s.waitForFunction(() => document.querySelector('[data-testid="progress"]')?.getAttribute("data-state") === "sending", null, { timeout: 60000 });
    const sending = await progressOf(s);
    const badSend = await auditEverywhere(s, "sender, sending");
    assert.equal((await progressOf(s)).state, "sending", "the sender was still sending during its audits");

    // Now the other way round: the sender holds, the receiver takes what is on the wire.
    await pause(s);
    await resume(r);
    await r.waitForFunction(() => window.__live.length > 0, null, { timeout: 60000 });
    const held = await progressOf(r);
    assert.equal(held.state, "receiving");
    assert.ok(held.bytes > 0 && held.bytes < BIG_BYTES, `the receiver holds part of the file (${held.bytes})`);
    // Quarters reached so far, in English.
    const english = await liveSaid(r);
    assert.ok(english.length >= 1 && english.every((x) => /^big\.bin: (25|50|75)% received$/.test(x)), `English announcements: ${JSON.stringify(english)}`);
    const badRecv = await auditEverywhere(r, "receiver, receiving");
    assert.equal((await progressOf(r)).state, "receiving", "the receiver was still receiving during its audits");
    assert.deepEqual([...badSend, ...badRecv], []);

    // The rest in German on the receiver and in Japanese on the sender.
    await r.locator("#lang-select").selectOption("de");
    await waitLang(r, "de");
    await recordLive(r);
    const download = r.waitForEvent("download", { timeout: 300000 });
    await resume(s);
    await s.locator("#lang-select").selectOption("ja");
    await waitLang(s, "ja");
    const dl = await download;
    assert.equal(await sha256File(await dl.path()), sha256(fs.readFileSync(big)));
    await r.waitForFunction(() => window.__live.includes("big.bin: empfangen und geprüft"), null, { timeout: 60000 });
    const german = await liveSaid(r);
    assert.ok(german.every((x) => /^big\.bin: (\d+\s% empfangen|empfangen und geprüft)$/.test(x)), `German announcements: ${JSON.stringify(german)}`);
    await s.waitForFunction(() => window.__live.includes("big.bin：届いて検証されました"), null, { timeout: 60000 });
    console.log(`held mid-transfer: sender ${JSON.stringify(sending)}, receiver ${JSON.stringify(held)}; said: en ${JSON.stringify(english)}, de ${JSON.stringify(german)}`);
  });
});
