// Scheduled flag work: republish a snapshot whose hand-off to the FlagHub was lost, and clear expired overrides.
import { type Env, requireConfig } from "../env.ts";
import { log } from "../observability/log.ts";
import { removeExpiredOverrides } from "./admin.ts";
import { flushExposures } from "./exposures.ts";
import { publishCommitted, reconcileFlagSnapshot } from "./publish.ts";

/** Every 5 minutes: KV catches up with Postgres if a publish failed; this isolate's exposure counts are stored. */
export async function reconcileFlags(env: Env): Promise<void> {
  const config = requireConfig(env);
  const { republished } = await reconcileFlagSnapshot(env, config);
  if (republished) log("warn", "flag snapshot republished by the reconcile job");
  await flushExposures(config);
}

/** Daily: expired overrides (already inactive) are deleted, with their history rows. */
export async function cleanUpFlagOverrides(env: Env): Promise<void> {
  const committed = await removeExpiredOverrides(requireConfig(env), null);
  await publishCommitted(env, committed);
}
