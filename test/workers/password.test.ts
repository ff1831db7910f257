import { describe, expect, it } from "vitest";
import { hashPassword, PASSWORD_ITERATIONS, verifyPassword } from "../../src/auth/password.ts";
import { passwordProblem } from "../../src/auth/password-policy.ts";

describe("password hashing", () => {
  it("stores algorithm and parameters in the hash and verifies", async () => {
    const hash = await hashPassword("correct horse battery staple");
    expect(hash).toMatch(new RegExp(`^pbkdf2-sha256\\$${PASSWORD_ITERATIONS}\\$[\\w-]{22}\\$[\\w-]{43}$`));
    expect(await verifyPassword("correct horse battery staple", hash)).toEqual({ ok: true, needsRehash: false });
    expect(await verifyPassword("correct horse battery stapl", hash)).toEqual({ ok: false, needsRehash: false });
  });

  it("salts: the same password hashes differently", async () => {
    expect(await hashPassword("same password here")).not.toBe(await hashPassword("same password here"));
  });

  it("asks for a rehash when the stored parameters are weaker", async () => {
    const weak = await hashPassword("upgrade me please", 1_000);
    expect(await verifyPassword("upgrade me please", weak)).toEqual({ ok: true, needsRehash: true });
    expect(await verifyPassword("wrong password!!", weak)).toEqual({ ok: false, needsRehash: false });
  });

  it.each([["garbage"], ["bcrypt$10$abc$def"], ["pbkdf2-sha256$x$abc$def"], ["pbkdf2-sha256$1000$***$def"]])(
    "refuses a malformed stored hash %s",
    async (stored) => {
      expect((await verifyPassword("anything at all", stored)).ok).toBe(false);
    },
  );
});

describe("password policy", () => {
  it.each([
    ["short", "must be at least 12 characters"],
    ["x".repeat(129), "must be at most 128 characters"],
    ["passwordpassword", "is too common"],
    ["qwertyuiop123", "is too common"],
    ["Password1234!", "is too common"],
    ["aaaaaaaaaaaaaa", "is too common"],
    ["1q2w3e4r5t6y", "is too common"],
    ["jane.doe@example.org", "must not be your email address"],
    ["Jane.Doe.Example", undefined],
  ])("%s → %s", (password, expected) => {
    const problem = passwordProblem(password, "jane.doe@example.org");
    if (expected) expect(problem).toContain(expected);
    else expect(problem).toBeUndefined();
  });

  it("rejects the email's local part as the password", () => {
    expect(passwordProblem("clinician.smith", "clinician.smith@hospital.example")).toContain("email");
  });

  it("counts characters, not UTF-16 units", () => {
    expect(passwordProblem("🔒🔒🔒🔒🔒🔒🔒🔒🔒🔒🔒", undefined)).toContain("at least 12");
  });
});
