import { describe, expect, it } from "vitest";
import { REDACTED, redact, redactText } from "../../src/observability/redact.ts";

describe("redact", () => {
  it.each([
    "password",
    "new_password",
    "access_token",
    "refresh_token",
    "Authorization",
    "cookie",
    "set-cookie",
    "email",
    "phone",
    "ssn",
    "dob",
    "date_of_birth",
    "mrn",
    "api_key",
    "X-API-Key",
    "client_secret",
  ])("masks %s", (key) => {
    expect(redact({ [key]: "value" })).toEqual({ [key]: REDACTED });
  });

  it("keeps ordinary fields and walks nested objects and arrays", () => {
    const input = { route: "/api/x", user: { id: "u1", email: "a@b.co" }, items: [{ token: "t" }, 3] };
    expect(redact(input)).toEqual({
      route: "/api/x",
      user: { id: "u1", email: REDACTED },
      items: [{ token: REDACTED }, 3],
    });
    expect(input.user.email).toBe("a@b.co");
  });

  it("masks e-mail addresses and bearer credentials inside text", () => {
    expect(redactText("failed for jane.doe@example.org with Bearer abc.def.ghi")).toBe(
      `failed for ${REDACTED} with Bearer ${REDACTED}`,
    );
  });

  it("survives cycles", () => {
    const a: Record<string, unknown> = { name: "a" };
    a.self = a;
    expect(redact(a)).toEqual({ name: "a", self: "[Truncated]" });
  });
});
