// What src/ imports from "cloudflare:workers", for the message producers that run the app's own code in Node
// (vitest.contract.config.ts aliases the module here). Nothing the producers call uses these bindings.
export const env = {};

export function waitUntil(promise: Promise<unknown>): void {
  promise.catch(() => {});
}
