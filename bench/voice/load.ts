// The load of one bench:voice step: N Realtime WebSocket sessions open at once, each sending 20 ms frames of
// pcm16 24 kHz audio in real time (`input_audio_buffer.append`, paced by timers against a fixed schedule,
// never ahead of it) and timing every frame's echo (`response.output_audio.delta`, event_id
// `echo.<the frame's event_id>`), whether the path is client → echo upstream (the baseline) or
// client → Worker → VoiceSession Durable Object → echo upstream → Durable Object → client.
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { percentile } from "../ingest/summary.ts";
import { ECHO_PREFIX } from "./echo-upstream.ts";

export const SAMPLE_RATE = 24_000;
export const FRAME_MS = 20;
const SAMPLES_PER_FRAME = (SAMPLE_RATE * FRAME_MS) / 1000;
const LOOP_RESOLUTION_MS = 10;

export interface StepOptions {
  /** ws:// URL of the Realtime endpoint. */
  url: string;
  /** Per connection (a fresh bearer token for the Worker, the API key for the upstream). */
  headers: () => Record<string, string>;
  sessions: number;
  seconds: number;
  /** Handshakes in flight at once while the sessions open. */
  connectConcurrency: number;
  connectTimeoutMs: number;
  /** How long to wait for the last echoes after the last frame. */
  drainMs: number;
}

export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface StepResult {
  sessions: number;
  connected: number;
  connect_failures: string[];
  /** Upgrade request to the first `session.created`. */
  connect_ms: Summary;
  frames: { planned: number; sent: number; echoed: number; lost: number; duplicate: number; corrupt: number };
  /** Send to echo of each frame, ms. */
  rtt_ms: Summary;
  /** Median RTT of the first and of the last third of each session's frames (a growing queue shows here). */
  rtt_p50_first_third_ms: number;
  rtt_p50_last_third_ms: number;
  /** Per second of sending (by send time): [p50, p99, max] RTT, ms. */
  rtt_by_second: [number, number, number][];
  /** How late frames left against their schedule (the client's own lag), ms. */
  send_late_ms: Summary;
  /** This process's event-loop delay during the step, ms. */
  event_loop_delay_p99_ms: number;
  /** Up to 10 frames sent and never echoed: [session, frame]. */
  lost_samples: [number, number][];
  /** `error` events received, by code. */
  errors: Record<string, number>;
  error_samples: string[];
  /** Sessions closed by the other side before the client closed them. */
  closes: { code: number; reason: string }[];
  /** From the first frame to the last echo (or the drain deadline), s. */
  traffic_seconds: number;
}

const round = (n: number) => Math.round(n * 100) / 100;

export function summarise(values: ArrayLike<number>): Summary {
  const sorted = Array.from(values).sort((a, b) => a - b);
  const at = (p: number) => round(percentile(sorted, p));
  return { n: sorted.length, p50: at(50), p90: at(90), p99: at(99), max: at(100) };
}

/** 20 ms of a quiet 440 Hz tone, base64: what every frame carries (the echo must bring back exactly this). */
function frameAudio(): string {
  const pcm = Buffer.alloc(SAMPLES_PER_FRAME * 2);
  for (let i = 0; i < SAMPLES_PER_FRAME; i++) {
    pcm.writeInt16LE(Math.round(3000 * Math.sin((2 * Math.PI * 440 * i) / SAMPLE_RATE)), 2 * i);
  }
  return pcm.toString("base64");
}
const AUDIO = frameAudio();

class Session {
  ws: WebSocket | undefined;
  connectMs: number | undefined;
  sentAt: Float64Array;
  echoAt: Float64Array;
  sent = 0;
  closing = false;
  closed: Promise<void> | undefined;
  echoCount = 0;
  readonly frames: number;
  readonly step: StepTally;
  private timer: NodeJS.Timeout | undefined;

  constructor(frames: number, step: StepTally) {
    this.frames = frames;
    this.step = step;
    this.sentAt = new Float64Array(frames).fill(Number.NaN);
    this.echoAt = new Float64Array(frames).fill(Number.NaN);
  }

  /** Opens the socket and resolves at `session.created`. */
  open(url: string, headers: Record<string, string>, timeoutMs: number): Promise<void> {
    const started = performance.now();
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    this.ws = ws;
    this.closed = new Promise((resolve) => ws.once("close", () => resolve()));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`no session.created within ${timeoutMs} ms`)), timeoutMs);
      const fail = (error: Error) => {
        clearTimeout(timer);
        ws.terminate();
        reject(error);
      };
      ws.once("unexpected-response", (_req, res) => fail(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
      ws.on("error", (error) => fail(error));
      ws.on("close", (code, reason) => {
        if (!this.closing) this.step.closes.push({ code, reason: reason.toString().slice(0, 200) });
        fail(new Error(`closed (${code}) before session.created`));
      });
      ws.on("message", (data) => {
        const at = performance.now();
        const text = data.toString();
        // Echoes first and cheaply: one per frame.
        if (text.includes(`"event_id":"${ECHO_PREFIX}f`)) return this.onEcho(text, at);
        const event = JSON.parse(text) as { type: string; error?: { code?: string; message?: string } };
        if (event.type === "session.created" && this.connectMs === undefined) {
          this.connectMs = at - started;
          clearTimeout(timer);
          resolve();
        } else if (event.type === "error") {
          const code = event.error?.code ?? "unknown";
          this.step.errors[code] = (this.step.errors[code] ?? 0) + 1;
          if (this.step.errorSamples.length < 5) this.step.errorSamples.push(`${code}: ${event.error?.message ?? ""}`);
        }
      });
    });
  }

  private onEcho(text: string, at: number): void {
    const event = JSON.parse(text) as { event_id: string; delta?: string };
    const k = Number(event.event_id.slice(ECHO_PREFIX.length + 1));
    if (!(k >= 0 && k < this.frames) || Number.isNaN(this.sentAt[k] as number)) return void this.step.corrupt++;
    if (event.delta !== AUDIO) this.step.corrupt++;
    if (!Number.isNaN(this.echoAt[k] as number)) return void this.step.duplicate++;
    this.echoAt[k] = at;
    this.echoCount++;
    this.step.lastEchoAt = Math.max(this.step.lastEchoAt, at);
  }

  /** Sends frame k at start + k·20 ms; a late timer sends every frame that is due (as a capture buffer would). */
  pace(start: number): void {
    const tick = () => {
      const now = performance.now();
      while (this.sent < this.frames && start + this.sent * FRAME_MS <= now) {
        if (this.ws?.readyState !== WebSocket.OPEN) return;
        this.step.late.push(now - (start + this.sent * FRAME_MS));
        this.sentAt[this.sent] = performance.now();
        this.ws.send(`{"type":"input_audio_buffer.append","event_id":"f${this.sent}","audio":"${AUDIO}"}`);
        this.sent++;
      }
      if (this.sent < this.frames) this.timer = setTimeout(tick, start + this.sent * FRAME_MS - performance.now());
    };
    this.timer = setTimeout(tick, start - performance.now());
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.closing = true;
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    ws.close(1000, "bench done");
    const gone = await Promise.race([this.closed?.then(() => true), sleep(5_000).then(() => false)]);
    if (!gone) ws.terminate();
  }
}

interface StepTally {
  errors: Record<string, number>;
  errorSamples: string[];
  closes: { code: number; reason: string }[];
  late: number[];
  corrupt: number;
  duplicate: number;
  lastEchoAt: number;
}

/** One step: open N sessions, send `seconds` of audio on each at once, wait for the echoes, close. */
export async function runStep(options: StepOptions): Promise<StepResult> {
  const frames = Math.round((options.seconds * 1000) / FRAME_MS);
  const tally: StepTally = {
    errors: {},
    errorSamples: [],
    closes: [],
    late: [],
    corrupt: 0,
    duplicate: 0,
    lastEchoAt: 0,
  };
  const sessions = Array.from({ length: options.sessions }, () => new Session(frames, tally));
  const connectFailures: string[] = [];
  try {
    let next = 0;
    const opener = async () => {
      while (next < sessions.length) {
        const session = sessions[next++] as Session;
        await session
          .open(options.url, options.headers(), options.connectTimeoutMs)
          .catch((error: Error) => connectFailures.push(error.message));
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.connectConcurrency, sessions.length) }, opener));
    const open = sessions.filter((s) => s.connectMs !== undefined);

    const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    loop.enable();
    // Frames of the sessions are spread evenly over the 20 ms period, as independent callers' would be.
    const start = performance.now() + 100;
    open.forEach((s, i) => {
      s.pace(start + (i * FRAME_MS) / open.length);
    });
    const lastFrameAt = start + frames * FRAME_MS;
    await sleep(lastFrameAt - performance.now());
    const drainUntil = performance.now() + options.drainMs;
    while (performance.now() < drainUntil && open.some((s) => s.echoCount < s.sent || s.sent < frames)) {
      await sleep(50);
    }
    loop.disable();

    const rtts: number[] = [];
    const early: number[] = [];
    const lateThird: number[] = [];
    const bySecond: number[][] = Array.from({ length: Math.ceil(options.seconds) }, () => []);
    for (const s of open) {
      for (let k = 0; k < frames; k++) {
        const rtt = (s.echoAt[k] as number) - (s.sentAt[k] as number);
        if (Number.isNaN(rtt)) continue;
        rtts.push(rtt);
        bySecond[Math.min(bySecond.length - 1, Math.floor((k * FRAME_MS) / 1000))]?.push(rtt);
        if (k < frames / 3) early.push(rtt);
        else if (k >= (2 * frames) / 3) lateThird.push(rtt);
      }
    }
    const lostSamples: [number, number][] = [];
    open.forEach((s, i) => {
      for (let k = 0; k < s.sent && lostSamples.length < 10; k++) {
        if (Number.isNaN(s.echoAt[k] as number)) lostSamples.push([i, k]);
      }
    });
    const sent = open.reduce((n, s) => n + s.sent, 0);
    const echoed = open.reduce((n, s) => n + s.echoCount, 0);
    return {
      sessions: options.sessions,
      connected: open.length,
      connect_failures: connectFailures.slice(0, 5),
      connect_ms: summarise(open.map((s) => s.connectMs as number)),
      frames: {
        planned: frames * options.sessions,
        sent,
        echoed,
        lost: sent - echoed,
        duplicate: tally.duplicate,
        corrupt: tally.corrupt,
      },
      rtt_ms: summarise(rtts),
      rtt_p50_first_third_ms: summarise(early).p50,
      rtt_p50_last_third_ms: summarise(lateThird).p50,
      rtt_by_second: bySecond.map((values) => {
        const t = summarise(values);
        return [t.p50, t.p99, t.max];
      }),
      send_late_ms: summarise(tally.late),
      // The histogram holds whole timer intervals: the lag is what exceeds the resolution.
      event_loop_delay_p99_ms: round(Math.max(0, loop.percentile(99) / 1e6 - LOOP_RESOLUTION_MS)),
      lost_samples: lostSamples,
      errors: tally.errors,
      error_samples: tally.errorSamples,
      closes: tally.closes,
      traffic_seconds: round((Math.max(tally.lastEchoAt, lastFrameAt) - start) / 1000),
    };
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
  }
}
