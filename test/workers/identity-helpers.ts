import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { createDb } from "../../src/db/client.ts";
import { loadConfig } from "../../src/env.ts";
import { call } from "./harness.ts";

const loaded = loadConfig(env);
if (!loaded.ok) throw new Error(`test environment is invalid: ${JSON.stringify(loaded.issues)}`);
export const config = loaded.config;
export const db = createDb(config);

export const PASSWORD = "Granite-Harbour-Lantern-42";

let counter = 0;
/** A fresh address per call: registration is limited to 5 per hour per IP. */
export const freshIp = () => `198.51.100.${(counter++ % 250) + 1}`;
export const uniqueEmail = (tag = "user") => `${tag}.${crypto.randomUUID().slice(0, 8)}@example.test`;

export interface TestUser {
  id: string;
  email: string;
  password: string;
  access: string;
  refresh: string;
}

/** Registers and signs in a user; `role` other than user is set directly in the database. */
export async function signedInUser(role: "user" | "viewer" | "admin" = "user"): Promise<TestUser> {
  const email = uniqueEmail(role);
  const registered = await call("POST", "/api/auth/register", {
    json: { email, password: PASSWORD, full_name: `Test ${role}` },
    ip: freshIp(),
  });
  if (registered.status !== 201) throw new Error(`register failed: ${JSON.stringify(registered.body)}`);
  if (role !== "user") await db.execute(sql`update users set role = ${role} where id = ${registered.body.id}`);
  const login = await call("POST", "/api/auth/login", { json: { email, password: PASSWORD }, ip: freshIp() });
  if (login.status !== 200) throw new Error(`login failed: ${JSON.stringify(login.body)}`);
  return {
    id: registered.body.id,
    email,
    password: PASSWORD,
    access: login.body.access_token,
    refresh: login.body.refresh_token,
  };
}

/** Audit rows for a target, newest first. */
export async function auditFor(targetId: string) {
  const result = (await db.execute(
    sql`select action, outcome, actor_type, actor_id, ip, user_agent, request_id, trace_id from audit_log where target_id = ${targetId} order by seq desc`,
  )) as unknown as { rows: Record<string, string>[] };
  return result.rows;
}
