import type { Role } from "../db/schema/identity.ts";

export type { Role };

/** Who is calling: a signed-in user (access token) or a machine client (API key). */
export interface Principal {
  userId: string;
  email: string;
  role: Role;
  /** Set for access tokens: the session (refresh family) and the token's id and expiry. */
  sessionId?: string;
  tokenId?: string;
  tokenExpiresAt?: number;
  /** Set for API keys. */
  apiKeyId?: string;
}

/** Roles ordered by what they may do; an API key carries at most its owner's role. */
const rank: Record<Role, number> = { user: 0, viewer: 1, admin: 2 };

export const atMost = (wanted: Role, ceiling: Role): Role => (rank[wanted] <= rank[ceiling] ? wanted : ceiling);
