import { exports } from "cloudflare:workers";
import { OPERATOR_TOKEN } from "./harness.ts";

// Reading GET /metrics in tests: series are named as the exposition names them (exposedName:
// voiceassist_<catalog name>), with their labels in catalog order, e.g.
// 'voiceassist_audit_events_total{action="auth.login",outcome="success"}'.

/** The value of one series of GET /metrics, or undefined when it has no sample yet. */
export async function scrapeSample(series: string): Promise<number | undefined> {
  const res = await exports.default.fetch("http://api.test/metrics", {
    headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
  });
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
  const line = (await res.text()).split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/**
 * The series' value once it has reached `atLeast`, or whatever it is after `timeoutMs`: events recorded in the
 * background (waitUntil) land after the call that caused them. Assert the exact value on the result.
 */
export async function settledSample(series: string, atLeast: number, timeoutMs = 5_000): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await scrapeSample(series);
    if ((value !== undefined && value >= atLeast) || Date.now() > deadline) {
      // One more read after a pause: a value that overshoots (counted twice) shows here.
      await new Promise((r) => setTimeout(r, 100));
      return scrapeSample(series);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
