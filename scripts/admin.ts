import { text } from "node:stream/consumers";
import { runCli } from "./admin/cli.ts";

/** Reads a line from the terminal without echoing it (a password). */
function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.setEncoding("utf8");
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = "";
    const finish = (error?: Error) => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === "\r" || char === "\n" || char === "\u0004") return finish();
        if (char === "\u0003") return finish(new Error("Cancelled."));
        if (char === "\u007f" || char === "\b") value = [...value].slice(0, -1).join("");
        else if (char >= " ") value += char;
      }
    };
    stdin.on("data", onData);
  });
}

process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  readStdin: () => (process.stdin.isTTY ? Promise.resolve("") : text(process.stdin)),
  readPassword: (prompt) => (process.stdin.isTTY ? promptHidden(prompt) : text(process.stdin)),
  out: (line) => console.log(line),
  write: (chunk) => process.stdout.write(chunk),
  err: (line) => console.error(line),
});
