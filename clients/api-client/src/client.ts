// A reference client of the VoiceAssist API over fetch: no framework, so a browser app, a worker or Node can use it.
import { problemOf } from "./problem.ts";
import type { Conversation, FlagEvaluation, KbDocument, Page, SendMessage, Tokens, Turn } from "./types.ts";

export interface ClientOptions {
  /** The API's origin, e.g. https://voiceassist.example or npm run dev's http://127.0.0.1:8787. */
  baseUrl: string;
  /** Defaults to the global fetch (a test or an app may wrap it). */
  fetch?: typeof fetch;
  /** Tokens kept from an earlier sign-in. */
  tokens?: Pick<Tokens, "access_token" | "refresh_token">;
  /** Told every new pair of tokens (sign-in, refresh), e.g. to keep them for the next page load. */
  onTokens?: (tokens: Tokens) => void;
}

type Query = Record<string, string | number | boolean | undefined>;

export class VoiceAssistClient {
  private readonly baseUrl: string;
  private readonly fetcher: typeof fetch;
  private tokens: Pick<Tokens, "access_token" | "refresh_token"> | undefined;
  private readonly onTokens: ((tokens: Tokens) => void) | undefined;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.fetcher = options.fetch ?? ((input, init) => fetch(input, init));
    this.tokens = options.tokens;
    this.onTokens = options.onTokens;
  }

  /** Signs in; later calls act as this user. */
  async signIn(email: string, password: string): Promise<Tokens> {
    return this.keep(
      await this.request<Tokens>("POST", "/api/auth/login", { body: { email, password }, anonymous: true }),
    );
  }

  /** Trades the refresh token for new tokens (the old one is spent). */
  async refresh(): Promise<Tokens> {
    if (!this.tokens) throw new Error("Not signed in: nothing to refresh.");
    const body = { refresh_token: this.tokens.refresh_token };
    return this.keep(await this.request<Tokens>("POST", "/api/auth/refresh", { body, anonymous: true }));
  }

  createConversation(input: { title?: string; folder?: string } = {}): Promise<Conversation> {
    return this.request("POST", "/api/conversations", { body: input });
  }

  listConversations(query: { q?: string; archived?: boolean; page?: number; page_size?: number } = {}) {
    return this.request<Page<Conversation>>("GET", "/api/conversations", { query });
  }

  /** Asks a question in a conversation and waits for the whole answer (JSON, not a stream). */
  sendMessage(conversationId: string, message: SendMessage): Promise<Turn> {
    const path = `/api/conversations/${encodeURIComponent(conversationId)}/messages`;
    return this.request("POST", path, { body: { ...message, stream: false } });
  }

  /** Knowledge-base documents (admins and viewers), newest first. */
  listDocuments(query: { q?: string; status?: string; tag?: string; page?: number; page_size?: number } = {}) {
    return this.request<Page<KbDocument>>("GET", "/api/admin/kb/documents", { query });
  }

  getDocument(id: string): Promise<KbDocument> {
    return this.request("GET", `/api/admin/kb/documents/${encodeURIComponent(id)}`);
  }

  /** Every flag for the signed-in caller (its overrides and targeting applied). */
  evaluateFlags(context: { properties?: Record<string, string> } = {}): Promise<FlagEvaluation> {
    return this.request("POST", "/api/flags/evaluate", { body: context });
  }

  private keep(tokens: Tokens): Tokens {
    this.tokens = { access_token: tokens.access_token, refresh_token: tokens.refresh_token };
    this.onTokens?.(tokens);
    return tokens;
  }

  /** One call; a non-2xx answer throws its problem (ApiProblem). */
  private async request<T>(
    method: string,
    path: string,
    options: { body?: unknown; query?: Query; anonymous?: boolean } = {},
  ): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (options.body !== undefined) headers["content-type"] = "application/json";
    if (!options.anonymous && this.tokens) headers.authorization = `Bearer ${this.tokens.access_token}`;
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) search.set(name, String(value));
    }
    const query = search.size ? `?${search}` : "";
    const res = await this.fetcher(`${this.baseUrl}${path}${query}`, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    if (!res.ok) throw await problemOf(res);
    return (await res.json()) as T;
  }
}
