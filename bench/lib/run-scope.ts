// What every bench runner shares around its work: a logger with the runner's prefix, and stopping whatever the
// run started (npm run dev, other servers, snapshots, databases) on every way out: the normal end, an error,
// Ctrl-C / SIGTERM / SIGHUP, and the time limit. Steps are undone last started first, each once.

export interface RunScope {
  /** Logs `[<name>] line`. */
  say(line: string): void;
  /** Registers what undoes something just started; `what` names it when undoing it fails. */
  defer(step: () => Promise<unknown>, what?: string): void;
  /** Undoes every registered step, last first (steps registered meanwhile included); every call, one run. */
  stopAll(): Promise<void>;
  /** Whether a signal asked the run to stop (the requests it cuts short then fail as expected). */
  readonly interrupted: boolean;
  /** `npm run <name> -- <arguments>`, as this run was started (for the report). */
  readonly command: string;
  /** Runs `main`, then stops everything and exits with its code (1, with the error, when it throws). */
  runMain(main: () => Promise<number>): Promise<never>;
}

/**
 * Starts the scope of a bench run named `name` (e.g. "bench:flags"): signal handlers at once and, at
 * `stopAt` (ms since the epoch), a backstop that stops everything and exits 124 whatever the run is doing.
 */
export function runScope(name: string, { stopAt }: { stopAt: number }): RunScope {
  const undo: { step: () => Promise<unknown>; what: string | undefined }[] = [];
  let stopping: Promise<void> | undefined;
  let interrupted = false;
  const say = (line: string) => console.log(`[${name}] ${line}`);
  const stopAll = () => {
    stopping ??= (async () => {
      for (let next = undo.pop(); next; next = undo.pop()) {
        await next.step().catch((error: unknown) => {
          const message = error instanceof Error ? error.message : String(error);
          console.error(`[${name}] cleanup${next?.what ? ` (${next.what})` : ""}: ${message}`);
        });
      }
    })();
    return stopping;
  };
  const leave = (why: string, code: number) => {
    say(`${why}: stopping`);
    void stopAll().then(() => process.exit(code));
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      interrupted = true;
      leave(signal, 130);
    });
  }
  setTimeout(() => leave("time limit", 124), stopAt - Date.now()).unref();

  const args = process.argv.slice(2);
  return {
    say,
    defer: (step, what) => void undo.push({ step, what }),
    stopAll,
    get interrupted() {
      return interrupted;
    },
    command: `npm run ${name}${args.length ? ` -- ${args.join(" ")}` : ""}`,
    runMain: async (main) => {
      let code = 1;
      try {
        code = await main();
      } catch (error) {
        if (!interrupted) console.error(`[${name}] ${(error as Error).stack ?? error}`);
      }
      await stopAll();
      process.exit(code);
    },
  };
}
