// What the client reads from the API: only the fields it relies on, each pinned by the contract
// (contracts/voiceassist-web-client-voiceassist-api.json), so the provider may add fields freely.

export type Role = "user" | "viewer" | "admin";

export interface Tokens {
  access_token: string;
  refresh_token: string;
  token_type: "Bearer";
  /** Seconds the access token lives. */
  expires_in: number;
  refresh_expires_in: number;
  user: { id: string; email: string; role: Role };
}

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  page_size: number;
}

export interface Conversation {
  id: string;
  title: string;
  folder: string | null;
  archived: boolean;
  created_at: string;
  updated_at: string;
}

export interface Citation {
  index: number;
  document_id: string;
  title: string;
  chunk_id: string;
  snippet: string;
  score: number;
}

export interface Message {
  id: string;
  conversation_id: string;
  turn: number;
  role: "user" | "assistant";
  version: number;
  active: boolean;
  content: string;
  client_message_id: string | null;
  reply_to: string | null;
  citations: Citation[];
  created_at: string;
}

export interface Answer {
  content: string;
  citations: Citation[];
  outcome: "answered" | "no_sources";
  provider: string;
  model: string;
  usage: { prompt_tokens: number; completion_tokens: number };
  latency_ms: number;
  disclaimer: string;
}

export interface Turn {
  user_message: Message;
  assistant_message: Message;
  answer: Answer;
  replayed: boolean;
}

export interface SendMessage {
  content: string;
  /** The idempotency key: sending it again returns the first result. */
  client_message_id: string;
  filters?: { source_type?: string; tags?: string[]; document_ids?: string[] };
}

export type DocumentStatus = "queued" | "processing" | "ready" | "failed";

export interface KbDocument {
  id: string;
  title: string;
  source_type: string;
  tags: string[];
  mime_type: string;
  byte_size: number;
  status: DocumentStatus;
  chunk_count: number;
  created_at: string;
  updated_at: string;
  status_url: string;
}

export interface FlagResult {
  enabled: boolean;
  value: unknown;
  variant: { name: string; enabled: boolean };
  reason: string;
  version: number;
}

export interface FlagEvaluation {
  /** The rule set's version. */
  version: number;
  flags: Record<string, FlagResult>;
}
