/**
 * Types of streaming/'s browser client: client.mjs exports them; a plain <script> of
 * client.js sets `window.StreamClient`. The protocol it speaks: docs/protocol.md.
 */

/** The connection's state, as reported to `onStatus`. */
export type Status = "connecting" | "connected" | "reconnecting";

/**
 * Why the client is reconnecting: the socket closed; it went silent for 2.5 heartbeat
 * intervals; the handshake or a subscribe reply did not come within `replyTimeout`; or the
 * page went into the back/forward cache.
 */
export type StatusReason = "closed" | "stale" | "timeout" | "suspended";

/** How the client talks to the server: a WebSocket, or Server-Sent Events (docs/protocol.md). */
export type Transport = "websocket" | "sse";

export interface StreamClientOptions {
  /**
   * Called on each change of status; `reason` is given with "reconnecting"; `transport` is
   * the one in use.
   */
  onStatus?: (status: Status, reason: StatusReason | undefined, transport: Transport) => void;
  /** The reconnect backoff's first ceiling in ms (500). */
  minDelay?: number;
  /** The reconnect backoff's largest ceiling in ms (15000). */
  maxDelay?: number;
  /** How long the handshake and each subscribe reply may take, in ms (10000). */
  replyTimeout?: number;
  /**
   * "auto" (default): WebSocket, falling back to SSE for good when the WebSocket constructor
   * throws or `fallbackAfter` connects in a row fail before any WebSocket ever opened.
   */
  transport?: "auto" | Transport;
  /** The Server-Sent Events URL ("/sse/stream/" on this page's host). */
  sseUrl?: string;
  /** WebSocket connects failing in a row, none ever open, before "auto" uses SSE (3). */
  fallbackAfter?: number;
}

export interface SubscriptionHandlers<Payload = unknown> {
  /** The snapshot, then every newer update (versions only grow). */
  onUpdate?: (payload: Payload, version: number, key: string) => void;
  /** The key's object was deleted; nothing more comes. */
  onGone?: (key: string) => void;
  /** The server withdrew the key (logout, lost permission); nothing more comes. */
  onRevoked?: (key: string) => void;
  /** The server refused the subscribe (400, 403, 404, 429…). */
  onError?: (status: number, errors: unknown[]) => void;
}

export interface Subscription<Payload = unknown> {
  readonly stream: string;
  readonly params: Record<string, unknown>;
  readonly handlers: SubscriptionHandlers<Payload>;
  /** The server's key, once the first snapshot came. */
  readonly key: string | null;
  /** The version of the last state applied; -1 before the first. */
  readonly version: number;
  /** Whether the key is gone or revoked (then it is never resubscribed). */
  readonly gone: boolean;
  /** Stops the subscription. */
  unsubscribe(): void;
}

export declare class StreamClient {
  /** Connects to `url` (default: /ws/stream/ on this page's host) at once. */
  constructor(url?: string | null, options?: StreamClientOptions);
  readonly url: string;
  readonly sseUrl: string;
  /** The transport in use: "sse" once "auto" fell back. */
  readonly transport: Transport;
  readonly status: Status | null;
  readonly reason: StatusReason | null;
  /** The server's heartbeat interval in ms, once the current connection announced it. */
  readonly keepalive: number | null;
  /** Subscribes to a stream's key; resubscribed after every reconnect. */
  subscribe<Payload = unknown>(
    stream: string,
    params: Record<string, unknown>,
    handlers?: SubscriptionHandlers<Payload>,
  ): Subscription<Payload>;
  /** Checks the connection now: reconnects if down or stale (tabs call it on waking). */
  check(): void;
  /** Closes the connection for good. */
  close(): void;
}

export default StreamClient;

declare global {
  interface Window {
    StreamClient: typeof StreamClient;
  }
}
