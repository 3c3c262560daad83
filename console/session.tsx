import { createContext, type ComponentChildren } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, ApiError, ok, type UserDetailed } from './api';
import { Page, Placeholder } from './ui';

/** What the server told the page in its `<meta>` tags (no inline script: the CSP forbids it). */
function meta(name: string): string | undefined {
  return document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content;
}

/** The service takes self-registration (`ALLOW_REGISTRATION=1`). */
export const registrationOpen = meta('registration') === 'on';
/** The request for this page carried a session cookie (HttpOnly, so only the server can tell). */
const hadSessionCookie = meta('session') === 'on';

/**
 * Where a sign-in with two-factor stands: `pending`, the password was right and the second step
 * (a code) is owed (the session may call nothing else); `enrol`, an administrator must set up a
 * factor first (`REQUIRE_MFA_FOR_ADMINS`), so the security page is the only one open.
 */
export type MfaStep = 'pending' | 'enrol' | null;

export interface Session {
  /** The signed-in user; null when signed out; undefined while it is being found out. */
  me: UserDetailed | null | undefined;
  mfa: MfaStep;
  setMfa(step: MfaStep): void;
  refresh(): Promise<UserDetailed | null>;
  signOut(): Promise<void>;
}

/**
 * The forced enrolment outlives a reload of the tab (the API says it only when a page asks for
 * something else); kept per tab, and dropped at sign-out and once a factor is confirmed.
 */
const ENROL_KEY = 'accounts.mfa-enrol';
function storedEnrol(): MfaStep {
  try {
    return sessionStorage.getItem(ENROL_KEY) === '1' ? 'enrol' : null;
  } catch {
    return null;
  }
}
function storeEnrol(step: MfaStep) {
  try {
    if (step === 'enrol') sessionStorage.setItem(ENROL_KEY, '1');
    else sessionStorage.removeItem(ENROL_KEY);
  } catch {
    // Storage refused (a private window's policy): the API's 403 still says it.
  }
}

const SessionContext = createContext<Session>(undefined as unknown as Session);
export const useSession = () => useContext(SessionContext);

/** Where a 401 from any call, or a 403 that says the second step is owed, sends the page (set by SessionProvider). */
let lost: ((code: string) => void) | undefined;
/** The routes whose 401 is the sign-in page's to explain (not a session that ended). */
const SIGN_IN_PATHS = new Set(['/login', '/logout', '/login/mfa', '/login/mfa/options', '/login/passkey', '/login/passkey/options']);
api.use({
  onResponse({ request, response }) {
    const path = new URL(request.url).pathname;
    // A 401 at a sign-in route is a wrong code or passkey (or a second step that took too long): the sign-in page says so.
    if ((response.status === 401 && !SIGN_IN_PATHS.has(path)) || response.status === 403) {
      void response
        .clone()
        .json()
        .then((b: { code?: string }) => {
          if (response.status === 401) lost?.(b.code ?? 'unauthenticated');
          else if (b.code === 'mfa_required' || b.code === 'mfa_enrollment_required') lost?.(b.code);
        })
        .catch(() => {
          if (response.status === 401) lost?.('unauthenticated');
        });
    }
    return response;
  },
});

export function SessionProvider({ children }: { children: ComponentChildren }) {
  const [me, setMe] = useState<UserDetailed | null | undefined>(hadSessionCookie ? undefined : null);
  const [mfa, setMfaState] = useState<MfaStep>(hadSessionCookie ? storedEnrol() : null);

  function setMfa(step: MfaStep) {
    storeEnrol(step);
    setMfaState(step);
  }

  async function refresh(): Promise<UserDetailed | null> {
    try {
      const user = await ok(api.GET('/user/me'));
      setMe(user);
      return user;
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.code === 'mfa_required')) {
        // Signed in with the password only: the sign-in page asks for the code.
        if (e.code === 'mfa_required') setMfa('pending');
        setMe(null);
        return null;
      }
      throw e;
    }
  }

  async function signOut() {
    await ok(api.POST('/logout'));
    setMfa(null);
    setMe(null);
  }

  useEffect(() => {
    lost = (code) => {
      if (code === 'password_change_required') setMe((m) => (m ? { ...m, force_password_change: true } : m));
      else if (code === 'mfa_enrollment_required') setMfa('enrol');
      else if (code === 'mfa_required') {
        setMfa('pending');
        setMe(null);
      } else {
        setMfa(null);
        setMe(null);
      }
    };
    if (hadSessionCookie) refresh().catch(() => setMe(null));
  }, []);

  return <SessionContext.Provider value={{ me, mfa, setMfa, refresh, signOut }}>{children}</SessionContext.Provider>;
}

/** The page where two-factor sign-in is set up (and the only one open to an administrator who must). */
export const SECURITY_PAGE = '/account/security';

/**
 * The pages behind a sign-in: a signed-out person is sent to sign in (and brought back), an
 * administrator who must set up two-factor sign-in to the security page, one whose password must
 * change to the password page, and a non-admin on an admin page is told so.
 */
export function SignedIn({ admin, children }: { admin?: boolean; children: ComponentChildren }) {
  const { me, mfa } = useSession();
  const { url, path, route } = useLocation();
  // The API asks for the factor before the new password (its policy checks them in that order).
  const mustEnrol = mfa === 'enrol' && path !== SECURITY_PAGE;
  const mustChange = mfa !== 'enrol' && me?.force_password_change && path !== '/account/password';
  useEffect(() => {
    if (me === null) route(`/sign-in?next=${encodeURIComponent(url)}`, true);
    else if (mustEnrol) route(SECURITY_PAGE, true);
    else if (mustChange) route('/account/password', true);
  }, [me, mustEnrol, mustChange]);
  if (!me || mustEnrol || mustChange) return <Placeholder rows={6} />;
  if (admin && !me.is_admin) {
    return (
      <Page title="Not allowed">
        <p>This page is for system administrators.</p>
      </Page>
    );
  }
  return <>{children}</>;
}
