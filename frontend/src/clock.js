// Server clock: offset between the server's clock and ours, smoothed with an
// exponential moving average (alpha 0.3), and a monotonic "now" so the
// countdown never jumps backwards when the offset is corrected.

export const ALPHA = 0.3;

export function smooth(prev, sample, alpha = ALPHA) {
  if (prev === null || prev === undefined || !Number.isFinite(prev)) return Math.round(sample);
  return Math.round(prev * (1 - alpha) + sample * alpha);
}

export class ServerClock {
  constructor(local = () => Date.now()) {
    this.local = local;
    this.offset = null;
    this.last = -Infinity;
  }

  /** Feed a server_time (ms). `localAt` is our clock when it was true (e.g. mid-RTT). */
  observe(serverTime, localAt = this.local()) {
    const t = Number(serverTime);
    if (!Number.isFinite(t) || t <= 0) return;
    this.offset = smooth(this.offset, t - localAt);
  }

  get synced() {
    return this.offset !== null;
  }

  /** Server "now" in ms; never smaller than a value it returned before. */
  now() {
    const n = this.local() + (this.offset || 0);
    if (n > this.last) this.last = n;
    return this.last;
  }
}

/** Split a remaining duration (ms) into parts for display. */
export function parts(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  return {
    days: Math.floor(total / 86400),
    hours: Math.floor((total % 86400) / 3600),
    minutes: Math.floor((total % 3600) / 60),
    seconds: total % 60,
  };
}

const pad = (n) => String(n).padStart(2, "0");

/** "2d 04:05:06", "04:05:06" or "05:06". */
export function formatCountdown(ms) {
  const p = parts(ms);
  const hms = p.days > 0 || p.hours > 0
    ? `${pad(p.hours)}:${pad(p.minutes)}:${pad(p.seconds)}`
    : `${pad(p.minutes)}:${pad(p.seconds)}`;
  return p.days > 0 ? `${p.days}d ${hms}` : hms;
}
