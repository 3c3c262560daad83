import { Page } from '../ui';

export function AdminUsers(_props: { id?: string }) {
  return (
    <Page title="AdminUsers">
      <p>Not built yet.</p>
    </Page>
  );
}

export function AdminUser(_props: { id?: string }) {
  return (
    <Page title="AdminUser">
      <p>Not built yet.</p>
    </Page>
  );
}

