/** A process of a sandbox: started in the background, re-attached by id. */
import { Readable } from "node:stream";
import { fromErrorLine, TimeoutError, TransportError } from "./errors.js";
import { type Json, type OutputChunk, type ProcessInfo, processInfo, Result } from "./models.js";
import { ndjsonResponse, outputChunk } from "./ndjson.js";
import type { Transport } from "./transport.js";
import { seg } from "./util.js";

/** How long one POST …/wait asks hulld to hold the answer (seconds). */
const WAIT_ROUND = 30;

export interface OutputOptions {
  /** Byte offset in the combined output to start from (default: where
   * the last read of this handle stopped; 0 for a new handle). */
  offset?: number;
  /** Keep reading live output until the process ends (default true). */
  follow?: boolean;
  /** Stops reading (the connection is closed). */
  signal?: AbortSignal;
}

/** A handle on a process: `id`, stdin, signals, resize, wait, and its
 * output as an async iterable of chunks (`for await (const c of p)`). */
export class Process implements AsyncIterable<OutputChunk> {
  info: ProcessInfo;
  /** Set when a read of the output reached its `result` line. */
  result?: Result;
  /** Where the output read so far ends: a later read resumes here. */
  offset = 0;

  constructor(
    private readonly t: Transport,
    readonly sandboxId: string,
    info: ProcessInfo,
  ) {
    this.info = info;
    if (info.result) this.result = info.result;
  }

  get id(): string {
    return this.info.id;
  }

  /** As last seen: running or exited (refresh() asks again). */
  get state(): string {
    return this.info.state;
  }

  private path(action = ""): string {
    return `/v1/sandboxes/${seg(this.sandboxId)}/processes/${seg(this.id)}${action ? "/" + action : ""}`;
  }

  private update(d: Json): ProcessInfo {
    if (typeof d.id === "string") {
      this.info = processInfo(d);
      if (this.info.result) this.result = this.info.result;
    }
    return this.info;
  }

  async refresh(): Promise<ProcessInfo> {
    return this.update(await this.t.call("GET", this.path()));
  }

  /** Write to the process's stdin (it was started with `stdin: true`);
   * resolves with the bytes written. */
  async sendStdin(data: string | Uint8Array | Readable | AsyncIterable<Uint8Array>): Promise<number> {
    const d = await this.t.call("POST", this.path("stdin"), { data });
    return typeof d.written === "number" ? d.written : 0;
  }

  async closeStdin(): Promise<ProcessInfo> {
    return this.update(await this.t.call("POST", this.path("close_stdin")));
  }

  /** Send a signal: a name ("TERM", "SIGINT") or a number (15). */
  async signal(sig: string | number = "TERM"): Promise<ProcessInfo> {
    const name = typeof sig === "number" ? sig : String(sig).toUpperCase().replace(/^SIG/, "");
    return this.update(await this.t.call("POST", this.path("signal"), { json: { signal: name } }));
  }

  async kill(): Promise<ProcessInfo> {
    return this.signal("KILL");
  }

  /** A PTY process's new window size (Conflict when it has no PTY). */
  async resize(rows: number, cols: number): Promise<ProcessInfo> {
    return this.update(await this.t.call("POST", this.path("resize"), { json: { rows, cols } }));
  }

  /** Wait until the process exits and return its Result. With a timeout
   * (seconds), throws TimeoutError if it is still running then. */
  async wait(opts: { timeout?: number } = {}): Promise<Result> {
    const end = opts.timeout === undefined ? undefined : Date.now() + opts.timeout * 1000;
    for (;;) {
      const left = end === undefined ? WAIT_ROUND : Math.max(0, (end - Date.now()) / 1000);
      const round = Math.min(WAIT_ROUND, left);
      const info = this.update(
        await this.t.call("POST", this.path("wait"), {
          json: { timeout: `${Math.round(round * 1000)}ms` },
          timeout: round + this.t.timeout,
        }),
      );
      if (info.state !== "running") {
        if (info.result) return info.result;
        throw new TransportError(`process ${this.id} is ${info.state} but hulld sent no result`);
      }
      if (end !== undefined && Date.now() >= end) {
        throw new TimeoutError(`process ${this.id} still running after ${opts.timeout} s`);
      }
    }
  }

  /** The output from `offset`: buffered, then (follow) live until the end.
   * A `cut` chunk says output was lost before this reader got it. The
   * result line sets `this.result`; an error line throws its APIError. */
  async *output(opts: OutputOptions = {}): AsyncGenerator<OutputChunk> {
    const res = await this.t.open("GET", this.path("output"), {
      query: { offset: opts.offset ?? this.offset, follow: opts.follow ?? true },
      accept: "application/x-ndjson",
      timeout: null,
      signal: opts.signal,
    });
    for await (const line of ndjsonResponse(res)) {
      const chunk = outputChunk(line);
      if (chunk) {
        this.offset = Math.max(this.offset, chunk.end);
        yield chunk;
      } else if (line.type === "result") {
        this.result = new Result((line.result ?? {}) as Json);
        this.info.result = this.result;
        this.info.state = "exited";
        this.info.running = false;
      }
      else if (line.type === "error") throw fromErrorLine(line.error);
      // other line types (a later API's) are skipped
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<OutputChunk> {
    return this.output();
  }
}
