import { Page } from '../ui';

export function AdminGroups(_props: { id?: string }) {
  return (
    <Page title="AdminGroups">
      <p>Not built yet.</p>
    </Page>
  );
}

export function AdminGroup(_props: { id?: string }) {
  return (
    <Page title="AdminGroup">
      <p>Not built yet.</p>
    </Page>
  );
}

