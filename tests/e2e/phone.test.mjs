// End-to-end: the page on phone-sized screens (390×844 and 360×740 CSS px,
// touch, mobile viewport), in the sender's view and in the receiver's, in
// English and in Chinese. Checks that nothing scrolls sideways and that every
// control a finger has to hit (buttons, links, inputs, selects, summaries, the
// labels that open the file pickers) is at least 44×44 CSS px. Writes a
// full-page screenshot of each case into build/screenshots/ (or
// $PD_SCREENSHOT_DIR) for a person to look at.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { REPO_ROOT } from "../lib/cluster.mjs";
import { openBrowser, startE2ECluster } from "./harness.mjs";

const SHOTS = path.resolve(process.env.PD_SCREENSHOT_DIR || path.join(REPO_ROOT, "build/screenshots"));
const PHONES = [
  { name: "390x844", viewport: { width: 390, height: 844 } },
  { name: "360x740", viewport: { width: 360, height: 740 } },
];
const MIN = 44;

let env;
let logDir;
let work;
const browsers = [];

/**
 * Sideways overflow, and the visible controls smaller than MIN×MIN. Hidden
 * controls and the skip link (off screen until focused) are left out; a
 * visually hidden file input is measured by the label that opens it.
 */
function measure(page, min) {
  return page.evaluate((min) => {
    const doc = document.documentElement;
    const small = [];
    const sel = 'button, a[href], input:not([type="file"]):not([type="hidden"]), select, textarea, summary, label:has(> input[type="file"])';
    let count = 0;
    for (const el of document.querySelectorAll(sel)) {
      if (!el.checkVisibility({ visibilityProperty: true })) continue;
      const r = el.getBoundingClientRect();
      if (r.width <= 1 && r.height <= 1) continue; // visually hidden (sr-only)
      if (r.right <= 0) continue; // the skip link, shown on focus
      count++;
      if (r.width < min - 0.01 || r.height < min - 0.01) {
        const id = el.id ? `#${el.id}` : el.dataset.testid ? `[data-testid=${el.dataset.testid}]` : "";
        small.push(`${el.tagName.toLowerCase()}${id} "${(el.textContent || el.getAttribute("aria-label") || "").trim().slice(0, 30)}" ${r.width.toFixed(1)}×${r.height.toFixed(1)}`);
      }
    }
    return { scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth, bodyScroll: document.body.scrollWidth, count, small };
  }, min);
}

async function check(page, what) {
  const m = await measure(page, MIN);
  assert.ok(m.scrollWidth <= m.clientWidth, `${what}: scrolls sideways (scrollWidth ${m.scrollWidth} > clientWidth ${m.clientWidth})`);
  assert.ok(m.bodyScroll <= m.clientWidth, `${what}: body is ${m.bodyScroll} px wide in ${m.clientWidth}`);
  assert.ok(m.count >= 8, `${what}: only ${m.count} controls measured`);
  assert.deepEqual(m.small, [], `${what}: controls under ${MIN}×${MIN} CSS px`);
}

async function shoot(page, file) {
  // Toasts come and go: the shot shows the page as it stays.
  await page.evaluate(() => { document.getElementById("toast").hidden = true; });
  await page.screenshot({ path: path.join(SHOTS, file), fullPage: true });
}

async function setLang(page, l, tag) {
  await page.locator("#lang-select").selectOption(l);
  await page.waitForFunction((t) => document.documentElement.lang === t, tag, { timeout: 15000 });
}

const joined = (page) => page.waitForFunction(
  () => document.querySelector("#signal-status")?.getAttribute("data-state") === "joined", null, { timeout: 60000 });

describe("phone-sized screens", { timeout: 6 * 60 * 1000 }, () => {
  before(async () => {
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-e2e-phone-"));
    work = fs.mkdtempSync(path.join(os.tmpdir(), "pd-e2e-phone-data-"));
    // A long name without spaces: the layout must wrap it, not widen the page.
    fs.writeFileSync(path.join(work, "quarterly-report-final-version-with-all-appendices-2026.pdf"), Buffer.alloc(2_500_000, 7));
    fs.writeFileSync(path.join(work, "photo.jpg"), Buffer.alloc(48_000, 1));
    fs.mkdirSync(SHOTS, { recursive: true });
    env = await startE2ECluster({ keepLogsIn: logDir });
  });

  after(async () => {
    for (const b of browsers) await b.close();
    if (env) await env.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
    console.log(`screenshots: ${SHOTS}\nbrowser console and server logs: ${logDir}`);
  });

  for (const phone of PHONES) {
    it(`${phone.name}: sender and receiver views fit and have 44 px controls, in English and Chinese`, async () => {
      const contextOptions = { viewport: phone.viewport, isMobile: true, hasTouch: true, deviceScaleFactor: 2, locale: "en-US" };
      const sender = await openBrowser(`sender-${phone.name}`, logDir, { contextOptions });
      browsers.push(sender);
      const s = sender.page;
      await s.goto(`${env.fronts[0].url}/`);
      await joined(s);
      const roomId = (await s.getByTestId("room-id").textContent()).trim();
      await s.getByTestId("file-input").setInputFiles(fs.readdirSync(work).map((f) => path.join(work, f)));
      await s.getByTestId("text-input").fill("Meeting notes: bring the signed contract and the keys to room 4.");
      await s.locator('[data-testid="shared-item"]').nth(1).waitFor({ timeout: 10000 });
      await s.locator("details.custom summary").click(); // the custom room form, open

      const receiver = await openBrowser(`receiver-${phone.name}`, logDir, { contextOptions });
      browsers.push(receiver);
      const r = receiver.page;
      await r.goto(`${env.fronts[1].url}/?room=${encodeURIComponent(roomId)}`);
      await r.locator('[data-testid="offered-item"]').nth(1).waitFor({ timeout: 30000 });
      await r.getByTestId("received-text").waitFor({ timeout: 30000 });
      await s.waitForFunction(() => document.querySelector('[data-testid="peer-count"]')?.textContent === "1", null, { timeout: 30000 });

      for (const [l, tag] of [["en", "en"], ["zh", "zh-Hans"]]) {
        if (l !== "en") {
          await setLang(s, l, tag);
          await setLang(r, l, tag);
        }
        await check(s, `sender ${phone.name} ${l}`);
        await shoot(s, `sender-${phone.name}-${l}.png`);
        await check(r, `receiver ${phone.name} ${l}`);
        await shoot(r, `receiver-${phone.name}-${l}.png`);
      }
      for (const f of ["sender", "receiver"].flatMap((v) => ["en", "zh"].map((l) => `${v}-${phone.name}-${l}.png`))) {
        assert.ok(fs.statSync(path.join(SHOTS, f)).size > 10_000, `${f} written`);
      }
    });
  }
});
