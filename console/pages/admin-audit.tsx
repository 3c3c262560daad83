import { Page } from '../ui';

export function AdminAudit(_props: { id?: string }) {
  return (
    <Page title="AdminAudit">
      <p>Not built yet.</p>
    </Page>
  );
}

