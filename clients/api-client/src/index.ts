export { type ChatEvent, ChatFrameError, parseChatEvent } from "./chat-events.ts";
export { type ClientOptions, VoiceAssistClient } from "./client.ts";
export { ApiProblem, type FieldError, type ProblemBody } from "./problem.ts";
export type * from "./types.ts";
