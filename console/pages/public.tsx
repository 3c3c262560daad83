import { Page } from '../ui';

export function SignUp(_props: { id?: string }) {
  return (
    <Page title="SignUp">
      <p>Not built yet.</p>
    </Page>
  );
}

export function VerifyEmail(_props: { id?: string }) {
  return (
    <Page title="VerifyEmail">
      <p>Not built yet.</p>
    </Page>
  );
}

export function ForgotPassword(_props: { id?: string }) {
  return (
    <Page title="ForgotPassword">
      <p>Not built yet.</p>
    </Page>
  );
}

export function ResetPassword(_props: { id?: string }) {
  return (
    <Page title="ResetPassword">
      <p>Not built yet.</p>
    </Page>
  );
}

export function ConfirmEmail(_props: { id?: string }) {
  return (
    <Page title="ConfirmEmail">
      <p>Not built yet.</p>
    </Page>
  );
}

export function RevertEmail(_props: { id?: string }) {
  return (
    <Page title="RevertEmail">
      <p>Not built yet.</p>
    </Page>
  );
}

