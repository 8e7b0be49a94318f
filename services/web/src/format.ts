// Progress text, a speed meter for it, and random ids. Sizes, speeds and
// durations are formatted by i18n/ in the active locale.
import { formatBytes, formatDuration, formatRate, t } from "./i18n";

/** Bytes per second over a sliding window of recent samples. */
export class SpeedMeter {
  private samples: { t: number; bytes: number }[] = [];
  constructor(private windowMs = 3000) {}

  /** A reading; called per chunk, so readings closer than 50 ms only move the newest sample. */
  add(bytes: number, now = performance.now()): void {
    const n = this.samples.length;
    if (n >= 2 && now - this.samples[n - 2].t < 50) {
      const last = this.samples[n - 1];
      last.t = now;
      last.bytes = bytes;
      return;
    }
    this.samples.push({ t: now, bytes });
    while (this.samples.length > 2 && now - this.samples[0].t > this.windowMs) this.samples.shift();
  }

  reset(): void {
    this.samples = [];
  }

  /** Bytes per second, or 0 before two samples exist. */
  rate(): number {
    if (this.samples.length < 2) return 0;
    const a = this.samples[0];
    const b = this.samples[this.samples.length - 1];
    const dt = (b.t - a.t) / 1000;
    return dt > 0 ? (b.bytes - a.bytes) / dt : 0;
  }
}

/** "1.2 MB of 5 MB · 2.5 MB/s · 2 min, 5 sec left", in the active locale. */
export function progressText(done: number, total: number, rate: number): string {
  const parts = [t("progress.of", { done: formatBytes(done), total: formatBytes(total) })];
  if (rate > 0 && done < total) {
    parts.push(formatRate(rate));
    parts.push(t("progress.left", { time: formatDuration((total - done) / rate) }));
  }
  return parts.join(" · ");
}

export function randomId(bytes = 12): string {
  const a = new Uint8Array(bytes);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
}
