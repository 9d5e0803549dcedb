/** Admin API: the caller (`/me`), users, robot accounts and teams. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AdminService } from '../../admin/admin-service.ts';
import { actorOf, expiryOf, jsonBody, pageQuery, sendJson, sendNoContent, stringQuery } from './request.ts';

const userCreate = z
  .object({
    username: z.string(),
    password: z.string().nullable().optional(),
    email: z.string().nullable().optional(),
    isAdmin: z.boolean().optional(),
  })
  .strict();

const userUpdate = z
  .object({
    email: z.string().nullable().optional(),
    isAdmin: z.boolean().optional(),
    disabled: z.boolean().optional(),
  })
  .strict();

const passwordChange = z
  .object({
    password: z.string(),
    currentPassword: z.string().optional(),
  })
  .strict();

const expiry = {
  expiresAt: z.string().nullable().optional(),
  expiresIn: z.string().optional(),
};

const robotCreate = z
  .object({
    name: z.string(),
    description: z.string().optional(),
    ...expiry,
  })
  .strict();

const robotRotate = z.object(expiry).strict();

const teamCreate = z
  .object({
    name: z.string(),
    description: z.string().optional(),
  })
  .strict();

type NameParams = { Params: { name: string } };
type TeamParams = { Params: { team: string } };
type TeamMemberParams = { Params: { team: string; user: string } };

export function registerAccountRoutes(api: FastifyInstance, admin: AdminService): void {
  api.get('/me', async (request, reply) => {
    const actor = actorOf(request);
    return sendJson(reply, 200, { ...(await admin.me(actor)), via: actor.authVia });
  });

  // --- users ---
  api.get('/users', async (request, reply) =>
    sendJson(reply, 200, await admin.listUsers(actorOf(request), pageQuery(request))),
  );
  api.post('/users', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, userCreate);
    const { user, password } = await admin.createUser(actor, body);
    return sendJson(reply, 201, password === null ? user : { ...user, password });
  });
  api.get<NameParams>('/users/:name', async (request, reply) =>
    sendJson(reply, 200, await admin.getUser(actorOf(request), request.params.name)),
  );
  api.patch<NameParams>('/users/:name', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, userUpdate);
    return sendJson(reply, 200, await admin.updateUser(actor, request.params.name, body));
  });
  api.delete<NameParams>('/users/:name', async (request, reply) => {
    await admin.deleteUser(actorOf(request), request.params.name);
    return sendNoContent(reply);
  });
  api.put<NameParams>('/users/:name/password', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, passwordChange);
    await admin.setPassword(actor, request.params.name, body);
    return sendNoContent(reply);
  });

  api.post<NameParams>('/users/:name/unlock', async (request, reply) => {
    const address = stringQuery(request, 'address');
    const forgotten = await admin.unlockLogins(actorOf(request), {
      account: request.params.name,
      ...(address !== undefined ? { address } : {}),
    });
    return sendJson(reply, 200, { forgotten });
  });

  // --- failed-login locks ---
  api.get('/login-locks', async (request, reply) =>
    sendJson(reply, 200, await admin.listLoginLocks(actorOf(request))),
  );
  api.delete('/login-locks', async (request, reply) => {
    const account = stringQuery(request, 'account');
    const address = stringQuery(request, 'address');
    const forgotten = await admin.unlockLogins(actorOf(request), {
      ...(account !== undefined ? { account } : {}),
      ...(address !== undefined ? { address } : {}),
    });
    return sendJson(reply, 200, { forgotten });
  });

  // --- robots ---
  api.get('/robots', async (request, reply) =>
    sendJson(reply, 200, await admin.listRobots(actorOf(request), pageQuery(request))),
  );
  api.post('/robots', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, robotCreate);
    const { robot, secret } = await admin.createRobot(actor, {
      name: body.name,
      ...(body.description !== undefined ? { description: body.description } : {}),
      expiresAt: expiryOf(body) ?? null,
    });
    return sendJson(reply, 201, { ...robot, secret });
  });
  api.get<NameParams>('/robots/:name', async (request, reply) =>
    sendJson(reply, 200, await admin.getRobot(actorOf(request), request.params.name)),
  );
  api.delete<NameParams>('/robots/:name', async (request, reply) => {
    await admin.deleteRobot(actorOf(request), request.params.name);
    return sendNoContent(reply);
  });
  api.post<NameParams>('/robots/:name/rotate', async (request, reply) => {
    const actor = actorOf(request);
    const expiresAt = expiryOf(await jsonBody(request, robotRotate, true));
    const { robot, secret } = await admin.rotateRobot(
      actor,
      request.params.name,
      expiresAt === undefined ? {} : { expiresAt },
    );
    return sendJson(reply, 200, { ...robot, secret });
  });
  api.post<NameParams>('/robots/:name/revoke', async (request, reply) =>
    sendJson(reply, 200, await admin.revokeRobot(actorOf(request), request.params.name)),
  );

  // --- teams ---
  api.get('/teams', async (request, reply) =>
    sendJson(reply, 200, await admin.listTeams(actorOf(request), pageQuery(request))),
  );
  api.post('/teams', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, teamCreate);
    return sendJson(reply, 201, await admin.createTeam(actor, body));
  });
  api.get<TeamParams>('/teams/:team', async (request, reply) =>
    sendJson(reply, 200, await admin.getTeam(actorOf(request), request.params.team)),
  );
  api.delete<TeamParams>('/teams/:team', async (request, reply) => {
    await admin.deleteTeam(actorOf(request), request.params.team);
    return sendNoContent(reply);
  });
  api.get<TeamParams>('/teams/:team/members', async (request, reply) =>
    sendJson(
      reply,
      200,
      await admin.listTeamMembers(actorOf(request), request.params.team, pageQuery(request)),
    ),
  );
  api.put<TeamMemberParams>('/teams/:team/members/:user', async (request, reply) => {
    await admin.addTeamMember(actorOf(request), request.params.team, request.params.user);
    return sendNoContent(reply);
  });
  api.delete<TeamMemberParams>('/teams/:team/members/:user', async (request, reply) => {
    await admin.removeTeamMember(actorOf(request), request.params.team, request.params.user);
    return sendNoContent(reply);
  });
}
