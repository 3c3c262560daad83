import type { Request, Response } from 'express';
import type { Settings } from '../../domain/types';
import type { SettingsService } from '../../services/settings-service';
import type { UserService } from '../../services/user-service';
import { body } from '../bodies';
import { auditContext } from '../audit-context';
import type { Handlers } from '../mount';
import { owner } from '../owner';

/** Settings: the caller's (`/user/me/...`), and an admin's view of anyone's (`/user/{user}/...`). */
export function settingsHandlers(settings: SettingsService, users: UserService): Handlers {
  const ownerOf = owner(users);
  const all = async (req: Request, res: Response) => {
    res.json(await settings.all(await ownerOf(req)));
  };
  const replace = async (req: Request, res: Response) => {
    await settings.replace(await ownerOf(req), body(req, 'replaceMySettings') as Settings, auditContext(req));
    res.status(204).end();
  };
  const get = async (req: Request, res: Response) => {
    const key = req.params.key as string;
    res.json({ [key]: await settings.get(await ownerOf(req), key) });
  };
  const set = async (req: Request, res: Response) => {
    await settings.set(await ownerOf(req), req.params.key as string, body(req, 'setMySetting') as Settings, auditContext(req));
    res.status(204).end();
  };
  const remove = async (req: Request, res: Response) => {
    await settings.delete(await ownerOf(req), req.params.key as string, auditContext(req));
    res.status(204).end();
  };
  return {
    getMySettings: all,
    getUserSettings: all,
    replaceMySettings: replace,
    replaceUserSettings: replace,
    getMySetting: get,
    getUserSetting: get,
    setMySetting: set,
    setUserSetting: set,
    deleteMySetting: remove,
    deleteUserSetting: remove,
  };
}
