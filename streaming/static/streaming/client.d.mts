/** Types of client.mjs: those of client.d.ts. */
import { StreamClient } from "./client.js";

export * from "./client.js";
export default StreamClient;
