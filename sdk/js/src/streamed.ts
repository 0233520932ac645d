/** The one reader of a streamed answer (a run or a sandbox exec asked for
 * as NDJSON): output to the callbacks as it comes, then the Result. */
import type { IncomingMessage } from "node:http";

import { fromErrorLine, TransportError } from "./errors.js";
import { type Json, type OutputChunk, Result } from "./models.js";
import { ndjsonResponse, outputChunk } from "./ndjson.js";
import { readAll } from "./transport.js";

/** Called with each piece of output as it arrives (its text, and the chunk
 * with the raw bytes and offset); a returned promise is awaited. */
export type OutputCallback = (text: string, chunk: OutputChunk) => void | Promise<void>;

export interface StreamHandlers {
  onStdout?: OutputCallback;
  onStderr?: OutputCallback;
  onCut?: (offset: number, lost: number) => void | Promise<void>;
  /** The `start` line (a run's or a process's description in it). */
  onStartLine?: (line: Json) => void | Promise<void>;
}

function wholeChunk(stream: "stdout" | "stderr", offset: number, data: Buffer): OutputChunk {
  return { stream, offset, data, text: data.toString("utf8"), end: offset + data.length };
}

/** Read `res` to its result. A hulld that answered with plain JSON (no
 * streaming) has its output delivered once, as whole chunks. `what` names
 * the call in the error for a stream that ends without a result. */
export async function readStreamed(res: IncomingMessage, h: StreamHandlers, what: string): Promise<Result> {
  if (!String(res.headers["content-type"] ?? "").includes("ndjson")) {
    const r = new Result(JSON.parse((await readAll(res)).toString("utf8")) as Json);
    const n = r.stdoutBytes.length;
    if (h.onStdout && n) await h.onStdout(r.stdout, wholeChunk("stdout", 0, r.stdoutBytes));
    if (h.onStderr && r.stderrBytes.length) await h.onStderr(r.stderr, wholeChunk("stderr", n, r.stderrBytes));
    return r;
  }
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  for await (const line of ndjsonResponse(res)) {
    const chunk = outputChunk(line);
    if (chunk?.stream === "stdout") {
      out.push(chunk.data);
      if (h.onStdout) await h.onStdout(chunk.text, chunk);
    } else if (chunk?.stream === "stderr") {
      err.push(chunk.data);
      if (h.onStderr) await h.onStderr(chunk.text, chunk);
    } else if (chunk?.stream === "cut") {
      if (h.onCut) await h.onCut(chunk.offset, chunk.lost ?? 0);
    } else if (line.type === "start") {
      if (h.onStartLine) await h.onStartLine(line);
    } else if (line.type === "error") {
      throw fromErrorLine(line.error);
    } else if (line.type === "result") {
      const d = { ...((line.result ?? {}) as Json) };
      // When hulld does not repeat the output in the result (it went out
      // as it came), the streamed output is the result's.
      const empty = (k: string) => !d[k] && !d[`${k}_base64`];
      if (empty("stdout") && out.length) d.stdout_base64 = Buffer.concat(out).toString("base64");
      if (empty("stderr") && err.length) d.stderr_base64 = Buffer.concat(err).toString("base64");
      return new Result(d);
    }
  }
  throw new TransportError(`${what}: the stream ended without a result`);
}
