/** Revoked access-token ids, each remembered until the token would have expired anyway. */
export interface RevocationList {
  /** `expiresAt` is the token's exp (seconds since the epoch); past it the entry may vanish. */
  revoke(tokenId: string, expiresAt: number): Promise<void>;
  isRevoked(tokenId: string): Promise<boolean>;
}
