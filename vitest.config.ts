import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { startTestStack } from "./test/stack.ts";

// Suites inside workerd (the Workers pool) against the local stack, started once for the run:
// PGlite, or the Postgres in TEST_DATABASE_URL; Redis behind the Upstash-compatible server when reachable.
export default defineConfig(async () => {
  const stack = await startTestStack();
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            ...stack.env,
            ENVIRONMENT: "test",
            LOG_LEVEL: "error",
            OPERATOR_TOKEN: "test-operator-token-0123456789",
            // Two keys: the first signs, both verify (as during a key rotation).
            JWT_SIGNING_KEYS:
              "test-2:test-signing-secret-2-0123456789abcdef,test-1:test-signing-secret-1-0123456789abcdef",
            ADMIN_BOOTSTRAP_TOKEN: "test-bootstrap-token-0123456789abcdef",
            // Alerts go to the request receiver: PagerDuty (two levels), then the signed webhook.
            PAGERDUTY_EVENTS_URL: `${stack.receiverUrl}/pagerduty/v2/enqueue`,
            PAGERDUTY_ROUTING_KEY: "test-routing-key-level-0",
            ALERT_ESCALATION_ROUTING_KEYS: "test-routing-key-level-1",
            ALERT_WEBHOOK_URL: `${stack.receiverUrl}/alerts/webhook`,
            ALERT_WEBHOOK_SECRET: "test-webhook-secret-0123456789",
            ALERT_ESCALATE_AFTER_MINUTES: "3",
            // Budgets no other suite's spend comes near (test/workers/cost-alerts.test.ts).
            COST_BUDGET_DAILY_USD: "10",
            COST_BUDGET_MONTHLY_USD: "100",
          },
        },
      }),
    ],
    test: {
      name: "workers",
      include: ["test/workers/**/*.test.ts"],
      // Files share one Postgres; some (bootstrap, audit verify) need it to themselves for a moment.
      fileParallelism: false,
      globalSetup: ["./test/global-setup.ts"],
      testTimeout: 20_000,
      hookTimeout: 30_000,
      provide: { stack },
    },
  };
});
