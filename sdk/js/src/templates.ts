/** Sandbox templates (docs/api.md "Templates"): a prepared sandbox kept
 * by name, to make many alike with `client.sandbox({ template })`. */
import type { Json } from "./models.js";
import type { Transport } from "./transport.js";
import { cmdArg, type Duration, seg } from "./util.js";

export interface TemplateOptions {
  /** Started as a background process in each sandbox made from it. */
  startCmd?: string | readonly string[];
  /** Run until it exits 0 before such a sandbox is handed over. */
  readyCmd?: string | readonly string[];
  /** How long readyCmd may take to pass ("30s", default 30 s). */
  readyTimeout?: Duration;
}

export interface TemplateInfo {
  name: string;
  id: string;
  isolation: string;
  /** Data kept of the source's /tmp, and its regular files. */
  bytes: number;
  files: number;
  source?: string;
  created?: string;
  startCmd?: string[];
  readyCmd?: string[];
  /** Seconds. */
  readyTimeout?: number;
  /** What its sandboxes are created with (limits, env, image, ...). */
  sandbox: Json;
  raw: Json;
}

export function templateInfo(d: Json): TemplateInfo {
  const strs = (v: unknown) => (Array.isArray(v) ? v.map(String) : undefined);
  return {
    name: String(d.name),
    id: String(d.id ?? ""),
    isolation: typeof d.isolation === "string" ? d.isolation : "container",
    bytes: typeof d.bytes === "number" ? d.bytes : 0,
    files: typeof d.files === "number" ? d.files : 0,
    source: typeof d.source === "string" ? d.source : undefined,
    created: typeof d.created === "string" ? d.created : undefined,
    startCmd: strs(d.start_cmd),
    readyCmd: strs(d.ready_cmd),
    readyTimeout: typeof d.ready_timeout === "number" ? d.ready_timeout : undefined,
    sandbox: (d.sandbox && typeof d.sandbox === "object" ? d.sandbox : {}) as Json,
    raw: d,
  };
}

export function templatePath(name: string): string {
  return `/v1/templates/${seg(name)}`;
}

/** POST /v1/templates: keep sandbox `sandboxId` as template `name`. */
export async function createTemplate(
  t: Transport,
  sandboxId: string,
  name: string,
  opts: TemplateOptions = {},
): Promise<TemplateInfo> {
  const body: Json = { sandbox: String(sandboxId), name: String(name) };
  if (opts.startCmd !== undefined) body.start_cmd = cmdArg(opts.startCmd);
  if (opts.readyCmd !== undefined) body.ready_cmd = cmdArg(opts.readyCmd);
  if (opts.readyTimeout !== undefined) body.ready_timeout = opts.readyTimeout;
  return templateInfo(await t.call("POST", "/v1/templates", { json: body }));
}
