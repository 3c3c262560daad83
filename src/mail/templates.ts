import type { OutgoingMail } from '../stores/outbox-store';

export interface MailSettings {
  appName: string;
  appUrl: string;
}

export function setPasswordLink(settings: MailSettings, token: string): string {
  return `${settings.appUrl}/reset-password?token=${encodeURIComponent(token)}`;
}

export function welcomeMail(s: MailSettings, to: { name: string; email: string }, link: string, validFor: string): OutgoingMail {
  return {
    to: [to.email],
    subject: `Welcome to ${s.appName}`,
    text: [
      `Hello ${to.name},`,
      '',
      `An account has been created for you on ${s.appName}.`,
      'Choose your password by following this link:',
      '',
      link,
      '',
      `The link works once and expires in ${validFor}.`,
      '',
      `-- ${s.appName}`,
    ].join('\n'),
  };
}

export interface FieldChange {
  field: string;
  from: string;
  to: string;
}

export function accountUpdatedMail(s: MailSettings, to: string[], name: string, changes: FieldChange[]): OutgoingMail {
  return {
    to,
    subject: `Your ${s.appName} account has been updated`,
    text: [
      `Hello ${name},`,
      '',
      `Your ${s.appName} account has been updated:`,
      '',
      ...changes.map((c) => `${c.field}: ${c.from} -> ${c.to}`),
      '',
      'If you did not expect this change, contact your administrator.',
      '',
      `-- ${s.appName}`,
    ].join('\n'),
  };
}

export function passwordChangedMail(s: MailSettings, to: { name: string; email: string }): OutgoingMail {
  return {
    to: [to.email],
    subject: `Your ${s.appName} password has been changed`,
    text: [
      `Hello ${to.name},`,
      '',
      `The password of your ${s.appName} account has just been changed.`,
      'If you did not do this, reset your password and contact your administrator.',
      '',
      `-- ${s.appName}`,
    ].join('\n'),
  };
}

export function tokensRevokedMail(s: MailSettings, to: { name: string; email: string }, apiTokenNames: string[], loginTokens: number): OutgoingMail {
  const lines = [
    `Hello ${to.name},`,
    '',
    `An administrator has revoked tokens of your ${s.appName} account.`,
    '',
  ];
  if (apiTokenNames.length) lines.push('API tokens revoked:', ...apiTokenNames.map((n) => `  - ${n}`), '');
  if (loginTokens) lines.push(`Login sessions ended: ${loginTokens}`, '');
  lines.push('Log in again, or create new API tokens, to carry on.', '', `-- ${s.appName}`);
  return { to: [to.email], subject: `Your ${s.appName} tokens have been revoked`, text: lines.join('\n') };
}

export function resetPasswordMail(s: MailSettings, to: { name: string; email: string }, link: string, validFor: string): OutgoingMail {
  return {
    to: [to.email],
    subject: `Reset your ${s.appName} password`,
    text: [
      `Hello ${to.name},`,
      '',
      `Someone (we hope you) asked to reset the password of your ${s.appName} account.`,
      'Choose a new password by following this link:',
      '',
      link,
      '',
      `The link works once and expires in ${validFor}. If you did not ask for it, ignore this mail.`,
      '',
      `-- ${s.appName}`,
    ].join('\n'),
  };
}

export function verifyEmailLink(settings: MailSettings, token: string): string {
  return `${settings.appUrl}/verify-email?token=${encodeURIComponent(token)}`;
}

export function verifyEmailMail(s: MailSettings, to: { name: string; email: string }, link: string, validFor: string): OutgoingMail {
  return {
    to: [to.email],
    subject: `Verify your ${s.appName} email address`,
    text: [
      `Hello ${to.name},`,
      '',
      `Someone (we hope you) registered an account on ${s.appName} with this address.`,
      'Confirm that the address is yours by following this link:',
      '',
      link,
      '',
      `The link works once and expires in ${validFor}. Until then the account cannot log in;`,
      'an account never verified is removed. If you did not register, ignore this mail.',
      '',
      `-- ${s.appName}`,
    ].join('\n'),
  };
}

/** To an address that already has an account, instead of a second one (no link: nothing was made). */
export function alreadyRegisteredMail(s: MailSettings, to: { name: string; email: string }): OutgoingMail {
  return {
    to: [to.email],
    subject: `You already have an ${s.appName} account`,
    text: [
      `Hello ${to.name},`,
      '',
      `Someone (we hope you) tried to register an account on ${s.appName} with this address.`,
      `It already has one, under the name "${to.name}". No new account was made.`,
      '',
      'If it was you, log in with that account; if you have forgotten its password, ask for a',
      'password reset with this address. If it was not you, ignore this mail.',
      '',
      `-- ${s.appName}`,
    ].join('\n'),
  };
}

export function confirmEmailLink(settings: MailSettings, token: string): string {
  return `${settings.appUrl}/confirm-email?token=${encodeURIComponent(token)}`;
}

export function revertEmailLink(settings: MailSettings, token: string): string {
  return `${settings.appUrl}/revert-email?token=${encodeURIComponent(token)}`;
}

/** To the new address of a change the user asked for: the link makes the change. */
export function confirmEmailMail(s: MailSettings, to: { name: string; email: string }, link: string, validFor: string): OutgoingMail {
  return {
    to: [to.email],
    subject: `Confirm your new ${s.appName} email address`,
    text: [
      `Hello ${to.name},`,
      '',
      `You asked to use this address for your ${s.appName} account.`,
      'Confirm it by following this link:',
      '',
      link,
      '',
      `The link works once and expires in ${validFor}. Until then your account keeps its`,
      'current address. If you did not ask for this, ignore this mail.',
      '',
      `-- ${s.appName}`,
    ].join('\n'),
  };
}

/** To the old address of a change: the link undoes it, the defence against a stolen session. */
export function emailChangingMail(s: MailSettings, to: { name: string; email: string }, newEmail: string, link: string, validFor: string): OutgoingMail {
  return {
    to: [to.email],
    subject: `Your ${s.appName} email address is changing`,
    text: [
      `Hello ${to.name},`,
      '',
      `Someone signed in to your ${s.appName} account asked to change its address`,
      `to ${newEmail}; the change is made when that address confirms it.`,
      '',
      'If it was not you, follow this link: it keeps (or puts back) this address, ends every',
      'session and token of the account, and has you choose a new password at your next login.',
      '',
      link,
      '',
      `The link works once and expires in ${validFor}.`,
      '',
      `-- ${s.appName}`,
    ].join('\n'),
  };
}
