import type { NewUserInput, UserChanges } from '../domain/types';

/** Request bodies (already validated against openapi.yaml) → domain inputs. */
export interface UpdateUserBody {
  name?: string;
  email?: string;
  first_name?: string | null;
  last_name?: string | null;
  is_admin?: boolean;
}

export interface NewUserBody extends UpdateUserBody {
  name: string;
  email: string;
  password?: string;
}

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
