// Streamed runs and sandbox metrics against a stub server on a unix socket
// (node:http): the request (Accept, body, query) and how the answer is
// read (callbacks in order, the result line, a plain JSON answer). No
// root, no hulld.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, beforeEach, test } from "node:test";
import * as hull from "../dist/index.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hull-js-obs-"));
const sock = path.join(tmp, "stub.sock");
const seen = [];
let handler;
const server = http.createServer(async (req, res) => {
  const parts = [];
  for await (const c of req) parts.push(c);
  seen.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(parts) });
  await handler(req, res);
});

before(() => new Promise((resolve) => server.listen(sock, resolve)));
after(() => {
  server.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  seen.length = 0;
});

const client = () => new hull.Client({ socketPath: sock, token: "tok" });
const RES = { verdict: "ok", exit_code: 0, stdout: "a\n", stderr: "e" };

test("a streamed run calls back in order and returns the result line's result", async () => {
  handler = (_req, res) => {
    res.writeHead(200, { "Content-Type": "application/x-ndjson" });
    const lines = [
      { type: "start", run: { id: "r-1", created: "2026-12-03T00:00:00Z" } },
      { type: "stdout", offset: 0, data: "a\n" },
      { type: "cut", offset: 2, lost: 5 },
      { type: "stderr", offset: 7, data: "e" },
      { type: "result", result: { id: "r-1", state: "finished", ...RES } },
    ];
    res.end(lines.map((l) => JSON.stringify(l) + "\n").join(""));
  };
  const got = [];
  const r = await client().run(["sh", "-c", "x"], {
    onStart: (id) => got.push(["start", id]),
    onStdout: (t) => got.push(["out", t]),
    onStderr: (t) => got.push(["err", t]),
    onCut: (o, n) => got.push(["cut", o, n]),
  });
  assert.deepEqual(got, [["start", "r-1"], ["out", "a\n"], ["cut", 2, 5], ["err", "e"]]);
  assert.equal(r.verdict, "ok");
  assert.equal(r.stdout, "a\n");
  assert.match(seen[0].headers.accept, /application\/x-ndjson/);
  assert.equal(seen[0].url, "/v1/runs");
  assert.deepEqual(JSON.parse(seen[0].body), { cmd: ["sh", "-c", "x"] });
});

test("a server without streamed runs still calls back", async () => {
  handler = (_req, res) => {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(RES));
  };
  const got = [];
  const r = await client().run("x", { onStdout: (t) => got.push(t), onStderr: (t) => got.push(t) });
  assert.deepEqual(got, ["a\n", "e"]);
  assert.equal(r.stderr, "e");
});

test("metrics: the since query and the samples", async () => {
  handler = (req, res) => {
    res.writeHead(200, { "Content-Type": "application/json" });
    if (req.url.startsWith("/v1/sandboxes/s-1/metrics")) {
      res.end(
        JSON.stringify({
          sandbox: "s-1",
          interval_ms: 5000,
          samples: [{ time: "2026-12-03T00:00:00.000Z", cpu_seconds: 1.5, memory_bytes: 10, disk_bytes: 30 }],
        }),
      );
    } else {
      res.end(JSON.stringify({ id: "s-1", state: "running" }));
    }
  };
  const sb = await client().attach("s-1");
  const got = await sb.metrics({ since: new Date(Date.UTC(2026, 11, 3, 1, 2, 3)) });
  assert.equal(got.length, 1);
  assert.equal(got[0].cpuSeconds, 1.5);
  assert.equal(got[0].memoryBytes, 10);
  assert.equal(got[0].netRxBytes, undefined);
  const m = seen.find((r) => r.url.includes("/metrics"));
  assert.equal(m.url, "/v1/sandboxes/s-1/metrics?since=2026-12-03T01%3A02%3A03.000Z");
});
