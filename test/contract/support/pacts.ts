// Where the consumer tests write their pacts, and the check that they equal the committed ones in contracts/.
import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MatchersV3 } from "@pact-foundation/pact";
import { expect } from "vitest";

export const CONTRACTS = join(import.meta.dirname, "../../../contracts");
export const PROVIDER = "voiceassist-api";
/** The chat socket's server frames (workers/chat-room.ts, built by src/conversations/chat-frames.ts). */
export const CHAT_PROVIDER = "voiceassist-chat-socket";
/** The kb-ingest queue's producer (src/kb/ingest.ts). */
export const INGEST_PROVIDER = "voiceassist-kb-ingest-queue";

/** `CONTRACTS_WRITE=1 npm run contracts:write` (or this variable on any run) rewrites contracts/ from the tests. */
export const writing = process.env.CONTRACTS_WRITE === "1";

/** A fresh directory for one test file's pact: Pact merges into an existing file, so never the committed one. */
export const scratchDir = () => mkdtemp(join(tmpdir(), "voiceassist-pact-"));

/**
 * The pact a test file wrote must equal the committed contracts/<file> (a consumer change that was not committed
 * fails here, as the provider verifies only the committed files), unless CONTRACTS_WRITE=1 asks to replace it.
 */
export async function expectCommitted(dir: string, file: string): Promise<void> {
  const written = join(dir, file);
  if (writing) {
    await mkdir(CONTRACTS, { recursive: true });
    await copyFile(written, join(CONTRACTS, file));
  } else {
    const committed = await readFile(join(CONTRACTS, file), "utf8").catch(() => "{}");
    const message = `contracts/${file} is not what the consumer tests write: run npm run contracts:write and commit it`;
    expect(JSON.parse(await readFile(written, "utf8")), message).toEqual(JSON.parse(committed));
  }
  await rm(dir, { recursive: true, force: true });
}

/** An ISO 8601 UTC time as the API writes it (Date.prototype.toISOString). */
export const isoTime = (example = "2026-12-01T09:30:00.000Z") =>
  MatchersV3.datetime("yyyy-MM-dd'T'HH:mm:ss.SSSX", example);

export const uuid = (example = "0b6f1c9e-4d2a-4f6b-9c1e-7a8d2e3f4b5c") => MatchersV3.uuid(example);

/** A JSON content type, with or without parameters. */
export const jsonType = (subtype: "json" | "problem+json" = "json") =>
  MatchersV3.regex(
    subtype === "json" ? "^application/json(;.*)?$" : "^application/problem\\+json(;.*)?$",
    `application/${subtype}`,
  );

/**
 * A value the provider state fills in: `{name}` in `template` is replaced by the value the state handler returns as
 * `name` (Pact writes it \${name}); the consumer test sees `example`.
 */
export const fromState = (template: string, example: string) =>
  MatchersV3.fromProviderState(
    template.replace(/\{(\w+)\}/g, (_, name: string) => `\${${name}}`),
    example,
  );

/** The Authorization header with the access token a provider state returns as `name`. */
export const bearer = (name: string, example: string) => fromState(`Bearer {${name}}`, `Bearer ${example}`);
