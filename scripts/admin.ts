import { text } from "node:stream/consumers";
import { runCli } from "./admin/cli.ts";

process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  readStdin: () => (process.stdin.isTTY ? Promise.resolve("") : text(process.stdin)),
  out: (line) => console.log(line),
  err: (line) => console.error(line),
});
