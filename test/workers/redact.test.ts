import { describe, expect, it } from "vitest";
import { describeError, safeErrorMessage } from "../../src/observability/errors.ts";
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

describe("describeError and safeErrorMessage", () => {
  const databaseError = () => {
    const cause = Object.assign(new Error('invalid input syntax for type uuid: "jane-secret"'), {
      code: "22P02",
      severity: "ERROR",
      table: "users",
      detail: "Key (email)=(jane@example.org)",
    });
    return new Error('Failed query: insert into "users" values ($1)\nparams: jane-secret,pbkdf2-sha256$1$salt$hash', {
      cause,
    });
  };

  it("keeps names, SQLSTATE, object names and frames; drops statements, parameters, values and details", () => {
    const text = JSON.stringify(describeError(databaseError()));
    expect(text).toContain("22P02");
    expect(text).toContain("users");
    for (const leak of ["jane", "pbkdf2", "params", "insert"]) expect(text).not.toContain(leak);
  });

  it("gives a person one line: a database error's SQLSTATE, any other error's message", () => {
    expect(safeErrorMessage(databaseError())).toBe("database error (SQLSTATE 22P02)");
    expect(safeErrorMessage(new Error("The PDF is encrypted"))).toBe("The PDF is encrypted");
  });
});
