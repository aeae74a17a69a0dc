// Live updates over Server-Sent Events, with a short-lived stream token.
// EventSource reconnects by itself after a dropped connection; when the
// server refuses the reconnect (expired token -> 401) the source ends up
// CLOSED, so we fetch a fresh token and reopen with backoff.
// Two things EventSource does not notice on its own: the device going offline
// (a stalled connection can look open for minutes), and a stream that simply
// goes quiet. Offline closes the stream and online reopens it at once; a
// stream with no event (not even a heartbeat) for `staleMs` is reopened.

export class DropStream {
  constructor({ api, eventsBase, dropId, onEvent, onConnection, EventSourceImpl = globalThis.EventSource,
    target = globalThis, staleMs = 45000 }) {
    this.api = api;
    this.eventsBase = eventsBase.replace(/\/+$/, "");
    this.dropId = dropId;
    this.onEvent = onEvent;
    this.onConnection = onConnection;
    this.ES = EventSourceImpl;
    this.source = null;
    this.failures = 0;
    this.timer = null;
    this.renewTimer = null;
    this.staleTimer = null;
    this.staleMs = staleMs;
    this.target = target;
    this.offline = false;
    this.stopped = false;
    this.onOffline = () => this.goOffline();
    this.onOnline = () => this.goOnline();
  }

  start() {
    if (!this.ES) {
      this.onConnection("offline");
      return;
    }
    if (this.target && this.target.addEventListener) {
      this.target.addEventListener("offline", this.onOffline);
      this.target.addEventListener("online", this.onOnline);
    }
    const nav = this.target && this.target.navigator;
    if (nav && nav.onLine === false) this.goOffline();
    else this.open();
  }

  stop() {
    this.stopped = true;
    this.clearTimers();
    if (this.target && this.target.removeEventListener) {
      this.target.removeEventListener("offline", this.onOffline);
      this.target.removeEventListener("online", this.onOnline);
    }
    if (this.source) this.source.close();
  }

  clearTimers() {
    clearTimeout(this.timer);
    clearTimeout(this.renewTimer);
    clearTimeout(this.staleTimer);
  }

  /** The device lost its network: close the stream instead of trusting a stalled one. */
  goOffline() {
    if (this.stopped) return;
    this.offline = true;
    this.clearTimers();
    if (this.source) this.source.close();
    this.source = null;
    this.onConnection("offline");
  }

  /** Back online: reconnect now rather than after the backoff. */
  goOnline() {
    if (this.stopped || !this.offline) return;
    this.offline = false;
    this.failures = 0;
    this.onConnection("reconnecting");
    this.open();
  }

  /** (Re)arm the watchdog: no event for staleMs means the stream is dead, whatever its readyState says. */
  alive(source) {
    clearTimeout(this.staleTimer);
    if (!(this.staleMs > 0)) return;
    this.staleTimer = setTimeout(() => {
      if (source !== this.source || this.stopped || this.offline) return;
      source.close();
      this.onConnection("reconnecting");
      this.open();
    }, this.staleMs);
  }

  async open() {
    if (this.stopped || this.offline) return;
    this.clearTimers();
    let grant;
    try {
      grant = await this.api.streamToken(this.dropId);
    } catch {
      this.onConnection("reconnecting");
      this.retryLater();
      return;
    }
    if (this.stopped || this.offline) return;
    if (this.source) this.source.close();
    const url = `${this.eventsBase}/${encodeURIComponent(this.dropId)}?token=${encodeURIComponent(grant.token)}`;
    const source = new this.ES(url);
    this.source = source;
    this.alive(source);

    source.onopen = () => {
      this.failures = 0;
      this.alive(source);
      this.onConnection("live");
    };
    source.onerror = () => {
      if (source !== this.source) return;
      this.onConnection("reconnecting");
      // CONNECTING: the browser is retrying on its own. CLOSED: it gave up
      // (e.g. 401 for an expired token), so get a new token ourselves.
      if (source.readyState === 2) {
        source.close();
        this.retryLater();
      }
    };
    for (const type of ["drop", "me", "heartbeat"]) {
      source.addEventListener(type, (ev) => {
        let data = null;
        try {
          data = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (source !== this.source) return;
        this.alive(source);
        this.onConnection("live");
        this.onEvent(type, data);
      });
    }

    // Renew shortly before the token expires so a long session never lapses.
    const expiresAt = Number(grant.expires_at);
    if (Number.isFinite(expiresAt) && expiresAt > 0) {
      const ms = expiresAt - (this.api.clock ? this.api.clock.now() : Date.now()) - 15000;
      if (ms > 5000) this.renewTimer = setTimeout(() => this.open(), Math.min(ms, 2 ** 31 - 1));
    }
  }

  retryLater() {
    if (this.stopped || this.offline) return;
    this.failures += 1;
    const delay = Math.min(30000, 1000 * 2 ** Math.min(this.failures - 1, 5)) + Math.random() * 500;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }
}
