// Sockets outlive the request that admitted them. Each keeps what it was admitted with, and its Durable
// Object asks every SOCKET_RECHECK_MS whether that still admits the user: a logout ends its sockets too.
import { z } from "zod";
import { credentialEnded, type HeldCredential } from "../auth/liveness.ts";
import type { Principal } from "../auth/principal.ts";
import type { Config } from "../config.ts";
import { createDb, type Database } from "../db/client.ts";
import { describeError } from "../observability/errors.ts";
import { log } from "../observability/log.ts";

/** How often an open socket's credential is checked again: a session ended anywhere ends its sockets this late. */
export const SOCKET_RECHECK_MS = 30_000;

/** The close code after a socket's credential ended (policy violation), sent after its protocol's error event. */
export const CLOSE_CREDENTIAL_ENDED = 1008;

// Set by the Worker on the request it forwards to a Durable Object; the routes strip any a client sent.
export const CREDENTIAL_HEADER = "x-voiceassist-credential";

/** What a socket keeps of its credential besides the user: the session or API key, and the token's expiry. */
export type SocketCredential = Omit<HeldCredential, "userId">;

/** A socket opened with a token or key ends with its session or key, and with the access token's expiry. */
export const socketCredential = ({ sessionId, apiKeyId, tokenExpiresAt }: Principal): SocketCredential => ({
  sessionId,
  apiKeyId,
  tokenExpiresAt,
});

/** A ticket's socket is held by the session or key that minted the ticket, not by the minting token's expiry. */
export const ticketCredential = ({ sessionId, apiKeyId }: Principal): SocketCredential => ({ sessionId, apiKeyId });

const HeaderValue = z.object({
  sessionId: z.string().optional(),
  apiKeyId: z.string().optional(),
  tokenExpiresAt: z.number().optional(),
});

/** The credential the Worker forwarded; without one (or unreadable) only the user is checked again. */
export function credentialOf(request: Request): SocketCredential {
  try {
    return HeaderValue.parse(JSON.parse(request.headers.get(CREDENTIAL_HEADER) ?? "{}"));
  } catch {
    return {};
  }
}

/** Seams, so tests re-check at once: the clock, and the database asked. */
export const socketRecheck = {
  now: (): number => Date.now(),
  database: (config: Config): Database => createDb(config),
};

/**
 * Why a socket's user may no longer use it, or undefined while they may. A database that does not answer
 * keeps the socket (logged): each turn needs the database anyway, and an outage must not drop every call.
 */
export async function socketRefusal(
  config: Config,
  userId: string,
  credential: SocketCredential = {},
): Promise<string | undefined> {
  try {
    return await credentialEnded(socketRecheck.database(config), { userId, ...credential }, socketRecheck.now());
  } catch (error) {
    log("warn", "socket credential not checked again: the database did not answer; the socket stays open", {
      error: describeError(error),
    });
    return undefined;
  }
}
