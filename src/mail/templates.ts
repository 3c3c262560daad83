import type { FactorType } from '../domain/mfa';
import type { OutgoingMail } from '../stores/outbox-store';

export interface MailSettings {
  appName: string;
  appUrl: string;
}

/**
 * Whom a mail is about: a User, or what a mail needs of one. The name is used only as
 * `nameToGreet` says: unless `nameTrusted` and `emailVerified` are both true, it is never put in a mail.
 */
export type Recipient = { name: string; email: string; nameTrusted?: boolean; emailVerified?: boolean };

/**
 * Names are handles, not messages (issue 18): a mail names its recipient only by a name the user
 * or an admin set (not one given at self-registration: anyone may register with any address, and
 * "Support: your account is locked..." is a valid name), on an account whose address is proven.
 * Anything else, and every mail to an address not yet proven (`null`), says "Hello,".
 */
function nameToGreet(to: Recipient | null): string | undefined {
  return to && to.nameTrusted === true && to.emailVerified === true ? to.name : undefined;
}

/** Every mail's frame: the greeting, the body, the signature. */
function letter(s: MailSettings, to: string[], greet: Recipient | null, subject: string, body: string[]): OutgoingMail {
  const name = nameToGreet(greet);
  return { to, subject, text: [name === undefined ? 'Hello,' : `Hello ${name},`, '', ...body, '', `-- ${s.appName}`].join('\n') };
}

/**
 * A mail that exists for its one link: what it is for, the link on a line of its own, then the
 * terms. `greet` is the recipient, or null for an address not yet proven.
 */
function linkLetter(s: MailSettings, to: string, greet: Recipient | null, subject: string, before: string[], link: string, after: string[]): OutgoingMail {
  return letter(s, [to], greet, subject, [...before, '', link, '', ...after]);
}

/** `<APP_URL>/<page>?token=<token>`: the page of a frontend that posts the token back. */
function pageLink(settings: MailSettings, page: string, token: string): string {
  return `${settings.appUrl}/${page}?token=${encodeURIComponent(token)}`;
}

export function setPasswordLink(settings: MailSettings, token: string): string {
  return pageLink(settings, 'reset-password', token);
}

export function verifyEmailLink(settings: MailSettings, token: string): string {
  return pageLink(settings, 'verify-email', token);
}

export function confirmEmailLink(settings: MailSettings, token: string): string {
  return pageLink(settings, 'confirm-email', token);
}

export function revertEmailLink(settings: MailSettings, token: string): string {
  return pageLink(settings, 'revert-email', token);
}

export function welcomeMail(s: MailSettings, to: Recipient, link: string, validFor: string): OutgoingMail {
  return linkLetter(
    s,
    to.email,
    to,
    `Welcome to ${s.appName}`,
    [`An account has been created for you on ${s.appName}.`, 'Choose your password by following this link:'],
    link,
    [`The link works once and expires in ${validFor}.`],
  );
}

export interface FieldChange {
  field: string;
  from: string;
  to: string;
}

/** To the user's address (both addresses when an admin changed it): `user` is the user as now. */
export function accountUpdatedMail(s: MailSettings, to: string[], user: Recipient, changes: FieldChange[]): OutgoingMail {
  return letter(s, to, user, `Your ${s.appName} account has been updated`, [
    `Your ${s.appName} account has been updated:`,
    '',
    ...changes.map((c) => `${c.field}: ${c.from} -> ${c.to}`),
    '',
    'If you did not expect this change, contact your administrator.',
  ]);
}

export function passwordChangedMail(s: MailSettings, to: Recipient): OutgoingMail {
  return letter(s, [to.email], to, `Your ${s.appName} password has been changed`, [
    `The password of your ${s.appName} account has just been changed.`,
    'If you did not do this, reset your password and contact your administrator.',
  ]);
}

export function tokensRevokedMail(s: MailSettings, to: Recipient, apiTokenNames: string[], loginTokens: number): OutgoingMail {
  const lines = [`An administrator has revoked tokens of your ${s.appName} account.`, ''];
  if (apiTokenNames.length) lines.push('API tokens revoked:', ...apiTokenNames.map((n) => `  - ${n}`), '');
  if (loginTokens) lines.push(`Login sessions ended: ${loginTokens}`, '');
  lines.push('Log in again, or create new API tokens, to carry on.');
  return letter(s, [to.email], to, `Your ${s.appName} tokens have been revoked`, lines);
}

export function resetPasswordMail(s: MailSettings, to: Recipient, link: string, validFor: string): OutgoingMail {
  return linkLetter(
    s,
    to.email,
    to,
    `Reset your ${s.appName} password`,
    [`Someone (we hope you) asked to reset the password of your ${s.appName} account.`, 'Choose a new password by following this link:'],
    link,
    [`The link works once and expires in ${validFor}. If you did not ask for it, ignore this mail.`],
  );
}

/** To the address of a registration, not yet proven: no name in it (the registrant chose it). */
export function verifyEmailMail(s: MailSettings, to: Recipient, link: string, validFor: string): OutgoingMail {
  return linkLetter(
    s,
    to.email,
    null,
    `Verify your ${s.appName} email address`,
    [`Someone (we hope you) registered an account on ${s.appName} with this address.`, 'Confirm that the address is yours by following this link:'],
    link,
    [
      `The link works once and expires in ${validFor}. Until then the account cannot log in;`,
      'an account never verified is removed. If you did not register, ignore this mail.',
    ],
  );
}

/**
 * To an address that already has an account, instead of a second one (no link: nothing was made).
 * The account's name is in it only when it may greet (that account may be a registration too).
 */
export function alreadyRegisteredMail(s: MailSettings, to: Recipient): OutgoingMail {
  const name = nameToGreet(to);
  return letter(s, [to.email], to, `You already have an ${s.appName} account`, [
    `Someone (we hope you) tried to register an account on ${s.appName} with this address.`,
    `It already has one${name === undefined ? '' : `, under the name "${name}"`}. No new account was made.`,
    '',
    'If it was you, log in with that account; if you have forgotten its password, ask for a',
    'password reset with this address. If it was not you, ignore this mail.',
  ]);
}

/** To the new address of a change the user asked for, not yet proven (no name in it): the link makes the change. */
export function confirmEmailMail(s: MailSettings, to: Recipient, link: string, validFor: string): OutgoingMail {
  return linkLetter(
    s,
    to.email,
    null,
    `Confirm your new ${s.appName} email address`,
    [`You asked to use this address for your ${s.appName} account.`, 'Confirm it by following this link:'],
    link,
    [`The link works once and expires in ${validFor}. Until then your account keeps its`, 'current address. If you did not ask for this, ignore this mail.'],
  );
}

/** To the old address of a change: the link undoes it, the defence against a stolen session. */
export function emailChangingMail(s: MailSettings, to: Recipient, newEmail: string, link: string, validFor: string): OutgoingMail {
  return linkLetter(
    s,
    to.email,
    to,
    `Your ${s.appName} email address is changing`,
    [
      `Someone signed in to your ${s.appName} account asked to change its address`,
      `to ${newEmail}; the change is made when that address confirms it.`,
      '',
      'If it was not you, follow this link: it keeps (or puts back) this address, ends every',
      'session and token of the account, and has you choose a new password at your next login.',
    ],
    link,
    [`The link works once and expires in ${validFor}.`],
  );
}

/**
 * To an address another account asked to move to, when an account already has it (API.md §2.2):
 * no link, nothing changes; the asker is told nothing of it (no enumeration).
 */
export function addressTakenMail(s: MailSettings, to: Recipient): OutgoingMail {
  return letter(s, [to.email], to, `Someone tried to move an ${s.appName} account to your address`, [
    `Someone signed in to another ${s.appName} account asked to move that account to this address.`,
    'This address already belongs to your account, so nothing was changed and no link was sent.',
    '',
    'If it was you, keep using this account. If it was not, ignore this mail: your account is not',
    'affected.',
  ]);
}

/** To the address a revert link put back: the password no longer works, this link sets a new one. */
export function revertedResetMail(s: MailSettings, to: Recipient, link: string, validFor: string): OutgoingMail {
  return linkLetter(
    s,
    to.email,
    to,
    `Reset your ${s.appName} password`,
    [
      `Your ${s.appName} account has this address again, as you asked by the link in our mail about`,
      'the change. Every session and token of the account has ended and its password no longer',
      'works, so that whoever changed the address is locked out. Choose a new password by',
      'following this link:',
    ],
    link,
    [`The link works once and expires in ${validFor}. Once it has expired, ask for a new one with "Forgot your password?".`],
  );
}

/** A factor was confirmed (API.md §2.8): named, never its secret. */
export function factorAddedMail(s: MailSettings, to: Recipient, factorName: string, type: FactorType = 'totp'): OutgoingMail {
  return letter(s, [to.email], to, `Two-factor sign-in was added to your ${s.appName} account`, [
    ...(type === 'webauthn'
      ? [`A passkey, "${factorName}", was added to your ${s.appName} account: it signs you in without a`, 'password, or serves as the second step after the password.']
      : [`An authenticator app, "${factorName}", was added to your ${s.appName} account: signing in now`, 'asks for a code from it after the password.']),
    '',
    'If you did not do this, reset your password and contact your administrator.',
  ]);
}

/** A confirmed factor was removed by the user. */
export function factorRemovedMail(s: MailSettings, to: Recipient, factorName: string, mfaOff: boolean, type: FactorType = 'totp'): OutgoingMail {
  return letter(s, [to.email], to, `Two-factor sign-in was removed from your ${s.appName} account`, [
    `The ${type === 'webauthn' ? 'passkey' : 'authenticator app'} "${factorName}" was removed from your ${s.appName} account.`,
    mfaOff ? 'Signing in now asks for the password only, and your recovery codes no longer work.' : 'Your other factors still work.',
    '',
    'If you did not do this, reset your password and contact your administrator.',
  ]);
}

/** An admin removed every factor and recovery code of the user (a lost device). */
export function mfaResetMail(s: MailSettings, to: Recipient): OutgoingMail {
  return letter(s, [to.email], to, `Two-factor sign-in on your ${s.appName} account was reset`, [
    `An administrator removed every authenticator app and recovery code of your ${s.appName} account,`,
    'and ended its login sessions. Signing in now asks for the password only; you can set up',
    'two-factor sign-in again on your account page.',
    '',
    'If you did not ask for this, contact your administrator.',
  ]);
}

/** A recovery code was used to sign in: how many are left (never which one). */
export function recoveryCodeUsedMail(s: MailSettings, to: Recipient, remaining: number): OutgoingMail {
  return letter(s, [to.email], to, `A recovery code for your ${s.appName} account was used`, [
    `A recovery code was just used to sign in to your ${s.appName} account.`,
    `${remaining === 0 ? 'No' : remaining} unused recovery code${remaining === 1 ? ' is' : 's are'} left.${remaining <= 3 ? ' Make new ones on your account page.' : ''}`,
    '',
    'If it was not you, reset your password and contact your administrator.',
  ]);
}

/**
 * A passkey signed with a counter that did not go up (API.md §2.8): the sign-in was refused, and
 * the credential may have been copied. Names the passkey, nothing else.
 */
export function passkeyCounterMail(s: MailSettings, to: Recipient, factorName: string): OutgoingMail {
  return letter(s, [to.email], to, `A passkey of your ${s.appName} account may have been copied`, [
    `A sign-in to your ${s.appName} account with the passkey "${factorName}" was refused: the passkey`,
    'reported a use count lower than one it reported before, which happens when a copy of it is used.',
    '',
    'If you did not just sign in, remove that passkey on your account page, add a new one, and',
    'contact your administrator.',
  ]);
}

/** To the system admins: the service disabled a webhook endpoint (API.md §2.9). Names its origin and why; never a secret. */
export function webhookDisabledMail(s: MailSettings, to: string[], origin: string, reason: string): OutgoingMail {
  return letter(s, to, null, `A webhook of ${s.appName} has been disabled`, [
    `The webhook endpoint at ${origin} has been disabled: ${reason}.`,
    '',
    'No events are sent to it until a system admin enables it again; the events meanwhile wait in its delivery log.',
  ]);
}
