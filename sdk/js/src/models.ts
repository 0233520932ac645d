/** Typed views of hulld's JSON: results, runs, sandboxes, processes, file
 * entries, images, networks, output chunks, watch events. */
import { HullError } from "./errors.js";

export type Json = Record<string, unknown>;

export const VERDICTS = [
  "ok",
  "exit_nonzero",
  "signaled",
  "cpu_time_limit",
  "wall_time_limit",
  "memory_limit",
  "output_limit",
  "pids_limit",
  "internal_error",
  "killed",
  "bad_command",
] as const;

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const num = (v: unknown, d = 0): number => (typeof v === "number" ? v : d);

function stream(d: Json, name: string): [Buffer, string] {
  const b64 = d[`${name}_base64`];
  if (typeof b64 === "string") {
    const raw = Buffer.from(b64, "base64");
    return [raw, raw.toString("utf8")];
  }
  const text = str(d[name]) ?? "";
  return [Buffer.from(text, "utf8"), text];
}

/** Thrown by Result.check() when the verdict is not "ok". */
export class RunFailed extends HullError {
  readonly result: Result;
  constructor(result: Result) {
    let msg = `run ended with verdict ${result.verdict}`;
    if (result.verdict === "exit_nonzero") msg += ` (exit code ${result.exitCode})`;
    if (result.error) msg += `: ${result.error}`;
    super(msg);
    this.result = result;
  }
}

/** How one run, exec or process went. */
export class Result {
  verdict: string;
  exitCode: number;
  signal: number;
  cpuTimeMs: number;
  wallTimeMs: number;
  maxMemoryKb: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
  stderrBytes: Buffer;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  files: Json[];
  isolation?: string;
  error?: string;
  id?: string;
  image?: { name?: string; digest?: string };
  raw: Json;

  constructor(d: Json) {
    [this.stdoutBytes, this.stdout] = stream(d, "stdout");
    [this.stderrBytes, this.stderr] = stream(d, "stderr");
    this.verdict = str(d.verdict) ?? "internal_error";
    this.exitCode = num(d.exit_code);
    this.signal = num(d.signal);
    this.cpuTimeMs = num(d.cpu_time_ms);
    this.wallTimeMs = num(d.wall_time_ms);
    this.maxMemoryKb = num(d.max_memory_kb);
    this.stdoutTruncated = d.stdout_truncated === true;
    this.stderrTruncated = d.stderr_truncated === true;
    this.files = Array.isArray(d.files) ? (d.files as Json[]) : [];
    this.isolation = str(d.isolation);
    this.error = str(d.error);
    this.id = str(d.id);
    this.image = d.image && typeof d.image === "object" ? (d.image as Result["image"]) : undefined;
    this.raw = d;
  }

  get ok(): boolean {
    return this.verdict === "ok";
  }

  /** This result when the verdict is ok; else throws RunFailed. */
  check(): this {
    if (!this.ok) throw new RunFailed(this);
    return this;
  }
}

/** A run as hulld tracks it; `result` once finished. */
export class Run {
  static readonly TERMINAL = ["finished", "cancelled", "interrupted"];
  id: string;
  state: string;
  created?: string;
  finished?: string;
  queue: boolean;
  result?: Result;
  raw: Json;

  constructor(d: Json) {
    this.result = "verdict" in d ? new Result(d) : undefined;
    this.id = String(d.id);
    this.state = str(d.state) ?? (this.result ? "finished" : "queued");
    this.created = str(d.created);
    this.finished = str(d.finished);
    this.queue = d.queue === true;
    this.raw = d;
  }

  get done(): boolean {
    return Run.TERMINAL.includes(this.state);
  }
}

export interface SandboxInfo {
  id: string;
  state: string;
  isolation?: string;
  created?: string;
  lastUsed?: string;
  expires?: string;
  lifetimeS?: number;
  /** "REPOSITORY@DIGEST" it was made from, while it lives. */
  image?: string;
  metadata: Record<string, string>;
  raw: Json;
}

export function sandboxInfo(d: Json): SandboxInfo {
  return {
    id: String(d.id),
    state: str(d.state) ?? "",
    isolation: str(d.isolation),
    created: str(d.created),
    lastUsed: str(d.last_used),
    expires: str(d.expires),
    lifetimeS: typeof d.lifetime_s === "number" ? d.lifetime_s : undefined,
    image: str(d.image),
    metadata: (d.metadata && typeof d.metadata === "object" ? d.metadata : {}) as Record<
      string,
      string
    >,
    raw: d,
  };
}

/** A process of a sandbox (POST …/processes, or an exec's `start` line). */
export interface ProcessInfo {
  id: string;
  sandbox?: string;
  cmd: string[];
  state: string;
  pty: boolean;
  started?: string;
  ended?: string;
  result?: Result;
  /** state === "running". */
  running: boolean;
  raw: Json;
}

export function processInfo(d: Json): ProcessInfo {
  return {
    id: String(d.id),
    sandbox: str(d.sandbox),
    cmd: Array.isArray(d.cmd) ? d.cmd.map(String) : [],
    state: str(d.state) ?? "",
    pty: d.pty === true,
    started: str(d.started),
    ended: str(d.ended),
    result: d.result && typeof d.result === "object" ? new Result(d.result as Json) : undefined,
    running: (str(d.state) ?? "running") === "running",
    raw: d,
  };
}

/** A file, directory or link inside a sandbox. */
export interface FileEntry {
  name: string;
  path: string;
  type: "file" | "dir" | "symlink" | "other";
  size: number;
  /** Octal text, "0644". */
  mode: string;
  /** RFC 3339. */
  mtime: string;
  /** A symlink's target. */
  target?: string;
  /** type === "dir". */
  isDir: boolean;
  raw: Json;
}

export function fileEntry(d: Json): FileEntry {
  const path = str(d.path) ?? "";
  const type = (str(d.type) ?? "file") as FileEntry["type"];
  return {
    name: str(d.name) || path.replace(/\/+$/, "").split("/").pop() || "",
    path,
    type,
    isDir: type === "dir",
    size: num(d.size),
    mode: str(d.mode) ?? "",
    mtime: str(d.mtime) ?? "",
    target: str(d.target),
    raw: d,
  };
}

/** One piece of a process's output, or a `cut` (output lost: `lost` bytes
 * at `offset` were overwritten before this reader got them). */
export interface OutputChunk {
  stream: "stdout" | "stderr" | "cut";
  /** Byte offset of the chunk in the process's combined output. */
  offset: number;
  /** The bytes (empty for a cut). */
  data: Buffer;
  /** The bytes as text (invalid UTF-8 becomes U+FFFD). */
  text: string;
  /** For a cut: how many bytes were lost. */
  lost?: number;
  /** The offset just past this chunk: where a re-attach resumes. */
  end: number;
}

/** A change seen by files.watch(). */
export interface WatchEvent {
  type: "create" | "modify" | "delete" | "rename_from" | "rename_to" | "overflow";
  path: string;
  dir: boolean;
  raw: Json;
}

export interface ImageInfo {
  name?: string;
  digest: string;
  size: number;
  created?: string;
  mediaType?: string;
  manifestDigest?: string;
  platform?: string;
  config: Json;
  layers: Json[];
  inUse?: boolean;
  raw: Json;
}

export function imageInfo(d: Json): ImageInfo {
  return {
    name: str(d.name),
    digest: String(d.digest),
    size: num(d.size),
    created: str(d.created),
    mediaType: str(d.media_type),
    manifestDigest: str(d.manifest_digest),
    platform: str(d.platform),
    config: (d.config as Json) ?? {},
    layers: (d.layers as Json[]) ?? [],
    inUse: typeof d.in_use === "boolean" ? d.in_use : undefined,
    raw: d,
  };
}

export interface NetworkInfo {
  name: string;
  subnet: string;
  gateway: string;
  ipv6Subnet?: string;
  ipv6Gateway?: string;
  internal: boolean;
  allowPeers: boolean;
  members?: number;
  raw: Json;
}

export function networkInfo(d: Json): NetworkInfo {
  return {
    name: String(d.name),
    subnet: str(d.subnet) ?? "",
    gateway: str(d.gateway) ?? "",
    ipv6Subnet: str(d.ipv6_subnet),
    ipv6Gateway: str(d.ipv6_gateway),
    internal: d.internal === true,
    allowPeers: d.allow_peers === true,
    members: typeof d.members === "number" ? d.members : undefined,
    raw: d,
  };
}

/** One sample of a sandbox's usage (Sandbox.metrics()); a field is
 * undefined when hulld could not measure it (no cgroup at process
 * isolation, no network of its own). */
export interface MetricsSample {
  time: string;
  cpuSeconds?: number;
  memoryBytes?: number;
  memoryPeakBytes?: number;
  diskBytes?: number;
  netRxBytes?: number;
  netTxBytes?: number;
  raw: Json;
}

export function metricsSample(d: Json): MetricsSample {
  const num = (k: string) => (typeof d[k] === "number" ? (d[k] as number) : undefined);
  return {
    time: String(d.time ?? ""),
    cpuSeconds: num("cpu_seconds"),
    memoryBytes: num("memory_bytes"),
    memoryPeakBytes: num("memory_peak_bytes"),
    diskBytes: num("disk_bytes"),
    netRxBytes: num("net_rx_bytes"),
    netTxBytes: num("net_tx_bytes"),
    raw: d,
  };
}
