import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env.ts";
import type { Config } from "../config.ts";
import { enforceRateLimit, type RateLimitRuleName } from "../rate-limit/limits.ts";

const ruleVariable = {
  register: "RATE_LIMIT_REGISTER",
  login: "RATE_LIMIT_LOGIN",
  refresh: "RATE_LIMIT_REFRESH",
} as const satisfies Record<RateLimitRuleName, keyof Config>;

/**
 * The caller's address as Cloudflare saw it, as a rate-limit key: an IPv4 address, or the /64 of an
 * IPv6 one. Without the header (only outside Cloudflare) every caller shares the key "unknown".
 */
export const clientIpKey = (c: Context<AppEnv>): string => addressKey(c.req.header("cf-connecting-ip") ?? "unknown");

// An IPv6 client usually holds a whole /64, so counting single addresses would let it rotate past any limit.
export function addressKey(ip: string): string {
  if (!ip.includes(":") || ip.includes(".")) return ip; // IPv4, or IPv4-mapped IPv6
  const [head = "", tail] = ip.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups =
    tail === undefined ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(":")}::/64`;
}

/** Answers 429 with Retry-After once the key `keyOf` gives has used up RATE_LIMIT_<RULE>. */
export const rateLimit = (rule: RateLimitRuleName, keyOf: (c: Context<AppEnv>) => string | Promise<string>) =>
  createMiddleware<AppEnv>(async (c, next) => {
    await enforceRateLimit(c.env, rule, await keyOf(c), c.var.config[ruleVariable[rule]]);
    await next();
  });
