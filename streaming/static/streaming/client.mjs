/*
 * The ES module form of client.js: `import { StreamClient } from "/static/streaming/client.mjs"`.
 * It runs client.js (one copy of the code, no build step) and exports the class it defines;
 * window.StreamClient is set too. Types: client.d.ts (client.d.mts for this file).
 */
import "./client.js";

export const StreamClient = globalThis.StreamClient;
export default StreamClient;
