// Every queue message type and the handler that consumes it.
import { INGEST_MESSAGE } from "../src/kb/ingest.ts";
import { handleIngestMessage } from "../src/kb/queue.ts";
import { messageHandlers } from "./queue-consumer.ts";

messageHandlers.set(INGEST_MESSAGE, handleIngestMessage);
