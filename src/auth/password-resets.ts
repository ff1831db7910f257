import { and, eq, gt, isNull } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { passwordResetTokens, users } from "../db/schema/identity.ts";
import { ApiError } from "../errors.ts";
import { sha256Hex } from "./crypto.ts";
import { loadUser } from "./user-admin.ts";

/** Stores a one-time reset token for a live user; runs inside the admin's audited transaction. */
export async function issuePasswordReset(
  tx: Database,
  reset: { userId: string; token: string; createdBy: string; expiresAt: Date },
): Promise<void> {
  const user = await loadUser(tx, reset.userId);
  if (user.deletedAt) throw new ApiError("CONFLICT", "The user is deleted.");
  await tx.insert(passwordResetTokens).values({
    userId: reset.userId,
    tokenHash: await sha256Hex(reset.token),
    createdBy: reset.createdBy,
    expiresAt: reset.expiresAt,
  });
}

/** The user a token resets, if the token is unused, unexpired and its user not deleted. */
export async function findPendingReset(
  db: Database,
  tokenHash: string,
): Promise<{ userId: string; email: string } | undefined> {
  const [pending] = await db
    .select({ userId: passwordResetTokens.userId, email: users.email })
    .from(passwordResetTokens)
    .innerJoin(users, eq(users.id, passwordResetTokens.userId))
    .where(
      and(
        eq(passwordResetTokens.tokenHash, tokenHash),
        isNull(passwordResetTokens.usedAt),
        gt(passwordResetTokens.expiresAt, new Date()),
        isNull(users.deletedAt),
      ),
    )
    .limit(1);
  return pending;
}

/** Spending the token is the guard: of two concurrent redemptions only one gets true. */
export async function spendPasswordReset(db: Database, tokenHash: string): Promise<boolean> {
  const spent = await db
    .update(passwordResetTokens)
    .set({ usedAt: new Date() })
    .where(and(eq(passwordResetTokens.tokenHash, tokenHash), isNull(passwordResetTokens.usedAt)))
    .returning({ id: passwordResetTokens.id });
  return spent.length > 0;
}
