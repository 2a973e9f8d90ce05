/*
 * StreamClient: a small browser client for streaming/'s WebSocket protocol (docs/protocol.md).
 * Connects, subscribes, reconnects with exponential backoff and jitter, resubscribes, and
 * applies an update only when its version is newer than the last one applied. No build step.
 */
(function (global) {
  "use strict";

  class StreamClient {
    /**
     * url: the WebSocket URL (default: /ws/stream/ on this host).
     * options.onStatus(status): "connecting", "connected" or "reconnecting".
     * options.minDelay, options.maxDelay: the reconnect backoff's bounds in ms.
     */
    constructor(url, options) {
      options = options || {};
      const scheme = global.location.protocol === "https:" ? "wss://" : "ws://";
      this.url = url || scheme + global.location.host + "/ws/stream/";
      this.onStatus = options.onStatus || function () {};
      this.minDelay = options.minDelay || 500;
      this.maxDelay = options.maxDelay || 15000;
      this.subscriptions = new Set();
      this.pending = new Map();
      this.nextRequestId = 1;
      this.attempt = 0;
      this.socket = null;
      this.status = null;
      this.closed = false;
      this._retryTimer = null;
      this._healthyTimer = null;
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

    /** Closes the connection for good. */
    close() {
      this.closed = true;
      clearTimeout(this._retryTimer);
      clearTimeout(this._healthyTimer);
      if (this.socket) this.socket.close();
    }

    _isOpen() {
      return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
    }

    _setStatus(status) {
      if (status === this.status) return;
      this.status = status;
      this.onStatus(status);
    }

    _connect() {
      this._retryTimer = null;
      this._setStatus(this.status === null ? "connecting" : "reconnecting");
      let socket;
      try {
        socket = new WebSocket(this.url);
      } catch (e) {
        this._scheduleReconnect();
        return;
      }
      this.socket = socket;
      socket.onopen = () => {
        if (this.socket !== socket) return;
        // The backoff restarts only once a connection has held for a while: a server that
        // accepts and drops at once must not be hammered at the shortest delay.
        this._healthyTimer = setTimeout(() => { this.attempt = 0; }, 4 * this.minDelay);
        this._setStatus("connected");
        this.pending.clear();
        this.subscriptions.forEach((sub) => { if (!sub.gone) this._sendSubscribe(sub); });
      };
      socket.onmessage = (event) => { if (this.socket === socket) this._receive(event.data); };
      socket.onclose = () => {
        if (this.socket !== socket || this.closed) return;
        clearTimeout(this._healthyTimer);
        this.pending.clear();
        this._setStatus("reconnecting");
        this._scheduleReconnect();
      };
    }

    _scheduleReconnect() {
      if (this.closed || this._retryTimer !== null) return;
      // Exponential backoff, each delay drawn from the upper half of its ceiling (equal
      // jitter): clients dropped together by a restart do not come back together.
      const ceiling = Math.min(this.maxDelay, this.minDelay * Math.pow(2, this.attempt));
      this.attempt += 1;
      this._retryTimer = setTimeout(() => this._connect(), ceiling / 2 + Math.random() * ceiling / 2);
    }

    _send(message) {
      const id = this.nextRequestId++;
      message.request_id = id;
      this.socket.send(JSON.stringify(message));
      return id;
    }

    _sendSubscribe(sub) {
      this.pending.set(this._send({ action: "subscribe", stream: sub.stream, params: sub.params }), sub);
    }

    _unsubscribe(sub) {
      this.subscriptions.delete(sub);
      this.pending.forEach((pendingSub, id) => { if (pendingSub === sub) this.pending.delete(id); });
      if (this._isOpen() && sub.key !== null && !sub.gone) {
        this._send({ action: "unsubscribe", stream: sub.stream, params: sub.params });
      }
    }

    _receive(text) {
      let message;
      try { message = JSON.parse(text); } catch (e) { return; }
      if (message === null || typeof message !== "object") return;
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
      const sub = this.pending.get(message.request_id);
      if (!sub) return;
      this.pending.delete(message.request_id);
      if (message.action !== "subscribe" || !this.subscriptions.has(sub)) return;
      if (message.response_status === 200) {
        // A subscribe reply replaces the state unconditionally (docs/protocol.md): after a
        // Redis restart its version may be below the one held, and it is still the newest.
        sub.key = message.data.key;
        sub.version = -1;
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
})(window);
