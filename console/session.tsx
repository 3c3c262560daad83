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

export interface Session {
  /** The signed-in user; null when signed out; undefined while it is being found out. */
  me: UserDetailed | null | undefined;
  refresh(): Promise<UserDetailed | null>;
  signOut(): Promise<void>;
}

const SessionContext = createContext<Session>(undefined as unknown as Session);
export const useSession = () => useContext(SessionContext);

/** Where a 401 from any call sends the page (set by SessionProvider). */
let lost: ((code: string) => void) | undefined;
api.use({
  onResponse({ request, response }) {
    const path = new URL(request.url).pathname;
    if (response.status === 401 && path !== '/login' && path !== '/logout') {
      void response
        .clone()
        .json()
        .then((b: { code?: string }) => lost?.(b.code ?? 'unauthenticated'))
        .catch(() => lost?.('unauthenticated'));
    }
    return response;
  },
});

export function SessionProvider({ children }: { children: ComponentChildren }) {
  const [me, setMe] = useState<UserDetailed | null | undefined>(hadSessionCookie ? undefined : null);

  async function refresh(): Promise<UserDetailed | null> {
    try {
      const user = await ok(api.GET('/user/me'));
      setMe(user);
      return user;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        setMe(null);
        return null;
      }
      throw e;
    }
  }

  async function signOut() {
    await ok(api.POST('/logout'));
    setMe(null);
  }

  useEffect(() => {
    lost = (code) => {
      if (code === 'password_change_required') setMe((m) => (m ? { ...m, force_password_change: true } : m));
      else setMe(null);
    };
    if (hadSessionCookie) refresh().catch(() => setMe(null));
  }, []);

  return <SessionContext.Provider value={{ me, refresh, signOut }}>{children}</SessionContext.Provider>;
}

/**
 * The pages behind a sign-in: a signed-out person is sent to sign in (and brought back), one whose
 * password must change to the password page, and a non-admin on an admin page is told so.
 */
export function SignedIn({ admin, children }: { admin?: boolean; children: ComponentChildren }) {
  const { me } = useSession();
  const { url, path, route } = useLocation();
  const mustChange = me?.force_password_change && path !== '/account/password';
  useEffect(() => {
    if (me === null) route(`/sign-in?next=${encodeURIComponent(url)}`, true);
    else if (mustChange) route('/account/password', true);
  }, [me, mustChange]);
  if (!me || mustChange) return <Placeholder rows={6} />;
  if (admin && !me.is_admin) {
    return (
      <Page title="Not allowed">
        <p>This page is for system administrators.</p>
      </Page>
    );
  }
  return <>{children}</>;
}
