#!/usr/bin/env node
// A user's `calculate(inputs)` (Python) run in a hull sandbox, through
// hulld: the JSON result for JSON inputs, with CPU, memory, process and time
// limits and no network. The Node twin of sdk/python/examples/calculate.py.
//
//   node examples/calculate.mjs --socket /run/hull/hulld.sock --token $TOKEN user_code.py inputs.json
import * as fs from "node:fs";
import { parseArgs } from "node:util";
import { Client, RunFailed } from "hull-sdk";

export const LIMITS = { cpu_time: "2s", wall_time: "30s", memory: "128M", pids: 16, output: "64K" };

// Imports the user's file, calls calculate() on the JSON from stdin and
// prints only the JSON result on stdout (the user's prints go to stderr).
const RUNNER = `import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("user_code", sys.argv[1])
module = importlib.util.module_from_spec(spec)
out, sys.stdout = sys.stdout, sys.stderr
spec.loader.exec_module(module)
out.write(json.dumps(module.calculate(json.load(sys.stdin))) + "\\n")
`;

/** The value calculate() returned; throws RunFailed (with the Result) otherwise. */
export async function calculate(client, code, inputs, limits = LIMITS) {
  const r = await client.run(["python3", "/tmp/runner.py", "/tmp/user_code.py"], {
    files: { "runner.py": RUNNER, "user_code.py": code },
    stdin: JSON.stringify(inputs),
    limits,
  });
  return JSON.parse(r.check().stdout);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    options: { socket: { type: "string" }, url: { type: "string" }, token: { type: "string" } },
    allowPositionals: true,
  });
  if (positionals.length !== 2) {
    console.error("usage: calculate.mjs [--socket PATH | --url URL] [--token T] CODE.py INPUTS.json");
    process.exit(2);
  }
  const client = new Client({ socketPath: values.socket, url: values.url, token: values.token });
  try {
    const out = await calculate(client, fs.readFileSync(positionals[0], "utf8"),
      JSON.parse(fs.readFileSync(positionals[1], "utf8")));
    console.log(JSON.stringify(out));
  } catch (e) {
    if (e instanceof RunFailed) console.error(e.message + "\n" + e.result.stderr);
    else console.error(`calculate: ${e.message}`);
    process.exit(1);
  }
}
