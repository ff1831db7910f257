import { methodNotAllowed } from "hono/method-not-allowed";
import type { AppEnv } from "./app-env.ts";
import { limitBody, requireBodyMedia } from "./middleware/body.ts";
import { environment } from "./middleware/environment.ts";
import { handleError, methodNotAllowedProblem, notFound } from "./middleware/errors.ts";
import { refuseUnsafeInput } from "./middleware/input-guard.ts";
import { httpMetrics } from "./middleware/metrics.ts";
import { requestContext } from "./middleware/request-context.ts";
import { requestLog } from "./middleware/request-log.ts";
import { corsFromConfig, noStoreByDefault, securityHeaders } from "./middleware/security.ts";
import { sentry } from "./middleware/sentry.ts";
import { adminAuditRoutes } from "./routes/admin-audit.ts";
import { adminBootstrapRoutes } from "./routes/admin-bootstrap.ts";
import { adminChaosRoutes } from "./routes/admin-chaos.ts";
import { adminCostRoutes } from "./routes/admin-costs.ts";
import { adminUserRoutes } from "./routes/admin-users.ts";
import { authRoutes } from "./routes/auth.ts";
import { chatRoomRoutes } from "./routes/chat-room.ts";
import { conversationRoutes } from "./routes/conversations/index.ts";
import { flagRoutes } from "./routes/flags.ts";
import { flagAdminRoutes } from "./routes/flags-admin/index.ts";
import { healthRoutes } from "./routes/health.ts";
import { kbAdminRoutes } from "./routes/kb-admin/index.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { ofrepRoutes } from "./routes/ofrep.ts";
import { opsAdminRoutes } from "./routes/ops-admin.ts";
import { ragRoutes } from "./routes/rag.ts";
import { createRouter, describeSecuritySchemes } from "./routes/router.ts";
import { searchRoutes } from "./routes/search.ts";
import { userRoutes } from "./routes/users.ts";
import { voiceRoutes } from "./routes/voice.ts";
import { voiceProxyRoutes } from "./routes/voice-proxy.ts";

/** The whole HTTP surface: middleware in the order a request meets it, then one line per area. */
export function createApp() {
  const app = createRouter();

  app.use(requestContext); // X-Request-Id + W3C trace context, echoed on every response
  app.use(requestLog); // one JSON line per request, even for a bad environment
  app.use(environment); // validated config, or 500 BAD_ENVIRONMENT naming the variable
  app.use(httpMetrics); // request count and duration by route template and status
  app.use(sentry); // error reports when SENTRY_DSN is set
  app.use(securityHeaders);
  app.use(noStoreByDefault);
  app.use(corsFromConfig);
  app.use(methodNotAllowed<AppEnv>({ app, onMethodNotAllowed: methodNotAllowedProblem }));
  app.use(limitBody);
  app.use(requireBodyMedia);
  app.use(refuseUnsafeInput); // NUL, deep nesting, non-object JSON: 422 before any route reads the input

  app.route("/", healthRoutes);
  app.route("/", metricsRoutes);
  app.route("/", authRoutes);
  app.route("/", userRoutes);
  app.route("/", adminBootstrapRoutes);
  app.route("/", adminUserRoutes);
  app.route("/", adminAuditRoutes);
  app.route("/", opsAdminRoutes);
  app.route("/", adminCostRoutes);
  app.route("/", adminChaosRoutes);
  app.route("/", kbAdminRoutes);
  app.route("/", searchRoutes);
  app.route("/", ragRoutes);
  app.route("/", conversationRoutes);
  app.route("/", chatRoomRoutes);
  app.route("/", voiceRoutes);
  app.route("/", voiceProxyRoutes);
  app.route("/", flagAdminRoutes);
  app.route("/", flagRoutes);
  app.route("/", ofrepRoutes);

  describeSecuritySchemes(app);
  app.doc31("/openapi.json", (c) => ({
    openapi: "3.1.0",
    info: { title: "VoiceAssist Edge API", version: c.var.config.APP_VERSION },
  }));

  app.notFound(notFound);
  app.onError(handleError);
  return app;
}

export const app = createApp();
