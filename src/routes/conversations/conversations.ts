import { createRoute, z } from "@hono/zod-openapi";
import { exportMarkdown } from "../../conversations/export.ts";
import {
  createConversation,
  deleteConversation,
  listConversations,
  ownConversation,
  thread,
  updateConversation,
} from "../../conversations/store.ts";
import { usageTotals } from "../../costs/usage-store.ts";
import { createDb } from "../../db/client.ts";
import { principalOf, requireUser } from "../../middleware/auth.ts";
import { createRouter, jsonBody, jsonResponse, PageQuery, pageOf, problem, signedIn } from "../router.ts";
import { Conversation, conversationJson, Folder, IdParam, Title, Usage } from "./schemas.ts";

// Conversations themselves: start, list, read (with usage), rename or file, delete, export.

export const conversationRecordRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/api/conversations",
      tags: ["conversations"],
      summary: "Start a conversation",
      security: signedIn,
      middleware: [requireUser] as const,
      request: {
        body: jsonBody(z.strictObject({ title: Title.optional(), folder: Folder.nullable().optional() })),
      },
      responses: { 201: jsonResponse("The new conversation", Conversation), 401: problem("Not signed in") },
    }),
    async (c) => {
      const row = await createConversation(createDb(c.var.config), principalOf(c).userId, c.req.valid("json"));
      return c.json(conversationJson(row), 201);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/conversations",
      tags: ["conversations"],
      summary: "List your conversations, newest activity first",
      security: signedIn,
      middleware: [requireUser] as const,
      request: {
        query: z
          .object({
            q: z.string().trim().min(1).max(200).optional().describe("search in titles"),
            archived: z
              .enum(["true", "false"])
              .optional()
              .transform((v) => (v === undefined ? undefined : v === "true")),
            folder: Folder.optional(),
          })
          .extend(PageQuery.shape),
      },
      responses: {
        200: jsonResponse("A page of conversations", pageOf(Conversation)),
        401: problem("Not signed in"),
      },
    }),
    async (c) => {
      const { q, archived, folder, page, page_size } = c.req.valid("query");
      const { rows, total } = await listConversations(createDb(c.var.config), principalOf(c).userId, {
        q,
        archived,
        folder,
        page,
        pageSize: page_size,
      });
      return c.json({ items: rows.map(conversationJson), total, page, page_size }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/conversations/{id}",
      tags: ["conversations"],
      summary: "A conversation, with its model usage and cost",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: IdParam },
      responses: {
        200: jsonResponse("The conversation", Conversation.extend({ usage: Usage })),
        404: problem("No such conversation (or not yours)"),
      },
    }),
    async (c) => {
      const db = createDb(c.var.config);
      const { userId } = principalOf(c);
      const { id } = c.req.valid("param");
      const row = await ownConversation(db, userId, id);
      return c.json({ ...conversationJson(row), usage: await usageTotals(db, { userId, conversationId: id }) }, 200);
    },
  )
  .openapi(
    createRoute({
      method: "patch",
      path: "/api/conversations/{id}",
      tags: ["conversations"],
      summary: "Rename, file in a folder (null: none), archive or unarchive",
      security: signedIn,
      middleware: [requireUser] as const,
      request: {
        params: IdParam,
        body: jsonBody(
          z
            .strictObject({
              title: Title.optional(),
              folder: Folder.nullable().optional(),
              archived: z.boolean().optional(),
            })
            .refine((v) => Object.keys(v).length > 0, "give at least one of title, folder, archived"),
        ),
      },
      responses: {
        200: jsonResponse("The updated conversation", Conversation),
        404: problem("No such conversation (or not yours)"),
        422: problem("Nothing to change, or an invalid field"),
      },
    }),
    async (c) => {
      const row = await updateConversation(
        createDb(c.var.config),
        principalOf(c).userId,
        c.req.valid("param").id,
        c.req.valid("json"),
      );
      return c.json(conversationJson(row), 200);
    },
  )
  .openapi(
    createRoute({
      method: "delete",
      path: "/api/conversations/{id}",
      tags: ["conversations"],
      summary: "Delete a conversation and its messages",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: IdParam },
      responses: { 204: { description: "Deleted" }, 404: problem("No such conversation (or not yours)") },
    }),
    async (c) => {
      await deleteConversation(createDb(c.var.config), principalOf(c).userId, c.req.valid("param").id);
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/api/conversations/{id}/export",
      tags: ["conversations"],
      summary: "The visible thread as Markdown, with each answer's sources",
      security: signedIn,
      middleware: [requireUser] as const,
      request: { params: IdParam, query: z.object({ format: z.enum(["markdown"]).default("markdown") }) },
      responses: {
        200: { description: "text/markdown", content: { "text/markdown": { schema: z.string() } } },
        404: problem("No such conversation (or not yours)"),
      },
    }),
    async (c) => {
      const db = createDb(c.var.config);
      const conversation = await ownConversation(db, principalOf(c).userId, c.req.valid("param").id);
      const markdown = exportMarkdown(conversation, await thread(db, conversation.id));
      return c.body(markdown, 200, {
        "content-type": "text/markdown; charset=utf-8",
        "content-disposition": `attachment; filename="conversation-${conversation.id}.md"`,
      });
    },
  );
