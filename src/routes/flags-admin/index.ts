// Admin API of feature flags (docs/flags.md): admins write, viewers read. Every write goes through the one
// writer (src/flags/store.ts) and is published before the response, so the answer means "live".
import { createRouter } from "../router.ts";
import { flagRecordRoutes } from "./flags.ts";
import { historyRoutes } from "./history.ts";
import { interchangeRoutes } from "./interchange.ts";
import { overrideRoutes } from "./overrides.ts";
import { playgroundRoutes } from "./playground.ts";
import { segmentRoutes } from "./segments.ts";

// Fixed paths (import, export, playground, segments) first: `/api/admin/flags/{key}` would otherwise take them.
export const flagAdminRoutes = createRouter()
  .route("/", interchangeRoutes)
  .route("/", playgroundRoutes)
  .route("/", overrideRoutes)
  .route("/", segmentRoutes)
  .route("/", flagRecordRoutes)
  .route("/", historyRoutes);
