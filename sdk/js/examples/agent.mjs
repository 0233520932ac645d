#!/usr/bin/env node
// What an agent backend does with a sandbox: upload a script, run it with
// output streamed as it is printed, keep a server-like process in the
// background and talk to it over stdin, watch a directory, then clean up.
//
//   HULL_TOKEN=... node examples/agent.mjs [--socket /run/hull/hulld.sock]
import { parseArgs } from "node:util";
import { Client } from "hull-sdk";

const { values } = parseArgs({ options: { socket: { type: "string" }, url: { type: "string" } } });
const client = new Client({ socketPath: values.socket, url: values.url });

await client.withSandbox({ metadata: { app: "agent-example" }, lifetime: "10m" }, async (sb) => {
  await sb.files.write("/tmp/work/count.sh", "for i in 1 2 3; do echo step $i; sleep 0.2; done\n");

  // Output as it is produced, then the Result.
  const r = await sb.exec(["sh", "/tmp/work/count.sh"], {
    onStdout: (text) => process.stdout.write(`[out] ${text}`),
    onStderr: (text) => process.stdout.write(`[err] ${text}`),
  });
  console.log(`verdict ${r.verdict}, exit ${r.exitCode}`);

  // A background process fed through stdin.
  const p = await sb.start(["sh", "-c", "while read l; do echo \"echo: $l\"; done"], { stdin: true });
  await p.sendStdin("hello\nworld\n");
  await p.closeStdin();
  for await (const chunk of p) process.stdout.write(`[${p.id}] ${chunk.text}`);
  console.log(`process exited with ${p.result?.exitCode}`);

  // Files and a watch.
  const w = await sb.files.watch("/tmp/work");
  await sb.exec("touch /tmp/work/new.txt");
  for await (const ev of w) {
    console.log(`watch: ${ev.type} ${ev.path}`);
    if (ev.path.endsWith("new.txt")) break;
  }
  for (const e of await sb.files.list("/tmp/work")) console.log(`${e.mode} ${e.size}\t${e.name}`);
});
