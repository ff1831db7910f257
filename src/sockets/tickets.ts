// Single-use tickets for sockets opened without a token (browsers cannot set headers on a WebSocket):
// kept in the Durable Object the socket will reach, deleted at the first attempt to use them.

import { ApiError, problemResponse } from "../errors.ts";

const TICKET_TTL_MS = 60_000;

interface Stored<T> {
  holder: T;
  expiresAt: number;
}

/** A new ticket for `holder`, valid 60 s. */
export async function mintTicket<T>(
  storage: DurableObjectStorage,
  holder: T,
): Promise<{ ticket: string; expiresAt: number }> {
  const ticket = crypto.randomUUID().replaceAll("-", "") + crypto.randomUUID().replaceAll("-", "");
  const expiresAt = Date.now() + TICKET_TTL_MS;
  await storage.put<Stored<T>>(`ticket:${ticket}`, { holder, expiresAt });
  return { ticket, expiresAt };
}

/** The holder of the request's `?ticket=`, once: unknown, used or expired tickets give undefined. */
export async function redeemTicket<T>(storage: DurableObjectStorage, request: Request): Promise<T | undefined> {
  const ticket = new URL(request.url).searchParams.get("ticket");
  if (!ticket) return undefined;
  const key = `ticket:${ticket}`;
  const stored = await storage.get<Stored<T>>(key);
  await storage.delete(key);
  return stored && stored.expiresAt >= Date.now() ? stored.holder : undefined;
}

/**
 * The object's answer to a connect whose ticket is unknown, used or expired: a 401 problem carrying the
 * request id the Worker forwarded (REQUEST_ID_HEADER), like every other error of the API.
 */
export const ticketRefused = (request: Request): Response =>
  problemResponse(
    new ApiError("UNAUTHORIZED", "The ticket is unknown, used or expired: ask for a new one."),
    request.headers.get(REQUEST_ID_HEADER) ?? crypto.randomUUID(),
  );

/** The header a route sets to its request id on the connect it forwards to the object. */
export const REQUEST_ID_HEADER = "x-request-id";
