// A small client of the platform's HTTP API for the benchmark: timeouts on every call, an admin session
// that refreshes its access token when it expires (a full run can outlast the 15-minute token).

export interface ApiResponse {
  status: number;
  json: Record<string, unknown>;
  text: string;
  ms: number;
}

export class ApiError extends Error {
  readonly response: ApiResponse;

  constructor(what: string, response: ApiResponse) {
    super(`${what}: ${response.status} ${response.text.slice(0, 500)}`);
    this.response = response;
  }
}

export interface RequestOptions {
  body?: string;
  contentType?: string;
  bearer?: string | null;
  timeoutMs?: number;
}

export class ApiClient {
  private accessToken: string | null = null;
  private refreshToken: string | null = null;

  readonly baseUrl: string;
  private readonly timeoutMs: number;

  constructor(baseUrl: string, timeoutMs: number) {
    this.baseUrl = baseUrl;
    this.timeoutMs = timeoutMs;
  }

  async raw(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse> {
    const headers: Record<string, string> = {};
    if (options.contentType) headers["content-type"] = options.contentType;
    const bearer = options.bearer === undefined ? this.accessToken : options.bearer;
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    const started = performance.now();
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers,
      body: options.body ?? null,
      signal: AbortSignal.timeout(options.timeoutMs ?? this.timeoutMs),
    });
    const text = await res.text();
    const ms = performance.now() - started;
    let json: Record<string, unknown> = {};
    try {
      json = text?.trimStart().startsWith("{") ? JSON.parse(text) : {};
    } catch {
      json = {};
    }
    return { status: res.status, json, text, ms };
  }

  /** A signed-in call; one refresh and retry on 401 (an expired access token). */
  async call(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse> {
    let res = await this.raw(method, path, options);
    if (res.status === 401 && this.refreshToken) {
      await this.refresh();
      res = await this.raw(method, path, options);
    }
    return res;
  }

  async json(method: string, path: string, expected: number, options: RequestOptions = {}) {
    const res = await this.call(method, path, options);
    if (res.status !== expected) throw new ApiError(`${method} ${path}`, res);
    return res.json;
  }

  async bootstrap(token: string, admin: { email: string; password: string; full_name: string }): Promise<number> {
    const res = await this.raw("POST", "/api/admin/bootstrap", {
      bearer: token,
      contentType: "application/json",
      body: JSON.stringify(admin),
    });
    if (res.status !== 201 && res.status !== 409) throw new ApiError("POST /api/admin/bootstrap", res);
    return res.status;
  }

  async login(email: string, password: string): Promise<void> {
    const res = await this.raw("POST", "/api/auth/login", {
      bearer: null,
      contentType: "application/json",
      body: JSON.stringify({ email, password }),
    });
    if (res.status !== 200) throw new ApiError("POST /api/auth/login", res);
    this.accessToken = String(res.json.access_token);
    this.refreshToken = String(res.json.refresh_token);
  }

  private async refresh(): Promise<void> {
    const res = await this.raw("POST", "/api/auth/refresh", {
      bearer: null,
      contentType: "application/json",
      body: JSON.stringify({ refresh_token: this.refreshToken }),
    });
    if (res.status !== 200) throw new ApiError("POST /api/auth/refresh", res);
    this.accessToken = String(res.json.access_token);
    this.refreshToken = String(res.json.refresh_token);
  }
}
