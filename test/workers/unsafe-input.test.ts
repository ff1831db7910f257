import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { findUnsafeJson, MAX_JSON_DEPTH } from "../../src/input/unsafe.ts";
import { app, call, received, serve, stack } from "./harness.ts";
import { db, freshIp, PASSWORD, signedInUser, type TestUser, uniqueEmail } from "./identity-helpers.ts";

const nested = (levels: number): unknown => {
  let value: unknown = "leaf";
  for (let i = 0; i < levels; i++) value = { next: value };
  return value;
};

const fieldsOf = (body: { errors?: { field: string }[] }) => body.errors?.map((e) => e.field);

describe("findUnsafeJson", () => {
  it("names the field holding a NUL, in values and keys, at any depth", () => {
    expect(findUnsafeJson({ a: [{ b: "x\u0000y" }] }, "body")?.field).toBe("body.a.0.b");
    expect(findUnsafeJson({ a: { "k\u0000": 1 } }, "body")?.field).toBe("body.a");
    expect(findUnsafeJson({ a: ["clean", 1, null, true] }, "body")).toBeUndefined();
  });

  it("refuses nesting beyond the cap without overflowing the stack", () => {
    expect(findUnsafeJson(nested(MAX_JSON_DEPTH), "body")).toBeUndefined();
    expect(findUnsafeJson(nested(MAX_JSON_DEPTH + 1), "body")?.message).toContain(`${MAX_JSON_DEPTH} levels`);
    expect(findUnsafeJson(nested(100_000), "body")?.message).toContain("nested deeper");
  });
});

describe("input no route may receive gets a 422 naming the field", () => {
  let user: TestUser;
  let admin: TestUser;
  beforeAll(async () => {
    [user, admin] = await Promise.all([signedInUser(), signedInUser("admin")]);
  });

  it("a NUL in a JSON field, anonymously (register)", async () => {
    const res = await call("POST", "/api/auth/register", {
      json: { email: uniqueEmail(), password: PASSWORD, full_name: "Ann\u0000Smith" },
      ip: freshIp(),
    });
    expect(res.status).toBe(422);
    expect(fieldsOf(res.body)).toEqual(["body.full_name"]);
    expect(res.body.detail).toContain("U+0000");
  });

  it("a NUL in a query parameter", async () => {
    const res = await call("GET", "/api/conversations?q=%00", { token: user.access });
    expect(res.status).toBe(422);
    expect(fieldsOf(res.body)).toEqual(["query.q"]);
  });

  it("a NUL in a path parameter, on every flag route shape", async () => {
    for (const [method, path] of [
      ["GET", "/api/admin/flags/%00"],
      ["DELETE", "/api/admin/flags/%00"],
      ["GET", "/api/admin/flags/%00/history"],
      ["POST", "/api/admin/flags/%00/toggle"],
    ] as const) {
      const res = await call(method, path, { token: admin.access, ...(method === "POST" ? { json: {} } : {}) });
      expect(res.status, `${method} ${path}`).toBe(422);
      expect(fieldsOf(res.body), `${method} ${path}`).toEqual(["path.key"]);
    }
  });

  it("a NUL in a message and in client_message_id", async () => {
    const created = await call("POST", "/api/conversations", { token: user.access, json: { title: "t" } });
    expect(created.status).toBe(201);
    for (const json of [{ content: "a\u0000b" }, { content: "ok", client_message_id: "id\u0000" }]) {
      const res = await call("POST", `/api/conversations/${created.body.id}/messages`, { token: user.access, json });
      expect(res.status).toBe(422);
      expect(fieldsOf(res.body)?.[0]).toMatch(/^body\.(content|client_message_id)$/);
    }
  });

  it("JSON bodies that are not objects: null, arrays, numbers, strings (login included)", async () => {
    for (const json of [null, [], 5, "text", true]) {
      const res = await call("POST", "/api/auth/login", { json, ip: freshIp() });
      expect(res.status, JSON.stringify(json)).toBe(422);
      expect(fieldsOf(res.body)).toEqual(["body"]);
    }
  });

  it("deep nesting (3,000 levels) in a flag's default value", async () => {
    const res = await call("POST", "/api/admin/flags", {
      token: admin.access,
      json: { key: `deep.${crypto.randomUUID().slice(0, 8)}`, type: "json", defaultValue: nested(3000) },
    });
    expect(res.status).toBe(422);
    expect(res.body.detail).toContain("nested deeper");
  });
});

describe("names people read in lists cannot hide characters", () => {
  it("refuses bidi overrides, zero-width spaces and a BOM in full names and API key names; keeps ZWNJ", async () => {
    for (const full_name of ["Ann\u202EhtimS", "Ann\u200BSmith", "Ann\uFEFFSmith"]) {
      const res = await call("POST", "/api/auth/register", {
        json: { email: uniqueEmail(), password: PASSWORD, full_name },
        ip: freshIp(),
      });
      expect(res.status).toBe(422);
      expect(fieldsOf(res.body)).toEqual(["body.full_name"]);
    }
    const persian = await call("POST", "/api/auth/register", {
      json: { email: uniqueEmail(), password: PASSWORD, full_name: "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645" },
      ip: freshIp(),
    });
    expect(persian.status).toBe(201);
    const user = await signedInUser();
    const key = await call("POST", "/api/users/me/api-keys", { token: user.access, json: { name: "ci\u202Ekey" } });
    expect(key.status).toBe(422);
    expect(fieldsOf(key.body)).toEqual(["body.name"]);
  });
});

describe("responses that carry secrets are never cached", () => {
  it("login, refresh and API key creation say Cache-Control: no-store", async () => {
    const user = await signedInUser();
    const login = await call("POST", "/api/auth/login", {
      json: { email: user.email, password: PASSWORD },
      ip: freshIp(),
    });
    const refresh = await call("POST", "/api/auth/refresh", { json: { refresh_token: login.body.refresh_token } });
    const key = await call("POST", "/api/users/me/api-keys", { token: user.access, json: { name: "cli" } });
    for (const res of [login, refresh, key]) expect(res.headers.get("cache-control")).toBe("no-store");
    expect(key.status).toBe(201);
    // 32 random bytes in base64url: 43 characters from the URL-safe alphabet.
    expect(key.body.key).toMatch(/^va_k_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  });
});

describe("CORS", () => {
  it("sends no CORS header at all, credentials included, to an origin that is not allowed", async () => {
    const overrides = { CORS_ORIGINS: "https://app.example.org" };
    const other = await serve(app, "/health", { headers: { origin: "https://evil.example" } }, overrides);
    expect([...other.headers.keys()].filter((h) => h.startsWith("access-control-"))).toEqual([]);
    const allowed = await serve(app, "/health", { headers: { origin: "https://app.example.org" } }, overrides);
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example.org");
    expect(allowed.headers.get("access-control-allow-credentials")).toBe("true");
  });
});

// Failing on purpose: a trigger refuses any row whose JSON carries the marker, as a real constraint would.
const MARKER = "fail-on-purpose";

describe("a failed query leaves nothing of its data in logs or Sentry", () => {
  const tables = ["users", "messages", "api_keys"];
  beforeAll(async () => {
    await db.execute(
      sql.raw(`create or replace function test_fail_on_marker() returns trigger language plpgsql as $$
        begin
          if to_jsonb(new)::text like '%${MARKER}%' then raise exception 'refused on purpose'; end if;
          return new;
        end $$`),
    );
    for (const table of tables) {
      await db.execute(
        sql.raw(`create or replace trigger test_fail_${table} before insert on ${table}
          for each row execute function test_fail_on_marker()`),
      );
    }
  });
  afterAll(async () => {
    for (const table of tables) await db.execute(sql.raw(`drop trigger if exists test_fail_${table} on ${table}`));
  });

  async function logsDuring(action: () => Promise<unknown>): Promise<string> {
    const lines: string[] = [];
    const capture = (...args: unknown[]) => {
      lines.push(args.map(String).join(" "));
    };
    const spies = (["log", "warn", "error"] as const).map((level) =>
      vi.spyOn(console, level).mockImplementation(capture),
    );
    try {
      await action();
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    return lines.join("\n");
  }

  it("register: no password hash, salt, email or name; the SQLSTATE is there; Sentry gets none of it", async () => {
    const email = uniqueEmail(MARKER);
    const dsn = `${stack().receiverUrl.replace("http://", "http://publickey@")}/44`;
    let status = 0;
    const logs = await logsDuring(async () => {
      const res = await serve(
        app,
        "/api/auth/register",
        {
          method: "POST",
          headers: { "content-type": "application/json", "cf-connecting-ip": freshIp() },
          body: JSON.stringify({ email, password: PASSWORD, full_name: `Name ${MARKER}` }),
        },
        { SENTRY_DSN: dsn, LOG_LEVEL: "debug" },
      );
      status = res.status;
    });
    expect(status).toBe(500);
    expect(logs).toContain("P0001");
    for (const secret of [MARKER, "params", "pbkdf2", email.split("@")[0]]) {
      expect(logs).not.toContain(secret);
    }
    const reports = (await received()).filter((r) => r.path.startsWith("/api/44/"));
    expect(reports.length).toBeGreaterThan(0);
    for (const report of reports) {
      expect(report.body).not.toContain(MARKER);
      expect(report.body).not.toContain("params");
    }
  });

  it("a question and an API key name: the user's text never reaches the log", async () => {
    const user = await signedInUser();
    const created = await call("POST", "/api/conversations", { token: user.access, json: { title: "t" } });
    const logs = await logsDuring(async () => {
      const asked = await call("POST", `/api/conversations/${created.body.id}/messages`, {
        token: user.access,
        json: { content: `What dose for ${MARKER} patient Jane?`, client_message_id: crypto.randomUUID() },
      });
      expect(asked.status, JSON.stringify(asked.body)).toBe(500);
      const key = await call("POST", "/api/users/me/api-keys", { token: user.access, json: { name: MARKER } });
      expect(key.status).toBe(500);
    });
    expect(logs).toContain("P0001");
    expect(logs).not.toContain(MARKER);
    expect(logs).not.toContain("Jane");
    expect(logs).not.toContain("params");
  });
});
