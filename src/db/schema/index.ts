// Every table, one module per area; drizzle-kit reads this file to generate migrations/.
export * from "./audit.ts";
export * from "./conversations.ts";
export * from "./flags.ts";
export * from "./identity.ts";
export * from "./kb.ts";
export * from "./ops.ts";
export * from "./voice.ts";
