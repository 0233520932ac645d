/**
 * Errors for hulld's answers. Every error hulld returns has one body,
 * `{"error": {"code", "message", "field"?, "permission"?}}`, with its HTTP
 * status (docs/api.md); each status maps to one class here, as in the
 * Python SDK's errors.py, so callers catch what they can handle:
 *
 *     try { await client.run(["true"], { limits: { memory: "12X" } }); }
 *     catch (e) { if (e instanceof ValidationError) console.log(e.field); }
 */

/** Base of every error the SDK throws. */
export class HullError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** hulld could not be reached, or its answer was not HTTP/JSON. */
export class TransportError extends HullError {}

/** A wait that ran out of time before the run or process ended. */
export class TimeoutError extends HullError {}

export interface APIErrorInit {
  code?: string;
  message?: string;
  field?: string;
  permission?: string;
  body?: Buffer | string;
  headers?: Record<string, string | string[] | undefined>;
}

/** hulld answered with an error status (or an NDJSON `error` line). */
export class APIError extends HullError {
  readonly status: number;
  readonly code?: string;
  /** 400/403: the JSON path of the offending field ("limits.memory"). */
  readonly field?: string;
  /** 403: the grant the token lacks ("host-network"). */
  readonly permission?: string;
  readonly body?: Buffer | string;
  readonly headers: Record<string, string | string[] | undefined>;
  /** The server's message alone (`message` is "STATUS CODE: text"). */
  readonly detail: string;

  constructor(status: number, init: APIErrorInit = {}) {
    const detail = init.message ?? `HTTP ${status}`;
    super(`${status}${init.code ? " " + init.code : ""}: ${detail}`);
    this.status = status;
    this.code = init.code;
    this.field = init.field;
    this.permission = init.permission;
    this.body = init.body;
    this.headers = init.headers ?? {};
    this.detail = detail;
  }
}

/** 400: the body is not JSON, or a field is wrong. */
export class BadRequest extends APIError {}
/** 400 invalid_request: `field` is the JSON path of the offending value. */
export class ValidationError extends BadRequest {}
/** 401: no token, or an unknown or revoked one. */
export class AuthError extends APIError {}
/** 403: the token's role may not do this, or it lacks a grant (`permission`). */
export class PermissionDenied extends APIError {}
/** 404: no such route, or an id this tenant does not own. */
export class NotFound extends APIError {}
/** 405: the route exists, the method does not. */
export class MethodNotAllowed extends APIError {}
/** 409: the object's state does not allow it (stdin to an exited process). */
export class Conflict extends APIError {}
/** 413: a body over --max-body, or a file over the sandbox's disk limit. */
export class PayloadTooLarge extends APIError {
  /** The limit that applies ("limits.tmp_size", "max_body", ...), when named. */
  get limit(): string | undefined {
    return this.field;
  }
}

/** 429: run slots and queue full, or the tenant at its quota. */
export class RateLimited extends APIError {
  /** The server's Retry-After, in seconds (undefined when absent). */
  readonly retryAfter?: number;
  constructor(status: number, init: APIErrorInit = {}, retryAfter?: number) {
    super(status, init);
    this.retryAfter = retryAfter;
  }
}

/** 5xx. */
export class ServerError extends APIError {}
/** 501: e.g. isolation microvm for a sandbox, or a queued run without --redis. */
export class NotImplementedByServer extends ServerError {}
/** 503: hulld is shutting down, or its store is unavailable. */
export class Unavailable extends ServerError {}
/** 502/504: an image pull failed at the registry, or timed out. */
export class RegistryError extends ServerError {}

/** 504 not_ready: a sandbox made from a template was destroyed because the
 * template's ready command did not exit 0 within its ready timeout. */
export class NotReady extends ServerError {}

type APIErrorClass = new (status: number, init?: APIErrorInit) => APIError;

const BY_STATUS: Record<number, APIErrorClass> = {
  401: AuthError,
  403: PermissionDenied,
  404: NotFound,
  405: MethodNotAllowed,
  409: Conflict,
  413: PayloadTooLarge,
  501: NotImplementedByServer,
  502: RegistryError,
  503: Unavailable,
  504: RegistryError,
};

/** The status an error code stands for, for errors that come in an NDJSON
 * `error` line after the 200 went out (docs/api.md's table). */
const STATUS_OF_CODE: Record<string, number> = {
  invalid_json: 400,
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  queue_full: 429,
  quota_exceeded: 429,
  too_many_pulls: 429,
  not_implemented: 501,
  registry_error: 502,
  shutting_down: 503,
  store_unavailable: 503,
  queue_unavailable: 503,
  registry_timeout: 504,
  not_ready: 504,
  insufficient_storage: 507,
};

function header(headers: APIErrorInit["headers"], name: string): string | undefined {
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

/** The error for an answer with status >= 400. */
export function fromResponse(
  status: number,
  body: Buffer | string | undefined,
  headers: APIErrorInit["headers"] = {},
): APIError {
  const init: APIErrorInit = { body, headers };
  const text = body === undefined ? "" : typeof body === "string" ? body : body.toString("utf8");
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    doc = undefined;
  }
  if (doc && typeof doc === "object" && "error" in doc) {
    const err = (doc as { error: unknown }).error;
    if (err && typeof err === "object") {
      const e = err as Record<string, unknown>;
      if (typeof e.code === "string") init.code = e.code;
      if (typeof e.message === "string") init.message = e.message;
      if (typeof e.field === "string") init.field = e.field;
      if (typeof e.permission === "string") init.permission = e.permission;
    } else if (typeof err === "string") {
      init.message = err;
    }
  }
  if (init.message === undefined && text) init.message = text.slice(0, 500);
  if (status === 400) {
    const cls = init.field || init.code === "invalid_request" ? ValidationError : BadRequest;
    return new cls(status, init);
  }
  if (status === 429) {
    const ra = Number(header(headers, "retry-after"));
    return new RateLimited(status, init, Number.isFinite(ra) ? ra : undefined);
  }
  const cls =
    init.code === "not_ready" ? NotReady : (BY_STATUS[status] ?? (status >= 500 ? ServerError : APIError));
  return new cls(status, init);
}

/** The error for an NDJSON `{"type":"error","error":{…}}` line. */
export function fromErrorLine(error: unknown): APIError {
  const e = (error && typeof error === "object" ? error : {}) as Record<string, unknown>;
  const code = typeof e.code === "string" ? e.code : undefined;
  const status =
    typeof e.status === "number" ? e.status : (code && STATUS_OF_CODE[code]) || 500;
  return fromResponse(status, JSON.stringify({ error: e }), {});
}
