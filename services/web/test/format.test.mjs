// The speed meter behind the progress text: fed on every chunk, it keeps
// few samples and still measures the rate over its window.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadSources } from "./load.mjs";

const F = await loadSources("format.ts");

describe("SpeedMeter", () => {
  it("measures bytes per second from readings, however often they come", () => {
    const m = new F.SpeedMeter(3000);
    assert.equal(m.rate(), 0, "no rate before two readings");
    // 10 MB/s, one reading per 64 KiB chunk: every 6.5536 ms.
    const chunk = 65536;
    let t = 1000;
    for (let i = 1; i <= 2000; i++) m.add(i * chunk, (t += chunk / 1e7 * 1000));
    assert.ok(Math.abs(m.rate() - 1e7) < 1, `rate ${m.rate()}`);
  });

  it("keeps readings less than 50 ms apart as one sample (bounded work and memory per chunk)", () => {
    const m = new F.SpeedMeter(3000);
    for (let i = 0; i <= 3000; i++) m.add(i * 1000, i); // one reading per ms for 3 s
    const n = m.samples.length;
    assert.ok(n >= 55 && n <= 64, `${n} samples for 3 s of readings`);
    assert.equal(m.rate(), 1e6, "the newest reading still counts");
  });

  it("starts afresh after reset", () => {
    const m = new F.SpeedMeter(3000);
    m.add(0, 0);
    m.add(1000, 100);
    m.reset();
    assert.equal(m.rate(), 0);
    m.add(5000, 200);
    m.add(6000, 1200);
    assert.equal(m.rate(), 1000);
  });
});
