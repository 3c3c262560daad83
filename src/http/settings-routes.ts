import { Router } from 'express';
import type { SettingsService } from '../services/settings-service';
import type { UserService } from '../services/user-service';
import type { Settings } from '../stores/settings-store';
import { ownerForms } from './owners';

export function settingsRoutes(settings: SettingsService, users: UserService): Router {
  const router = Router();
  for (const [prefix, owner] of ownerForms(users)) {
    router.get(`${prefix}/settings`, async (req, res) => {
      res.json(await settings.all(await owner(req)));
    });
    router.post(`${prefix}/settings`, async (req, res) => {
      await settings.replace(await owner(req), req.body as Settings);
      res.status(204).end();
    });
    router.get(`${prefix}/settings/:key`, async (req, res) => {
      const key = req.params.key as string;
      res.json({ [key]: await settings.get(await owner(req), key) });
    });
    router.post(`${prefix}/settings/:key`, async (req, res) => {
      await settings.set(await owner(req), req.params.key as string, req.body as Settings);
      res.status(204).end();
    });
    router.delete(`${prefix}/settings/:key`, async (req, res) => {
      await settings.delete(await owner(req), req.params.key as string);
      res.status(204).end();
    });
  }
  return router;
}
