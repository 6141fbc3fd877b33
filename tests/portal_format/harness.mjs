// Node entry of the format tests: reads {"ops": [...]} as JSON on stdin, writes {"results": [...]}.

import { runOps } from "./ops.mjs";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const request = JSON.parse(input);
process.stdout.write(JSON.stringify({ results: await runOps(request.ops) }));
