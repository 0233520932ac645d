/**
 * Node.js client for hulld, hull's sandbox service (no runtime dependencies).
 *
 *     import { Client } from "hull-sdk";
 *     const client = new Client({ token: process.env.HULL_TOKEN });
 *     const r = await client.run(["python3", "-c", "print(6*7)"]);
 *     console.log(r.verdict, r.stdout);
 */
export { Client, Images } from "./client.js";
export type { RunOptions, RunStreamOptions, SandboxOptions } from "./client.js";
export * from "./errors.js";
export { Files, Watcher, sandboxPath } from "./files.js";
export type { FileData } from "./files.js";
export {
  Result,
  Run,
  RunFailed,
  VERDICTS,
} from "./models.js";
export type {
  FileEntry,
  ImageInfo,
  Json,
  MetricsSample,
  NetworkInfo,
  OutputChunk,
  ProcessInfo,
  SandboxInfo,
  WatchEvent,
} from "./models.js";
export { ndjson, outputChunk } from "./ndjson.js";
export { Process } from "./process.js";
export { templateInfo } from "./templates.js";
export type { TemplateInfo, TemplateOptions } from "./templates.js";
export type { OutputOptions } from "./process.js";
export { Sandbox } from "./sandbox.js";
export type { ExecOptions, OutputCallback, StartOptions } from "./sandbox.js";
export { DEFAULT_SOCKET, Transport } from "./transport.js";
export type { BodyData, CallOptions, ConnectOptions } from "./transport.js";
export type { Duration, Limits, NetworkArg, Size } from "./util.js";
export const VERSION = "0.1.0";
