/** The hulld client: runs, sandboxes, images, networks, operations. */
import { Conflict, TimeoutError } from "./errors.js";
import {
  type ImageInfo,
  imageInfo,
  type Json,
  type NetworkInfo,
  networkInfo,
  Result,
  Run,
  type SandboxInfo,
  sandboxInfo,
} from "./models.js";
import { Sandbox } from "./sandbox.js";
import { type OutputCallback, readStreamed } from "./streamed.js";
import {
  createTemplate,
  type TemplateInfo,
  templateInfo,
  type TemplateOptions,
  templatePath,
} from "./templates.js";
import { type ConnectOptions, Transport } from "./transport.js";
import {
  cmdArg,
  type Duration,
  type Limits,
  limitsArg,
  type NetworkArg,
  seg,
  strMap,
  textArg,
} from "./util.js";

/** hulld answers a pull when it is done (its --pull-timeout, default 1 h). */
const PULL_TIMEOUT = 3660;

/** A streamed run's callbacks (Client.run). */
export interface RunStreamOptions {
  /** Called as stdout arrives. */
  onStdout?: OutputCallback;
  /** Called as stderr arrives. */
  onStderr?: OutputCallback;
  /** This client was too slow: `lost` bytes at `offset` were skipped (the
   * Result still has them). */
  onCut?: (offset: number, lost: number) => void | Promise<void>;
  /** The run's id, once it is accepted (a client cut off can wait(id)). */
  onStart?: (runId: string) => void | Promise<void>;
}

export interface RunOptions {
  stdin?: string | Uint8Array;
  /** Files under /tmp (relative names) with their text. */
  files?: Record<string, string | Uint8Array>;
  env?: Record<string, string>;
  limits?: Limits;
  isolation?: string;
  workdir?: string;
  network?: NetworkArg;
  /** An image in hulld's store (hulld never pulls for a run). */
  image?: string;
}

export interface SandboxOptions {
  isolation?: string;
  /** The sandbox's own: memory, pids, cpus, tmp_size, open_files. */
  limits?: Limits;
  env?: Record<string, string>;
  network?: NetworkArg;
  /** How long it may stay idle: "10m", or seconds. */
  lifetime?: Duration;
  image?: string;
  /** Labels (at most 32, strings), to find it by with sandboxes({metadata}). */
  metadata?: Record<string, string>;
  /** Files written to its /tmp at creation. */
  files?: Record<string, string | Uint8Array>;
  /** Its ports to expose at once (sb.portUrl(port) gives their URLs). */
  ports?: number[];
  /** Made from this template (its files, limits, env, image; its start
   * command started and its ready command passed, else NotReady); only
   * lifetime and metadata may be given with it. */
  template?: string;
}

function runBody(cmd: string | readonly string[], o: RunOptions): Json {
  const body: Json = { cmd: cmdArg(cmd) };
  if (o.stdin !== undefined) body.stdin = textArg(o.stdin, "stdin");
  if (o.files) body.files = filesArg(o.files);
  if (o.env) body.env = strMap(o.env);
  if (o.limits) body.limits = limitsArg(o.limits);
  if (o.isolation !== undefined) body.isolation = o.isolation;
  if (o.workdir !== undefined) body.workdir = o.workdir;
  if (o.network !== undefined) body.network = o.network;
  if (o.image !== undefined) body.image = String(o.image);
  return body;
}

function filesArg(files: Record<string, string | Uint8Array>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [p, v] of Object.entries(files)) out[p] = textArg(v, `files[${JSON.stringify(p)}]`);
  return out;
}

const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));

/**
 * A connection to hulld. `new Client()` talks to /run/hull/hulld.sock;
 * `new Client({url: "https://host:8080", ca})` to a TCP listener. The
 * token is `token` or $HULL_TOKEN.
 */
export class Client {
  readonly transport: Transport;
  readonly images: Images;

  constructor(opts: ConnectOptions = {}) {
    this.transport = new Transport(opts);
    this.images = new Images(this.transport);
  }

  get token(): string | undefined {
    return this.transport.token;
  }

  /** Close the idle connections kept for the next calls (idle ones never
   * keep the process alive; the client stays usable). */
  close(): void {
    this.transport.close();
  }

  /** One API call: the decoded JSON answer. Errors throw APIError subclasses. */
  request(method: string, path: string, opts: Parameters<Transport["call"]>[2] = {}): Promise<Json> {
    return this.transport.call(method, path, opts);
  }

  // ---- runs ----------------------------------------------------------------

  /** Run cmd once in a fresh sandbox and return how it went. With
   * `queue: true` the run goes through hulld's Redis queue and this waits.
   * With onStdout/onStderr (or onCut/onStart) the output is streamed while
   * the run runs (not with queue); the Result still holds all of it. */
  async run(
    cmd: string | readonly string[],
    opts: RunOptions & { queue?: boolean; poll?: number; timeout?: number } & RunStreamOptions = {},
  ): Promise<Result> {
    const body = runBody(cmd, opts);
    if (opts.onStdout || opts.onStderr || opts.onCut || opts.onStart) {
      if (opts.queue) {
        throw new TypeError("onStdout/onStderr/onCut/onStart: not with queue (a queued run is not streamed)");
      }
      return this.runStreamed(body, opts);
    }
    if (opts.queue) {
      body.queue = true;
      const run = new Run(await this.transport.call("POST", "/v1/runs", { json: body }));
      return this.wait(run.id, { poll: opts.poll, timeout: opts.timeout });
    }
    return new Result(await this.transport.call("POST", "/v1/runs", { json: body, timeout: opts.timeout }));
  }

  private async runStreamed(body: Json, opts: RunStreamOptions): Promise<Result> {
    const res = await this.transport.open("POST", "/v1/runs", {
      json: body,
      accept: "application/x-ndjson, application/json",
      timeout: null,
    });
    const onStart = opts.onStart;
    return readStreamed(
      res,
      {
        ...opts,
        onStartLine: onStart ? (line) => onStart(String(((line.run ?? {}) as Json).id ?? "")) : undefined,
      },
      "run",
    );
  }

  /** Start a run without waiting: a Run to get(), wait() on or cancel(). */
  async submit(cmd: string | readonly string[], opts: RunOptions & { queue?: boolean } = {}): Promise<Run> {
    const body = runBody(cmd, opts);
    if (opts.queue) body.queue = true;
    else body.async = true;
    return new Run(await this.transport.call("POST", "/v1/runs", { json: body }));
  }

  async get(runId: string): Promise<Run> {
    return new Run(await this.transport.call("GET", `/v1/runs/${seg(runId)}`));
  }

  /** Poll until the run is over: its Result; a run that ended without one
   * throws Conflict, one still going after `timeout` s throws TimeoutError. */
  async wait(runId: string, opts: { poll?: number; timeout?: number } = {}): Promise<Result> {
    const end = opts.timeout === undefined ? undefined : Date.now() + opts.timeout * 1000;
    let delay = opts.poll ?? 0.05;
    for (;;) {
      const run = await this.get(runId);
      if (run.done) {
        if (!run.result) {
          throw new Conflict(409, {
            code: "not_finished",
            message: `run ${runId} ended as ${run.state}, with no result`,
          });
        }
        return run.result;
      }
      if (end !== undefined && Date.now() >= end) {
        throw new TimeoutError(`run ${runId} still ${run.state} after ${opts.timeout} s`);
      }
      await sleep(delay);
      delay = Math.min(delay * 1.5, 1);
    }
  }

  /** Cancel: a queued run never runs, a running one is killed. */
  async cancel(runId: string): Promise<Run> {
    return new Run(await this.transport.call("DELETE", `/v1/runs/${seg(runId)}`));
  }

  async runs(opts: { state?: string; limit?: number } = {}): Promise<Run[]> {
    const d = await this.transport.call("GET", "/v1/runs", { query: { state: opts.state, limit: opts.limit } });
    return ((d.runs as Json[]) ?? []).map((r) => new Run(r));
  }

  // ---- sandboxes -------------------------------------------------------------

  /** Create a long-lived sandbox. */
  async sandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
    const body: Json = {};
    if (opts.isolation !== undefined) body.isolation = opts.isolation;
    if (opts.limits) body.limits = limitsArg(opts.limits);
    if (opts.env) body.env = strMap(opts.env);
    if (opts.network !== undefined) body.network = opts.network;
    if (opts.lifetime !== undefined) body.lifetime = opts.lifetime;
    if (opts.image !== undefined) body.image = String(opts.image);
    if (opts.metadata) body.metadata = strMap(opts.metadata);
    if (opts.files) body.files = filesArg(opts.files);
    if (opts.ports) body.ports = opts.ports.map((p) => Number(p));
    if (opts.template !== undefined) body.template = String(opts.template);
    return new Sandbox(this.transport, sandboxInfo(await this.transport.call("POST", "/v1/sandboxes", { json: body })));
  }

  /** Create a sandbox, give it to fn, delete it when fn is done (or threw). */
  async withSandbox<T>(opts: SandboxOptions, fn: (sb: Sandbox) => Promise<T>): Promise<T> {
    const sb = await this.sandbox(opts);
    try {
      return await fn(sb);
    } finally {
      await sb.delete();
    }
  }

  /** This tenant's sandboxes; `metadata` keeps those with every label given. */
  async sandboxes(opts: { metadata?: Record<string, string> } = {}): Promise<SandboxInfo[]> {
    const query: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.metadata ?? {})) query[`metadata.${k}`] = String(v);
    const d = await this.transport.call("GET", "/v1/sandboxes", { query });
    return ((d.sandboxes as Json[]) ?? []).map(sandboxInfo);
  }

  // ---- templates -------------------------------------------------------------

  /** Keep a prepared sandbox (its /tmp, limits, env, image) as template `name`. */
  async createTemplate(sandbox: Sandbox | string, name: string, opts: TemplateOptions = {}): Promise<TemplateInfo> {
    return createTemplate(this.transport, typeof sandbox === "string" ? sandbox : sandbox.id, name, opts);
  }

  async templates(): Promise<TemplateInfo[]> {
    const d = await this.transport.call("GET", "/v1/templates");
    return ((d.templates as Json[]) ?? []).map(templateInfo);
  }

  async template(name: string): Promise<TemplateInfo> {
    return templateInfo(await this.transport.call("GET", templatePath(name)));
  }

  /** Remove it and its files (sandboxes made from it go on). */
  async deleteTemplate(name: string): Promise<void> {
    await this.transport.call("DELETE", templatePath(name));
  }

  /** A Sandbox object for an existing sandbox id. */
  async attach(sandboxId: string): Promise<Sandbox> {
    return new Sandbox(this.transport, sandboxInfo(await this.transport.call("GET", `/v1/sandboxes/${seg(sandboxId)}`)));
  }

  // ---- operations ------------------------------------------------------------

  async health(): Promise<Json> {
    return this.transport.call("GET", "/healthz");
  }

  /** Prometheus text. */
  async metrics(): Promise<string> {
    return (await this.transport.raw("GET", "/metrics", { accept: "text/plain" })).toString("utf8");
  }

  async networks(): Promise<NetworkInfo[]> {
    const d = await this.transport.call("GET", "/v1/networks");
    return ((d.networks as Json[]) ?? []).map(networkInfo);
  }

  async audit(opts: { limit?: number; sinceId?: number } = {}): Promise<Json[]> {
    const d = await this.transport.call("GET", "/v1/audit", { query: { limit: opts.limit, since_id: opts.sinceId } });
    return (d.entries as Json[]) ?? [];
  }
}

/** hulld's image store: any token lists and gets; pull and remove need an
 * admin token (PermissionDenied otherwise). */
export class Images {
  constructor(private readonly t: Transport) {}

  async list(): Promise<ImageInfo[]> {
    const d = await this.t.call("GET", "/v1/images");
    return ((d.images as Json[]) ?? []).map(imageInfo);
  }

  /** By name, full digest or a digest prefix of 12+ hex digits. */
  async get(ref: string): Promise<ImageInfo> {
    return imageInfo(await this.t.call("GET", `/v1/images/${seg(ref)}`));
  }

  /** Have hulld pull ref, and wait until it is done. */
  async pull(ref: string, opts: { platform?: string; tlsVerify?: boolean; timeout?: number } = {}): Promise<ImageInfo> {
    const body: Json = { ref: String(ref) };
    if (opts.platform !== undefined) body.platform = opts.platform;
    if (opts.tlsVerify !== undefined) body.tls_verify = opts.tlsVerify;
    return imageInfo(await this.t.call("POST", "/v1/images", { json: body, timeout: opts.timeout ?? PULL_TIMEOUT }));
  }

  async remove(ref: string, opts: { force?: boolean } = {}): Promise<Json> {
    return this.t.call("DELETE", `/v1/images/${seg(ref)}`, { query: { force: opts.force ? "true" : undefined } });
  }
}
