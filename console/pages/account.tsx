import { Page } from '../ui';

export function Password(_props: { id?: string }) {
  return (
    <Page title="Password">
      <p>Not built yet.</p>
    </Page>
  );
}

export function Tokens(_props: { id?: string }) {
  return (
    <Page title="Tokens">
      <p>Not built yet.</p>
    </Page>
  );
}

export function Sessions(_props: { id?: string }) {
  return (
    <Page title="Sessions">
      <p>Not built yet.</p>
    </Page>
  );
}

export function Settings(_props: { id?: string }) {
  return (
    <Page title="Settings">
      <p>Not built yet.</p>
    </Page>
  );
}

