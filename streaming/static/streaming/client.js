/*
 * StreamClient: a small browser client for streaming/'s WebSocket protocol (docs/protocol.md).
 * Connects, subscribes, reconnects with exponential backoff and jitter, resubscribes, and
 * applies an update only when its version is newer than the last one applied. It notices a
 * dead connection by the server's heartbeats and a reply that never comes, and checks its
 * connection when a sleeping or cached tab comes back. Where WebSockets fail (a proxy that
 * refuses them) it falls back to the Server-Sent Events endpoint, same frames one-way. No
 * build step: a plain <script> sets window.StreamClient; client.mjs is the ES module form
 * (types: client.d.ts).
 */
(function (global) {
  "use strict";

  // A connection that brought no frame for this many heartbeat intervals is stale: two
  // heartbeats missed, plus half an interval for timers and a busy server.
  const STALE_INTERVALS = 2.5;
  // readyState of an open WebSocket (and of the SSE stand-in); WebSocket may be undefined.
  const OPEN = 1;
  // The SSE events the server sends: the WebSocket's frames, named after their action.
  const SSE_EVENTS = ["subscribe", "update", "gone", "revoked", "heartbeat"];

  /**
   * A WebSocket stand-in over EventSource (docs/protocol.md, "Server-Sent Events"): what the
   * client "sends" (subscribe, unsubscribe) sets the subscriptions of one GET, reopened with
   * all of them when they change; the server's frames come back as on a socket. It opens
   * at once without subscriptions, so "open" means the server answered.
   */
  class EventSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.subscriptions = new Map();
      this.source = null;
      this._queued = false;
      this._open();
    }

    send(text) {
      const message = JSON.parse(text);
      const id = JSON.stringify([message.stream, message.params]);
      if (message.action === "subscribe") {
        this.subscriptions.set(id, { stream: message.stream, params: message.params, request_id: message.request_id });
      } else if (message.action === "unsubscribe") {
        this.subscriptions.delete(id);
      } else {
        return;
      }
      // Subscribes sent together (on open, a page's charts) make one request.
      if (this._queued) return;
      this._queued = true;
      Promise.resolve().then(() => {
        this._queued = false;
        if (this.readyState === OPEN) this._open();
      });
    }

    close() {
      this.readyState = 3;
      if (this.source) this.source.close();
      this.source = null;
    }

    _open() {
      const query = [];
      this.subscriptions.forEach((sub) => query.push("subscribe=" + encodeURIComponent(JSON.stringify(sub))));
      const joiner = this.url.indexOf("?") < 0 ? "?" : "&";
      const source = new EventSource(this.url + (query.length ? joiner + query.join("&") : ""));
      // The new request re-sends every snapshot: nothing of the old one is needed.
      if (this.source) this.source.close();
      this.source = source;
      const deliver = (event) => { if (this.source === source && this.onmessage) this.onmessage({ data: event.data }); };
      SSE_EVENTS.forEach((name) => source.addEventListener(name, deliver));
      source.onopen = () => {
        if (this.source !== source || this.readyState !== 0) return;
        this.readyState = OPEN;
        if (this.onopen) this.onopen({});
      };
      // EventSource would reconnect by itself; the client's own backoff and resubscribe do.
      source.onerror = () => {
        if (this.source !== source) return;
        this.close();
        if (this.onclose) this.onclose({});
      };
    }
  }

  class StreamClient {
    /**
     * url: the WebSocket URL (default: /ws/stream/ on this host).
     * options.onStatus(status, reason, transport): status is "connecting", "connected" or
     *   "reconnecting"; reason says why it is reconnecting: "closed", "stale", "timeout" or
     *   "suspended"; transport is "websocket" or "sse".
     * options.minDelay, options.maxDelay: the reconnect backoff's bounds in ms.
     * options.replyTimeout: ms to wait for the handshake or a subscribe reply (10 s).
     * options.transport: "auto" (WebSocket, falling back to SSE), "websocket" or "sse".
     * options.sseUrl: the Server-Sent Events URL (default: /sse/stream/ on this host).
     * options.fallbackAfter: WebSocket connects failing in a row, none ever open, before
     *   "auto" switches to SSE for good (3).
     */
    constructor(url, options) {
      options = options || {};
      const scheme = global.location.protocol === "https:" ? "wss://" : "ws://";
      this.url = url || scheme + global.location.host + "/ws/stream/";
      this.onStatus = options.onStatus || function () {};
      this.minDelay = options.minDelay || 500;
      this.maxDelay = options.maxDelay || 15000;
      this.replyTimeout = options.replyTimeout || 10000;
      this.sseUrl = options.sseUrl || "/sse/stream/";
      this.fallbackAfter = options.fallbackAfter || 3;
      const mode = options.transport || "auto";
      const hasSse = typeof global.EventSource === "function";
      this._mayFallBack = mode === "auto" && hasSse;
      this.transport = mode === "sse" || (this._mayFallBack && typeof global.WebSocket !== "function") ? "sse" : "websocket";
      // WebSocket connects that failed before opening, while none has ever opened.
      this._failedOpens = 0;
      this._opened = false;
      this._socketOpened = false;
      this.subscriptions = new Set();
      // request_id -> {sub, timer}: subscribes sent on the current socket, not answered yet.
      this.pending = new Map();
      // request_id -> sub: answered ones. An SSE request re-sends their replies when it is
      // reopened with a changed set of subscriptions: fresh snapshots.
      this.answered = new Map();
      this.nextRequestId = 1;
      this.attempt = 0;
      this.socket = null;
      this.status = null;
      this.reason = null;
      this.closed = false;
      // The server's heartbeat interval in ms, once the current connection announced it.
      this.keepalive = null;
      this.lastFrameAt = 0;
      this._suspended = false;
      this._retryTimer = null;
      this._healthyTimer = null;
      this._openTimer = null;
      this._staleTimer = null;
      this._listen();
      this._connect();
    }

    /**
     * Subscribes to a stream; handlers.onUpdate(payload, version, key) runs with the
     * snapshot and every newer update, handlers.onGone(key) once the key no longer exists,
     * handlers.onRevoked(key) when the server withdraws it (logout, lost permission),
     * handlers.onError(status, errors) when the server refuses. Returns the subscription.
     */
    subscribe(stream, params, handlers) {
      const sub = { stream: stream, params: params, handlers: handlers || {}, key: null, version: -1, gone: false };
      sub.unsubscribe = () => this._unsubscribe(sub);
      this.subscriptions.add(sub);
      if (this._isOpen()) this._sendSubscribe(sub);
      return sub;
    }

    /**
     * Checks the connection now (the page calls it when a tab wakes up): reconnects at once
     * if it is down or stale, and takes fresh snapshots when staleness cannot be told.
     */
    check() {
      if (this.closed) return;
      if (this._suspended) {
        this._suspended = false;
        this.attempt = 0;
        this._connect();
      } else if (this.socket === null) {
        // Timers of a hidden tab are throttled: don't wait for the backoff to fire.
        clearTimeout(this._retryTimer);
        this._connect();
      } else if (!this._isOpen()) {
        // Still opening: the handshake timeout covers it.
      } else if (this._isStale()) {
        this._fail("stale");
      } else if (this.keepalive === null) {
        // A server without heartbeats: fresh snapshots are the only way to be sure.
        this.subscriptions.forEach((sub) => { if (!sub.gone) this._sendSubscribe(sub); });
      }
    }

    /** Closes the connection for good. */
    close() {
      this.closed = true;
      this._unlisten();
      this._clearTimers();
      clearTimeout(this._retryTimer);
      if (this.socket) this.socket.close();
    }

    _isOpen() {
      return this.socket !== null && this.socket.readyState === OPEN;
    }

    _isStale() {
      return this.keepalive !== null && Date.now() - this.lastFrameAt >= STALE_INTERVALS * this.keepalive;
    }

    _setStatus(status, reason) {
      if (status === this.status) return;
      this.status = status;
      this.reason = reason || null;
      this.onStatus(status, reason, this.transport);
    }

    _listen() {
      const doc = global.document;
      if (!doc || !global.addEventListener) return;
      this._onVisible = () => { if (doc.visibilityState === "visible") this.check(); };
      // A page put in the back/forward cache must not keep its socket (browsers refuse to
      // cache it, or the server keeps writing to a frozen page): close it, reopen on return.
      this._onPageHide = () => this._suspend();
      this._onPageShow = (event) => { if (event.persisted) this.check(); };
      doc.addEventListener("visibilitychange", this._onVisible);
      global.addEventListener("pagehide", this._onPageHide);
      global.addEventListener("pageshow", this._onPageShow);
    }

    _unlisten() {
      if (!this._onVisible) return;
      global.document.removeEventListener("visibilitychange", this._onVisible);
      global.removeEventListener("pagehide", this._onPageHide);
      global.removeEventListener("pageshow", this._onPageShow);
    }

    _connect() {
      this._retryTimer = null;
      const first = this.status === null || this.status === "connecting";
      this._setStatus(first ? "connecting" : "reconnecting", this.reason);
      this.keepalive = null;
      let socket;
      try {
        socket = this.transport === "sse" ? new EventSocket(this.sseUrl) : new WebSocket(this.url);
      } catch (e) {
        this.socket = null;
        // A browser or policy without WebSockets throws here: SSE at once.
        if (this._fallBack()) {
          this._connect();
          return;
        }
        this._scheduleReconnect();
        return;
      }
      this.socket = socket;
      this._socketOpened = false;
      // A server that accepts TCP but never completes the handshake (frozen, overloaded).
      this._openTimer = setTimeout(() => { if (this.socket === socket) this._fail("timeout"); }, this.replyTimeout);
      socket.onopen = () => {
        if (this.socket !== socket) return;
        clearTimeout(this._openTimer);
        this._socketOpened = true;
        if (this.transport === "websocket") this._opened = true;
        this.lastFrameAt = Date.now();
        // The backoff restarts only once a connection has held for a while: a server that
        // accepts and drops at once must not be hammered at the shortest delay.
        this._healthyTimer = setTimeout(() => { this.attempt = 0; }, 4 * this.minDelay);
        this._setStatus("connected");
        this.subscriptions.forEach((sub) => { if (!sub.gone) this._sendSubscribe(sub); });
      };
      socket.onmessage = (event) => { if (this.socket === socket) this._receive(event.data); };
      socket.onclose = () => {
        if (this.socket !== socket || this.closed) return;
        this._lose("closed");
      };
    }

    /** Gives up on the current socket without waiting for its close (it may never come). */
    _fail(reason) {
      const socket = this.socket;
      this._lose(reason);
      if (socket) {
        try { socket.close(); } catch (e) { /* already closing */ }
      }
    }

    _lose(reason) {
      const unopened = this.socket !== null && !this._socketOpened;
      this.socket = null;
      this._clearTimers();
      if (unopened && !this._opened && this.transport === "websocket") {
        this._failedOpens += 1;
        if (this._failedOpens >= this.fallbackAfter) this._fallBack();
      }
      this._setStatus("reconnecting", reason);
      this._scheduleReconnect();
    }

    /** Switches "auto" from WebSocket to SSE; returns whether it did. */
    _fallBack() {
      if (!this._mayFallBack || this.transport === "sse" || this._opened) return false;
      this.transport = "sse";
      this.attempt = 0;
      return true;
    }

    _suspend() {
      if (this.closed || this._suspended) return;
      const socket = this.socket;
      this._suspended = true;
      this.socket = null;
      this._clearTimers();
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
      this._setStatus("reconnecting", "suspended");
      if (socket) socket.close();
    }

    _clearTimers() {
      clearTimeout(this._healthyTimer);
      clearTimeout(this._openTimer);
      clearTimeout(this._staleTimer);
      this._staleTimer = null;
      this.pending.forEach((entry) => clearTimeout(entry.timer));
      this.pending.clear();
      this.answered.clear();
    }

    _scheduleReconnect() {
      if (this.closed || this._suspended || this._retryTimer !== null) return;
      // Exponential backoff, each delay drawn from the upper half of its ceiling (equal
      // jitter): clients dropped together by a restart do not come back together.
      const ceiling = Math.min(this.maxDelay, this.minDelay * Math.pow(2, this.attempt));
      this.attempt += 1;
      this._retryTimer = setTimeout(() => this._connect(), ceiling / 2 + Math.random() * ceiling / 2);
    }

    _watch(delay) {
      clearTimeout(this._staleTimer);
      this._staleTimer = setTimeout(() => {
        this._staleTimer = null;
        if (!this._isOpen() || this.keepalive === null) return;
        const bound = STALE_INTERVALS * this.keepalive;
        const silent = Date.now() - this.lastFrameAt;
        if (silent >= bound) this._fail("stale");
        else this._watch(bound - silent);
      }, delay);
    }

    _send(message) {
      const id = this.nextRequestId++;
      message.request_id = id;
      this.socket.send(JSON.stringify(message));
      return id;
    }

    _sendSubscribe(sub) {
      const id = this._send({ action: "subscribe", stream: sub.stream, params: sub.params });
      // A reply that never comes counts as a failure of the connection: reconnecting
      // resubscribes every key.
      const timer = setTimeout(() => { if (this.pending.has(id)) this._fail("timeout"); }, this.replyTimeout);
      this.pending.set(id, { sub: sub, timer: timer });
    }

    _unsubscribe(sub) {
      this.subscriptions.delete(sub);
      this.pending.forEach((entry, id) => {
        if (entry.sub === sub) {
          clearTimeout(entry.timer);
          this.pending.delete(id);
        }
      });
      this.answered.forEach((answered, id) => { if (answered === sub) this.answered.delete(id); });
      // Over SSE an unsubscribe only drops it from the next request: always sent.
      if (this._isOpen() && ((sub.key !== null && !sub.gone) || this.transport === "sse")) {
        this._send({ action: "unsubscribe", stream: sub.stream, params: sub.params });
      }
    }

    _receive(text) {
      this.lastFrameAt = Date.now();
      let message;
      try { message = JSON.parse(text); } catch (e) { return; }
      if (message === null || typeof message !== "object") return;
      if (message.action === "heartbeat") {
        const interval = Number(message.interval) * 1000;
        if (interval > 0 && (interval !== this.keepalive || this._staleTimer === null)) {
          this.keepalive = interval;
          this._watch(STALE_INTERVALS * interval);
        }
        return;
      }
      if (message.action === "update" || message.action === "gone") {
        this.subscriptions.forEach((sub) => {
          if (sub.stream === message.stream && sub.key === message.key) this._apply(sub, message);
        });
        return;
      }
      if (message.action === "revoked") {
        // The server stopped this key for this user (logout, lost permission): don't resubscribe.
        this.subscriptions.forEach((sub) => {
          if (sub.stream === message.stream && sub.key === message.key && !sub.gone) {
            sub.gone = true;
            if (sub.handlers.onRevoked) sub.handlers.onRevoked(message.key);
          }
        });
        return;
      }
      // Anything else is a reply to a request, or an action this client does not know.
      const entry = this.pending.get(message.request_id);
      let sub;
      if (entry) {
        sub = entry.sub;
        clearTimeout(entry.timer);
        this.pending.delete(message.request_id);
      } else {
        // A reply sent again (SSE): a fresh snapshot, or its key gone meanwhile.
        sub = this.answered.get(message.request_id);
        if (!sub || (message.response_status !== 200 && sub.key === null)) return;
      }
      if (message.action !== "subscribe" || !this.subscriptions.has(sub)) return;
      this.answered.set(message.request_id, sub);
      if (message.response_status === 200) {
        // A subscribe reply replaces the state unconditionally (docs/protocol.md). One sent
        // again (SSE) was read after everything this request brought: newer only.
        sub.key = message.data.key;
        if (entry) sub.version = -1;
        this._apply(sub, { action: "update", version: message.data.version, payload: message.data.payload, key: sub.key });
      } else if (message.response_status === 404 && sub.key !== null) {
        // The key existed when subscribed: it was deleted while the connection was down.
        this._apply(sub, { action: "gone", version: sub.version + 1, key: sub.key });
      } else if (sub.handlers.onError) {
        sub.handlers.onError(message.response_status, message.errors);
      }
    }

    _apply(sub, message) {
      if (sub.gone || message.version <= sub.version) return;
      sub.version = message.version;
      if (message.action === "gone") {
        sub.gone = true;
        if (sub.handlers.onGone) sub.handlers.onGone(message.key);
      } else if (sub.handlers.onUpdate) {
        sub.handlers.onUpdate(message.payload, message.version, message.key);
      }
    }
  }

  global.StreamClient = StreamClient;
})(typeof window !== "undefined" ? window : globalThis);
