// Every scheduled job, by the cron of wrangler.toml [triggers] that runs it.
import { cleanUpIdentity, recordIdentityGauges } from "../src/auth/jobs.ts";
import { cleanUpFlagOverrides, reconcileFlags } from "../src/flags/jobs.ts";
import { requeueStuckDocuments } from "../src/kb/jobs.ts";
import { recordVoiceGauges } from "../src/voice/jobs.ts";
import { registerCronJob } from "./cron.ts";

registerCronJob("*/5 * * * *", "identity-gauges", recordIdentityGauges);
registerCronJob("30 3 * * *", "identity-cleanup", cleanUpIdentity);
registerCronJob("*/5 * * * *", "kb-requeue-stuck", async (env) => {
  await requeueStuckDocuments(env);
});
registerCronJob("*/5 * * * *", "voice-gauges", recordVoiceGauges);
registerCronJob("*/5 * * * *", "flags-reconcile", reconcileFlags);
registerCronJob("30 3 * * *", "flags-overrides-cleanup", cleanUpFlagOverrides);
