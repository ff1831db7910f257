// What an experiment works on: the run's admin, and per experiment its own users, conversations, flag and a
// document for answers to cite (chaos/workload.ts's Fixture), created through the API before the method.
import { randomUUID } from "node:crypto";
import { request } from "./client.ts";
import { settleDocuments } from "./invariants.ts";
import type { Experiment } from "./model.ts";
import type { Target } from "./target.ts";
import { type Actor, type Fixture, PASSWORD, uploadDocument } from "./workload.ts";

/** Admin for the whole run: bootstrap once, else sign in. */
export async function adminFor(target: Target, email: string): Promise<Actor> {
  const boot = await request(target.url, "/api/admin/bootstrap", {
    token: target.bootstrapToken,
    json: { email, password: PASSWORD, full_name: "Chaos Admin" },
  });
  if (boot.status !== 201 && boot.status !== 409) throw new Error(`bootstrap: ${boot.status} ${boot.text}`);
  return signIn(target.url, email, boot.json?.id);
}

async function signIn(base: string, email: string, id?: string): Promise<Actor> {
  const login = await request(base, "/api/auth/login", { json: { email, password: PASSWORD } });
  if (login.status !== 200) throw new Error(`login: ${login.status} ${login.text}`);
  return { id: id ?? login.json?.user?.id, email, token: login.json.access_token };
}

export async function createFixture(target: Target, admin: Actor, experiment: Experiment): Promise<Fixture> {
  const base = target.url;
  const run = randomUUID().slice(0, 8);
  const users: Actor[] = [];
  for (let i = 0; i < 3; i++) {
    const email = `chaos-${experiment.id}-${run}-${i}@example.com`;
    const reg = await request(base, "/api/auth/register", {
      json: { email, password: PASSWORD, full_name: `Chaos ${i}` },
    });
    if (reg.status !== 201) throw new Error(`register: ${reg.status} ${reg.text}`);
    users.push(await signIn(base, email, reg.json.id));
  }
  const conversation = async (owner: Actor) => {
    const conv = await request(base, "/api/conversations", { token: owner.token, json: { title: `chaos ${run}` } });
    if (conv.status !== 201) throw new Error(`conversation: ${conv.status} ${conv.text}`);
    return { id: conv.json.id as string, owner };
  };
  const conversations = [];
  for (const owner of users) conversations.push(await conversation(owner));
  const chatRooms = [];
  if (experiment.workload.mix.chatTurn) {
    for (let client = 0; client < experiment.workload.concurrency; client++) {
      chatRooms.push(await conversation(users[client % users.length] as Actor));
    }
  }
  const flagKey = `chaos.${experiment.id}.${run}`;
  const flag = await request(base, "/api/admin/flags", { token: admin.token, json: { key: flagKey } });
  if (flag.status !== 201) throw new Error(`flag: ${flag.status} ${flag.text}`);
  const fixture: Fixture = { base, admin, users, conversations, chatRooms, flagKey, tag: `chaos-${run}` };
  // A document for the answers to cite, ready before the fault.
  const seed = await uploadDocument(
    fixture,
    `${fixture.tag}-seed`,
    `Chaos document ${fixture.tag} describes fault drills.`,
  );
  if (seed.status !== 202) throw new Error(`seed document: ${seed.status} ${seed.text}`);
  await settleDocuments(fixture, [seed.json.id], 60_000);
  return fixture;
}
