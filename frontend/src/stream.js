// Live updates over Server-Sent Events, with a short-lived stream token.
// EventSource reconnects by itself after a dropped connection; when the
// server refuses the reconnect (expired token -> 401) the source ends up
// CLOSED, so we fetch a fresh token and reopen with backoff.

export class DropStream {
  constructor({ api, eventsBase, dropId, onEvent, onConnection, EventSourceImpl = globalThis.EventSource }) {
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
    this.stopped = false;
  }

  start() {
    if (!this.ES) {
      this.onConnection("offline");
      return;
    }
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.renewTimer);
    if (this.source) this.source.close();
  }

  async open() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    clearTimeout(this.renewTimer);
    let grant;
    try {
      grant = await this.api.streamToken(this.dropId);
    } catch {
      this.onConnection("reconnecting");
      this.retryLater();
      return;
    }
    if (this.stopped) return;
    if (this.source) this.source.close();
    const url = `${this.eventsBase}/${encodeURIComponent(this.dropId)}?token=${encodeURIComponent(grant.token)}`;
    const source = new this.ES(url);
    this.source = source;

    source.onopen = () => {
      this.failures = 0;
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
    if (this.stopped) return;
    this.failures += 1;
    const delay = Math.min(30000, 1000 * 2 ** Math.min(this.failures - 1, 5)) + Math.random() * 500;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }
}
