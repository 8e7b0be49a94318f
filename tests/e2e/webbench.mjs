// webbench.mjs — throughput of our web client against a bare RTCDataChannel,
// measured between the same two pages of one browser, with the same number
// of bytes. Used by bench/web.mjs (`make bench-web`) and, with a few MiB, by
// the cross-browser end-to-end test (machinery only: both figures measured,
// the ratio printed, no speed asserted).
//
// Ours: the receiving page clicks the item's download button and the clock
// stops when its progress says "done": request, every chunk over the data
// channel, writing to disk (or memory), SHA-256 on both ends, the save.
// Bare: the same two pages open a second peer connection of their own
// (signals handed over by this script, no trickle) and one ordered channel;
// the sending page pushes the same number of bytes from memory in messages
// as large as ours (64 KiB, or less if the far side says so), paced by
// bufferedAmount the way a careful app does, and the receiving page only
// counts them and answers "done" at the end. The clock runs on the sending
// page from the first send to that answer. Ours / bare is what our
// protocol, hashing and storage cost against the browser's own ceiling.

const MiB = 1024 * 1024;

/** Milliseconds from the click on `name`'s download button to its "done" state, timed in the page. */
export async function timeOurs(recv, name, timeout = 300000) {
  return recv.evaluate(async ({ name, timeout }) => {
    const btn = [...document.querySelectorAll('[data-testid="download-button"]')].find((b) => b.getAttribute("data-name") === name);
    if (!btn) throw new Error(`no download button for ${name}`);
    const state = () => [...document.querySelectorAll('[data-testid="progress"]')]
      .find((e) => e.getAttribute("data-name") === name)?.getAttribute("data-state");
    const t0 = performance.now();
    btn.click();
    await new Promise((resolve, reject) => {
      const obs = new MutationObserver(() => {
        const s = state();
        if (s === "done") finish(null);
        else if (s === "failed") finish(new Error(`${name}: transfer failed`));
      });
      const guard = setTimeout(() => finish(new Error(`${name}: not done after ${timeout} ms`)), timeout);
      function finish(err) {
        obs.disconnect();
        clearTimeout(guard);
        if (err) reject(err);
        else resolve();
      }
      obs.observe(document.body, { subtree: true, attributes: true, attributeFilter: ["data-state"] });
    });
    return performance.now() - t0;
  }, { name, timeout });
}

/** Milliseconds to move `bytes` over a bare data channel from `send`'s page to `recv`'s page. */
export async function timeBare(send, recv, bytes, timeout = 300000) {
  const offer = await send.evaluate(async () => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    const dc = pc.createDataChannel("bare", { ordered: true });
    dc.binaryType = "arraybuffer";
    window.__bare = { pc, dc };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((r) => (pc.iceGatheringState === "complete" ? r() : pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r())));
    return pc.localDescription.toJSON();
  });
  const answer = await recv.evaluate(async ({ offer, bytes }) => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    window.__bare = { pc };
    pc.addEventListener("datachannel", (e) => {
      const dc = e.channel;
      dc.binaryType = "arraybuffer";
      let got = 0;
      dc.addEventListener("message", (m) => {
        got += m.data.byteLength;
        if (got === bytes) dc.send("done");
      });
    });
    await pc.setRemoteDescription(offer);
    await pc.setLocalDescription(await pc.createAnswer());
    await new Promise((r) => (pc.iceGatheringState === "complete" ? r() : pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r())));
    return pc.localDescription.toJSON();
  }, { offer, bytes });
  try {
    return await send.evaluate(async ({ answer, bytes, timeout }) => {
      const { pc, dc } = window.__bare;
      await pc.setRemoteDescription(answer);
      await new Promise((resolve, reject) => {
        if (dc.readyState === "open") resolve();
        dc.addEventListener("open", resolve);
        setTimeout(() => reject(new Error("bare channel did not open")), 30000);
      });
      const msg = Math.min(64 * 1024, pc.sctp?.maxMessageSize || 64 * 1024);
      const block = crypto.getRandomValues(new Uint8Array(64 * 1024)).slice(0, msg);
      const HIGH = 8 * 1024 * 1024;
      dc.bufferedAmountLowThreshold = 2 * 1024 * 1024;
      const t0 = performance.now();
      const done = new Promise((resolve, reject) => {
        dc.addEventListener("message", (m) => m.data === "done" && resolve());
        setTimeout(() => reject(new Error(`bare transfer not done after ${timeout} ms`)), timeout);
      });
      let sent = 0;
      while (sent < bytes) {
        if (dc.bufferedAmount > HIGH) {
          await new Promise((r) => dc.addEventListener("bufferedamountlow", r, { once: true }));
          continue;
        }
        const n = Math.min(msg, bytes - sent);
        dc.send(n === msg ? block : block.subarray(0, n));
        sent += n;
      }
      await done;
      return performance.now() - t0;
    }, { answer, bytes, timeout });
  } finally {
    const close = () => { try { window.__bare?.pc.close(); } catch { /* closed */ } delete window.__bare; };
    await send.evaluate(close).catch(() => undefined);
    await recv.evaluate(close).catch(() => undefined);
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Main-thread time of a Chromium page (a playwright page): the renderer's
 * TaskDuration and ScriptDuration counters over CDP, in ms. `read()` gives
 * the totals so far; differences around a transfer say where a page spent
 * its main thread. Other engines: null (no such counters).
 */
export async function mainThreadProbe(side) {
  if (side.kind !== "chromium") return null;
  const cdp = await side.page.context().newCDPSession(side.page);
  await cdp.send("Performance.enable");
  return {
    async read() {
      const { metrics } = await cdp.send("Performance.getMetrics");
      const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
      return { task: (m.TaskDuration ?? 0) * 1000, script: (m.ScriptDuration ?? 0) * 1000 };
    },
  };
}

async function mainThreadDelta(probes, run) {
  if (!probes) return { result: await run(), cpu: null };
  const before = await Promise.all(probes.map((p) => p.read()));
  const result = await run();
  const after = await Promise.all(probes.map((p) => p.read()));
  const d = (i, k) => after[i][k] - before[i][k];
  return { result, cpu: { sendTask: d(0, "task"), sendScript: d(0, "script"), recvTask: d(1, "task"), recvScript: d(1, "script") } };
}

/**
 * `rounds` × (ours and bare, in turn first) between a sending page that already offers
 * `name` (`bytes` long) in room `roomId` and a receiving page opened afresh at
 * `recvUrl` for each round (a done item is not fetched again), after an
 * untimed bare transfer of `warmupBytes` if not 0. Returns the
 * medians in MB/s and the median of the rounds' ours/bare ratios. With
 * `profile` (Chromium only) it also returns each page's main-thread time
 * per MiB for ours and for bare, the medians over the rounds.
 */
export async function benchPair({ send, recv, recvUrl, roomId, name, bytes, rounds = 1, profile = false, warmupBytes = 0, log = () => undefined }) {
  const ours = [];
  const bare = [];
  const cpu = [];
  const sendProbe = profile ? await mainThreadProbe(send) : null;
  for (let i = 0; i < rounds; i++) {
    await recv.goto(`${recvUrl}/?room=${encodeURIComponent(roomId)}`);
    await recv.waitFor((n) => [...document.querySelectorAll('[data-testid="download-button"]')].some((b) => b.getAttribute("data-name") === n), name, 60000);
    // The data channel is open once the sender counts this receiver.
    await recv.waitFor(() => document.querySelector('[data-testid="peer-count"]')?.textContent === "1", null, 60000);
    // The first figure of a round meets a freshly loaded receiving page and
    // an idle WebRTC path, the second whatever the first left running
    // (buffers to collect, the stored file being flushed). An untimed bare
    // transfer warms the page for both without running any of our client's
    // code, and the order alternates by round, so neither leans every
    // ratio the same way (docs/benchmarks.md, "Which figure goes first in a
    // round").
    if (warmupBytes > 0) await timeBare(send, recv, warmupBytes);
    const recvProbe = sendProbe ? await mainThreadProbe(recv) : null;
    const probes = sendProbe && recvProbe ? [sendProbe, recvProbe] : null;
    const runOurs = () => mainThreadDelta(probes, () => timeOurs(recv, name));
    const runBare = () => mainThreadDelta(probes, () => timeBare(send, recv, bytes));
    const oursFirst = i % 2 === 0;
    const first = await (oursFirst ? runOurs : runBare)();
    const second = await (oursFirst ? runBare : runOurs)();
    const [o, b] = oursFirst ? [first, second] : [second, first];
    ours.push(bytes / 1e6 / (o.result / 1000));
    bare.push(bytes / 1e6 / (b.result / 1000));
    let line = `round ${i + 1} (${oursFirst ? "ours first" : "bare first"}): ours ${ours[i].toFixed(1)} MB/s, bare ${bare[i].toFixed(1)} MB/s, ours/bare ${(ours[i] / bare[i]).toFixed(2)}`;
    if (o.cpu && b.cpu) {
      const perMiB = (c) => Object.fromEntries(Object.entries(c).map(([k, v]) => [k, v / (bytes / MiB)]));
      cpu.push({ ours: perMiB(o.cpu), bare: perMiB(b.cpu) });
      const f = (c) => `sender ${c.sendTask.toFixed(1)} (script ${c.sendScript.toFixed(1)}), receiver ${c.recvTask.toFixed(1)} (script ${c.recvScript.toFixed(1)})`;
      line += `; main thread ms/MiB: ours ${f(cpu[i].ours)}; bare ${f(cpu[i].bare)}`;
    }
    log(line);
  }
  // A round's two figures are measured back to back, so their ratio is the
  // least disturbed by load that drifts between rounds: the median of those.
  const ratios = ours.map((o, i) => o / bare[i]);
  const mainThreadMsPerMiB = cpu.length ? Object.fromEntries(["ours", "bare"].map((w) => [w,
    Object.fromEntries(Object.keys(cpu[0][w]).map((k) => [k, median(cpu.map((c) => c[w][k]))]))])) : null;
  return { bytes, rounds, oursMBps: median(ours), bareMBps: median(bare), ratio: median(ratios), ratios, oursAll: ours, bareAll: bare, mainThreadMsPerMiB };
}

export { MiB };
