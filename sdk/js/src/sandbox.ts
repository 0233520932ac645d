/** A long-lived sandbox: exec (streamed or not), background processes,
 * files, pause/resume, timeout, delete. */
import { NotFound } from "./errors.js";
import { Files } from "./files.js";
import {
  type Json,
  type MetricsSample,
  metricsSample,
  type ProcessInfo,
  processInfo,
  Result,
  type SandboxInfo,
  sandboxInfo,
} from "./models.js";
import { Process } from "./process.js";
import { createTemplate, type TemplateInfo, type TemplateOptions } from "./templates.js";
import { type Transport } from "./transport.js";
import { cmdArg, type Duration, type Limits, limitsArg, seg, strMap, textArg } from "./util.js";

import { type OutputCallback, readStreamed } from "./streamed.js";

export type { OutputCallback };

export interface ExecOptions {
  stdin?: string | Uint8Array;
  env?: Record<string, string>;
  workdir?: string;
  /** The command's own: cpu_time, wall_time, output. */
  limits?: Limits;
  /** Stream: called as stdout arrives. */
  onStdout?: OutputCallback;
  /** Stream: called as stderr arrives. */
  onStderr?: OutputCallback;
  /** Stream: output was lost (`lost` bytes at `offset`). */
  onCut?: (offset: number, lost: number) => void | Promise<void>;
  /** Stream: the process started (its id, to re-attach with sb.process(id)). */
  onStart?: (process: ProcessInfo) => void | Promise<void>;
  /** Stream even without callbacks (the process id comes to onStart). */
  stream?: boolean;
  /** The command's wall-clock limit (seconds, or "30s") unless
   * limits.wall_time is given; the client waits that plus a minute. */
  timeout?: Duration;
}

export interface StartOptions {
  /** true keeps stdin open for sendStdin(); text or bytes are sent and
   * stdin closed; default false: empty stdin. */
  stdin?: boolean | string | Uint8Array;
  /** A terminal: {rows, cols}, [rows, cols], or true for 24x80. */
  pty?: { rows: number; cols: number } | [number, number] | boolean;
  env?: Record<string, string>;
  workdir?: string;
  limits?: Limits;
}

export class Sandbox {
  info: SandboxInfo;
  readonly files: Files;
  private deleted = false;
  private readonly created: Json;

  constructor(
    private readonly t: Transport,
    info: SandboxInfo,
  ) {
    this.info = info;
    this.files = new Files(t, info.id);
    this.created = info.raw; // the create's answer: the access token is shown there only
  }

  get id(): string {
    return this.info.id;
  }

  /** As last seen: running, paused or destroyed (refresh() asks again). */
  get state(): string {
    return this.info.state;
  }

  get metadata(): Record<string, string> {
    return this.info.metadata;
  }

  private path(action = ""): string {
    return `/v1/sandboxes/${seg(this.id)}${action ? "/" + action : ""}`;
  }

  /** Run cmd in the sandbox and return its Result. With onStdout/onStderr
   * (or stream: true) output comes as it is produced (NDJSON); the command
   * is a process of the sandbox and keeps running if this call is cut. */
  async exec(cmd: string | readonly string[], opts: ExecOptions = {}): Promise<Result> {
    const body: Json = { cmd: cmdArg(cmd) };
    if (opts.stdin !== undefined) body.stdin = textArg(opts.stdin, "stdin");
    if (opts.env) body.env = strMap(opts.env);
    if (opts.workdir !== undefined) body.workdir = opts.workdir;
    const limits: Limits = { ...(opts.limits ?? {}) };
    if (opts.timeout !== undefined && limits.wall_time === undefined) limits.wall_time = opts.timeout;
    if (Object.keys(limits).length) body.limits = limitsArg(limits);
    // The client waits for the command's own limit and a minute more.
    const wait = typeof opts.timeout === "number" ? opts.timeout + 60 : opts.timeout === undefined ? undefined : null;
    const streaming = !!(opts.onStdout || opts.onStderr || opts.onStart || opts.onCut || opts.stream);
    if (!streaming) {
      return new Result(await this.t.call("POST", this.path("exec"), { json: body, timeout: wait }));
    }
    const res = await this.t.open("POST", this.path("exec"), {
      json: body,
      accept: "application/x-ndjson, application/json",
      timeout: wait ?? null,
    });
    const onStart = opts.onStart;
    return readStreamed(
      res,
      { ...opts, onStartLine: onStart ? (line) => onStart(processInfo((line.process ?? {}) as Json)) : undefined },
      `exec in ${this.id}`,
    );
  }

  /** Start cmd in the background; resolves at once with its Process. */
  async start(cmd: string | readonly string[], opts: StartOptions = {}): Promise<Process> {
    const body: Json = { cmd: cmdArg(cmd) };
    body.stdin = opts.stdin !== undefined && opts.stdin !== false;
    if (opts.pty) {
      const p = opts.pty;
      body.pty = p === true ? { rows: 24, cols: 80 } : Array.isArray(p) ? { rows: p[0], cols: p[1] } : p;
    }
    if (opts.env) body.env = strMap(opts.env);
    if (opts.workdir !== undefined) body.workdir = opts.workdir;
    if (opts.limits) body.limits = limitsArg(opts.limits);
    const d = await this.t.call("POST", this.path("processes"), { json: body });
    const p = new Process(this.t, this.id, processInfo(d));
    if (typeof opts.stdin === "string" || opts.stdin instanceof Uint8Array) {
      if (opts.stdin.length) await p.sendStdin(opts.stdin);
      await p.closeStdin();
    }
    return p;
  }

  /** Re-attach to a process by id. */
  async process(id: string): Promise<Process> {
    const d = await this.t.call("GET", `${this.path("processes")}/${seg(id)}`);
    return new Process(this.t, this.id, processInfo(d));
  }

  /** Running processes, and exited ones hulld still keeps. */
  async processes(): Promise<Process[]> {
    const d = await this.t.call("GET", this.path("processes"));
    const list = Array.isArray(d.processes) ? (d.processes as Json[]) : [];
    return list.map((p) => new Process(this.t, this.id, processInfo(p)));
  }

  async refresh(): Promise<SandboxInfo> {
    this.info = sandboxInfo(await this.t.call("GET", this.path()));
    return this.info;
  }

  /** Keep this sandbox as template `name` (client.createTemplate); it goes on. */
  async snapshotTemplate(name: string, opts: TemplateOptions = {}): Promise<TemplateInfo> {
    return createTemplate(this.t, this.id, name, opts);
  }

  async pause(): Promise<SandboxInfo> {
    this.info = sandboxInfo(await this.t.call("POST", this.path("pause")));
    return this.info;
  }

  async resume(): Promise<SandboxInfo> {
    this.info = sandboxInfo(await this.t.call("POST", this.path("resume")));
    // A microVM sandbox paused by an earlier hulld gets a new token.
    const tok = this.info.raw.access_token;
    if (typeof tok === "string") this.created.access_token = tok;
    return this.info;
  }

  /** The sandbox's usage over time, oldest first (hulld samples it every
   * --metrics-interval and keeps the last 720); `since` (a Date or RFC 3339
   * text): only the samples taken after it. */
  async metrics(opts: { since?: Date | string } = {}): Promise<MetricsSample[]> {
    const since = opts.since instanceof Date ? opts.since.toISOString() : opts.since;
    const d = await this.t.call("GET", this.path("metrics"), { query: { since } });
    return (((d as Json).samples ?? []) as Json[]).map(metricsSample);
  }

  /** A new idle lifetime ("30m", or seconds; at most 24h). */
  async setTimeout(lifetime: Duration): Promise<SandboxInfo> {
    this.info = sandboxInfo(await this.t.call("POST", this.path("timeout"), { json: { lifetime } }));
    return this.info;
  }

  /** The token a port's URL wants (header X-Hull-Access-Token or ?token=).
   * hulld shows it only when the sandbox is made: undefined for a Sandbox
   * from client.attach(). */
  get accessToken(): string | undefined {
    const v = this.created.access_token;
    return typeof v === "string" ? v : undefined;
  }

  /** The URL on hulld's host (http://127.0.0.1:P/) that reaches `port` of
   * the sandbox, exposing it now if it is not yet; withToken puts the
   * access token in its query (for a browser's first request). */
  async portUrl(port: number, opts: { withToken?: boolean } = {}): Promise<string> {
    const d = (await this.t.call("POST", this.path("ports"), { json: { port: Number(port) } })) as Json;
    let url = String(d.url);
    if (opts.withToken) {
      const tok = this.accessToken;
      if (!tok) throw new Error("no access token: only the Sandbox made by client.sandbox() has it");
      url += `?token=${tok}`;
    }
    return url;
  }

  /** The exposed ports and their URLs. */
  async ports(): Promise<Map<number, string>> {
    const d = (await this.t.call("GET", this.path("ports"))) as Json;
    const list = Array.isArray(d.ports) ? (d.ports as Json[]) : [];
    return new Map(list.map((p) => [Number(p.port), String(p.url)]));
  }

  /** Stop exposing `port`: its URL stops answering, its connections are cut. */
  async closePort(port: number): Promise<void> {
    await this.t.call("DELETE", this.path(`ports/${Number(port)}`));
  }

  /** Kill everything in it and remove it; deleting twice is fine. */
  async delete(): Promise<void> {
    if (this.deleted) return;
    try {
      await this.t.call("DELETE", this.path());
    } catch (e) {
      if (!(e instanceof NotFound)) throw e; // already gone
    }
    this.deleted = true;
    this.info.state = "destroyed";
  }
}
