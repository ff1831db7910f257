import { createRouter } from "../router.ts";
import { documentRoutes } from "./documents.ts";
import { importRoutes } from "./import.ts";
import { indexRoutes } from "./indexing.ts";

/** The knowledge-base admin API: documents, bulk import and the search index. */
export const kbAdminRoutes = createRouter().route("/", documentRoutes).route("/", importRoutes).route("/", indexRoutes);
