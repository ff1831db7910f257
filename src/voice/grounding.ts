// What a voice model is told and may call, wherever it runs: in a VoiceSession (upstream relay) or on a
// client that connects to OpenAI itself with a client secret from POST /api/voice/realtime-session.

export const SEARCH_TOOL_NAME = "search_knowledge_base";

/** The Realtime function tool that looks passages up in the organisation's knowledge base. */
export const SEARCH_TOOL = {
  type: "function",
  name: SEARCH_TOOL_NAME,
  description:
    "Search the organisation's knowledge base (clinical protocols, guidelines and documents). Returns numbered passages with their titles. Call it before answering any clinical or factual question.",
  parameters: {
    type: "object",
    properties: {
      query: { type: "string", description: "What to look up, as a short self-contained question or phrase." },
      top_k: { type: "integer", minimum: 1, maximum: 10, description: "How many passages to return (default 5)." },
    },
    required: ["query"],
    additionalProperties: false,
  },
} as const;

/** The voice assistant's instructions; the disclaimer (RAG_MEDICAL_DISCLAIMER) sits on its own line. */
export function VOICE_INSTRUCTIONS(disclaimer: string): string {
  return [
    "You are VoiceAssist, a voice assistant for clinicians that answers from the organisation's knowledge base.",
    `Before answering any clinical or factual question, call ${SEARCH_TOOL_NAME} and answer only from the passages it returns; never answer from general knowledge and never guess.`,
    "Cite your sources by saying the title of each passage you rely on (for example: according to the Sepsis bundle).",
    "If the passages do not answer the question, say plainly that the knowledge base does not cover it.",
    "Speak briefly and clearly: short sentences, no lists or markup, numbers and units spelled out as they are said.",
    ...(disclaimer ? ["End every clinical answer with this medical disclaimer:", disclaimer] : []),
  ].join("\n");
}
