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
      this._connect();
    }

    /**
     * Subscribes to a stream; handlers.onUpdate(payload, version, key) runs with the
     * snapshot and every newer update, handlers.onGone(key) once the key is deleted,
     * handlers.onError(status, errors) when the server refuses. Returns the subscription.
     */
    subscribe(stream, params, handlers) {
      const sub = { stream: stream, params: params, handlers: handlers || {}, key: null, version: -1, gone: false };
      sub.unsubscribe = () => this._unsubscribe(sub);
      this.subscriptions.add(sub);
      if (this.socket && this.socket.readyState === WebSocket.OPEN) this._sendSubscribe(sub);
      return sub;
    }

    /** Closes the connection for good. */
    close() {
      this.closed = true;
      if (this.socket) this.socket.close();
    }

    _setStatus(status) {
      if (status === this.status) return;
      this.status = status;
      this.onStatus(status);
    }

    _connect() {
      this._setStatus(this.attempt === 0 && this.status === null ? "connecting" : "reconnecting");
      const socket = new WebSocket(this.url);
      this.socket = socket;
      socket.onopen = () => {
        this.attempt = 0;
        this._setStatus("connected");
        this.pending.clear();
        this.subscriptions.forEach((sub) => { if (!sub.gone) this._sendSubscribe(sub); });
      };
      socket.onmessage = (event) => this._receive(event.data);
      socket.onclose = () => {
        if (this.socket !== socket || this.closed) return;
        this._setStatus("reconnecting");
        // Exponential backoff with full jitter, so a restarted server is not stampeded.
        const ceiling = Math.min(this.maxDelay, this.minDelay * Math.pow(2, this.attempt));
        this.attempt += 1;
        setTimeout(() => this._connect(), ceiling / 2 + Math.random() * ceiling / 2);
      };
    }

    _send(message) {
      const id = this.nextRequestId++;
      message.request_id = id;
      this.socket.send(JSON.stringify(message));
      return id;
    }

    _sendSubscribe(sub) {
      // A fresh snapshot follows: it replaces whatever the subscription held.
      sub.version = -1;
      this.pending.set(this._send({ action: "subscribe", stream: sub.stream, params: sub.params }), sub);
    }

    _unsubscribe(sub) {
      this.subscriptions.delete(sub);
      if (this.socket && this.socket.readyState === WebSocket.OPEN && sub.key !== null) {
        this._send({ action: "unsubscribe", stream: sub.stream, params: sub.params });
      }
    }

    _receive(text) {
      let message;
      try { message = JSON.parse(text); } catch (e) { return; }
      if (message.action === "update" || message.action === "gone") {
        this.subscriptions.forEach((sub) => {
          if (sub.stream === message.stream && sub.key === message.key) this._apply(sub, message);
        });
        return;
      }
      const sub = this.pending.get(message.request_id);
      if (!sub) return;
      this.pending.delete(message.request_id);
      if (message.action !== "subscribe") return;
      if (message.response_status === 200) {
        sub.key = message.data.key;
        this._apply(sub, { action: "update", version: message.data.version, payload: message.data.payload, key: sub.key }, true);
      } else if (sub.handlers.onError) {
        sub.handlers.onError(message.response_status, message.errors);
      }
    }

    _apply(sub, message, snapshot) {
      if (!snapshot && message.version <= sub.version) return;
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
