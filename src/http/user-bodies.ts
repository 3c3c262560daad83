import type { NewUserInput, UserChanges } from '../domain/types';
import type { Body } from './bodies';

/** Request bodies (already validated against openapi.yaml) → domain inputs. */
export type UpdateUserBody = Body<'updateMe'> & Body<'updateUser'>;
export type NewUserBody = Body<'createUser'>;

export function toUserChanges(body: UpdateUserBody): UserChanges {
  return { name: body.name, email: body.email, firstName: body.first_name, lastName: body.last_name, isAdmin: body.is_admin };
}

export function toNewUser(body: NewUserBody): NewUserInput {
  return {
    name: body.name,
    email: body.email,
    password: body.password,
    isAdmin: body.is_admin,
    firstName: body.first_name,
    lastName: body.last_name,
  };
}
