// Every scheduled job, by the cron of wrangler.toml [triggers] that runs it. src/index.ts hands this table to runCron.
import { cleanUpIdentity, recordIdentityGauges } from "../auth/jobs.ts";
import { cleanUpFlagOverrides, reconcileFlags } from "../flags/jobs.ts";
import { recordKbGauges, requeueStuckDocuments } from "../kb/jobs.ts";
import { evaluateSlos } from "../ops/jobs.ts";
import { recordVoiceGauges } from "../voice/jobs.ts";
import type { CronTable } from "./cron.ts";

export const cronJobs = {
  "* * * * *": {
    "slo-evaluate": evaluateSlos,
  },
  "*/5 * * * *": {
    "identity-gauges": recordIdentityGauges,
    "kb-gauges": recordKbGauges,
    "kb-requeue-stuck": async (env) => {
      await requeueStuckDocuments(env);
    },
    "voice-gauges": recordVoiceGauges,
    "flags-reconcile": reconcileFlags,
  },
  "30 3 * * *": {
    "identity-cleanup": cleanUpIdentity,
    "flags-overrides-cleanup": cleanUpFlagOverrides,
  },
} satisfies CronTable;
