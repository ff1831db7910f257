// Pure rules that turn component checks into an overall health status.

type ComponentStatus = "ok" | "down" | "disabled";
type OverallStatus = "healthy" | "degraded" | "unhealthy";

/** What a probe finds: a status, a reason when not ok, and any component-specific detail. */
type ProbeResult = { status: ComponentStatus; reason?: string } & Record<string, unknown>;
export type ComponentCheck = ProbeResult & { latency_ms: number | null };

/** Components without which no request can be served. */
const criticalComponents = new Set(["postgres"]);

export function overallStatus(components: Record<string, ComponentCheck>): OverallStatus {
  let degraded = false;
  for (const [name, check] of Object.entries(components)) {
    if (check.status !== "down") continue;
    if (criticalComponents.has(name)) return "unhealthy";
    degraded = true;
  }
  return degraded ? "degraded" : "healthy";
}

/** Runs one probe with a deadline; a throw or a timeout becomes "down" with a readable reason. */
export async function probe(run: () => Promise<ProbeResult | undefined>, timeoutMs: number): Promise<ComponentCheck> {
  const started = Date.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const work = run();
    // A probe that loses the race to the deadline may still fail later; that failure is already reported.
    work.catch(() => {});
    const result: ProbeResult = (await Promise.race([work, deadline])) ?? { status: "ok" };
    return { ...result, latency_ms: result.status === "disabled" ? null : Date.now() - started };
  } catch (error) {
    return { status: "down", latency_ms: Date.now() - started, reason: reasonOf(error) };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

// Only the error's message: never a stack or a connection string.
const reasonOf = (error: unknown) =>
  (error instanceof Error ? error.message : String(error)).replace(/postgres(ql)?:\/\/\S+/g, "[database url]");
