// The sessions `login` keeps, one per server URL, in a file only its owner can read.
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import type { CliIo } from "./command.ts";

export interface StoredSession {
  email: string;
  role: string;
  access_token: string;
  /** ISO time the access token expires. */
  access_expires_at: string;
  refresh_token: string;
  refresh_expires_at: string;
}

interface CredentialsFile {
  sessions: Record<string, StoredSession>;
}

/** VOICEASSIST_CREDENTIALS, else $XDG_CONFIG_HOME/voiceassist/credentials.json (~/.config when unset). */
export function credentialsPath(io: CliIo): string {
  if (io.env.VOICEASSIST_CREDENTIALS) return io.env.VOICEASSIST_CREDENTIALS;
  const configHome = io.env.XDG_CONFIG_HOME || join(io.env.HOME || homedir(), ".config");
  return join(configHome, "voiceassist", "credentials.json");
}

async function readAll(path: string): Promise<CredentialsFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { sessions: {} };
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as Partial<CredentialsFile>;
    return { sessions: parsed.sessions && typeof parsed.sessions === "object" ? parsed.sessions : {} };
  } catch {
    throw new Error(`${path} is not a credentials file (JSON); delete it and sign in again.`);
  }
}

async function writeAll(path: string, file: CredentialsFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // Written whole and renamed over the old one, so a crash never leaves half a file; 0600 from the start.
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  await chmod(temporary, 0o600);
  await rename(temporary, path);
}

export async function loadSession(io: CliIo, base: string): Promise<StoredSession | undefined> {
  const { sessions } = await readAll(credentialsPath(io));
  return Object.hasOwn(sessions, base) ? sessions[base] : undefined;
}

export async function saveSession(io: CliIo, base: string, session: StoredSession): Promise<void> {
  const path = credentialsPath(io);
  const file = await readAll(path);
  file.sessions[base] = session;
  await writeAll(path, file);
}

/** Forgets the session of `base`; the file goes when it holds no other. */
export async function forgetSession(io: CliIo, base: string): Promise<void> {
  const path = credentialsPath(io);
  const file = await readAll(path);
  if (!Object.hasOwn(file.sessions, base)) return;
  delete file.sessions[base];
  if (Object.keys(file.sessions).length === 0) await rm(path, { force: true });
  else await writeAll(path, file);
}
