// Every queue message type and the handler that consumes it. src/index.ts hands this table to consumeQueue.
import { INGEST_MESSAGE } from "../kb/ingest.ts";
import { handleIngestMessage } from "../kb/queue.ts";
import type { HandlerTable } from "./queue.ts";

export const messageHandlers: HandlerTable = {
  [INGEST_MESSAGE]: handleIngestMessage,
};
