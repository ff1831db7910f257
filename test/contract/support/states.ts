// The provider states the consumer pacts name, and the fixed values they carry. The provider test
// (provider.test.ts) sets each up through the API of the running Worker.

export const states = {
  /** params: {email, password}. The account exists (registered, role user). */
  account: "an account exists",
  /** Returns accessToken, refreshToken: a fresh sign-in of a plain user. */
  signedIn: "a user is signed in",
  /** Returns accessToken, conversationId; the knowledge base holds the contract document, ready. */
  conversation: "a signed-in user has a conversation and the knowledge base holds a ready document",
  /** Returns accessToken (an admin's), documentId: the contract document, ready. */
  document: "an admin is signed in and the knowledge base holds a ready document",
  /** params: {key}. Returns accessToken (a plain user's) and adminToken; the boolean flag `key` exists and is on. */
  flag: "a user is signed in and a flag is on",
} as const;

export const OPERATOR_EMAIL = "operator@contract.example.test";
export const READER_EMAIL = "reader@contract.example.test";
export const ADMIN_EMAIL = "admin@contract.example.test";
/** Passes the password policy; only ever used on the test's own `npm run dev`. */
export const CONTRACT_PASSWORD = "Granite-Harbour-Lantern-42";
export const FLAG_KEY = "contract-flag";
