import { commonPasswords } from "./common-passwords.ts";

const PASSWORD_MIN = 12;
const PASSWORD_MAX = 128;

/** Why a password is refused, or undefined when it passes: length, common passwords, the email. */
export function passwordProblem(password: string, email?: string): string | undefined {
  const length = [...password].length;
  if (length < PASSWORD_MIN) return `must be at least ${PASSWORD_MIN} characters`;
  if (length > PASSWORD_MAX) return `must be at most ${PASSWORD_MAX} characters`;
  const lowered = password.toLowerCase();
  if (isCommon(lowered)) return "is too common: choose a password that is not on lists of common passwords";
  if (email) {
    const address = email.trim().toLowerCase();
    const local = address.split("@")[0] ?? "";
    if (
      lowered === address ||
      (local.length >= 4 && lowered.replace(/[^a-z0-9]/g, "") === local.replace(/[^a-z0-9]/g, ""))
    ) {
      return "must not be your email address";
    }
  }
  return undefined;
}

// "passwordpassword" and "password1234!" are as guessable as "password".
function isCommon(lowered: string): boolean {
  if (commonPasswords.has(lowered)) return true;
  const stem = lowered.replace(/[\d\W_]+$/, "");
  if (stem.length >= 4 && stem !== lowered && commonPasswords.has(stem)) return true;
  for (let size = 1; size <= lowered.length / 2; size++) {
    if (lowered.length % size !== 0) continue;
    const unit = lowered.slice(0, size);
    if (unit.repeat(lowered.length / size) === lowered) return size < 4 || commonPasswords.has(unit);
  }
  return false;
}
