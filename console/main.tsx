import './style.css';
import { render, type ComponentType } from 'preact';
import { useEffect } from 'preact/hooks';
import { LocationProvider, Route, Router, useLocation } from 'preact-iso';
import { CONSOLE_PATH, CONSOLE_ROUTES, type ConsoleRoute } from '../src/console-paths';
import { AdminAudit } from './pages/admin-audit';
import { AdminGroup, AdminGroups } from './pages/admin-groups';
import { AdminUser, AdminUsers } from './pages/admin-users';
import { AdminWebhook, AdminWebhooks } from './pages/admin-webhooks';
import { Password, Sessions, Settings, Tokens } from './pages/account';
import { Profile } from './pages/profile';
import { Security } from './pages/security';
import { ConfirmEmail, ForgotPassword, ResetPassword, RevertEmail, SignUp, VerifyEmail } from './pages/public';
import { SignIn } from './pages/sign-in';
import { SessionProvider, SignedIn, useSession } from './session';
import { ActionButton, Page, Placeholder } from './ui';

function Header() {
  const { me, mfa, signOut } = useSession();
  const { path, route } = useLocation();
  const link = (href: string, text: string) => (
    <li>
      <a href={href} aria-current={path === href || (href !== '/account' && path.startsWith(`${href}/`)) ? 'page' : undefined}>
        {text}
      </a>
    </li>
  );
  return (
    <header class="top">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <a class="brand" href={me ? '/account' : '/sign-in'}>
        Accounts
      </a>
      {me && !me.force_password_change && mfa !== 'enrol' && (
        <nav aria-label="Main">
          <ul>
            {link('/account', 'Profile')}
            {link('/account/password', 'Password')}
            {link('/account/security', 'Security')}
            {link('/account/tokens', 'API tokens')}
            {link('/account/sessions', 'Sessions')}
            {link('/account/settings', 'Settings')}
            {me.is_admin && link('/admin/users', 'Users')}
            {me.is_admin && link('/admin/groups', 'Groups')}
            {me.is_admin && link('/admin/audit', 'Audit log')}
            {me.is_admin && link('/admin/webhooks', 'Webhooks')}
          </ul>
        </nav>
      )}
      {me && (
        <div class="who">
          <span class="muted">{me.name}</span>
          <ActionButton
            busy="Signing out…"
            onClick={async () => {
              await signOut();
              route('/sign-in');
            }}
          >
            Sign out
          </ActionButton>
        </div>
      )}
    </header>
  );
}

function Home() {
  const { me } = useSession();
  const { route } = useLocation();
  useEffect(() => {
    if (me !== undefined) route(me ? '/account' : '/sign-in', true);
  }, [me]);
  return <Placeholder rows={4} />;
}

function NotFound() {
  return (
    <Page title="Page not found">
      <p>
        There is no page here. <a href="/account">Go to your account</a>.
      </p>
    </Page>
  );
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Props = any;
const guarded = (C: ComponentType<Props>, admin: boolean) => (props: Props) => (
  <SignedIn admin={admin}>
    <C {...props} />
  </SignedIn>
);
const account = (C: ComponentType<Props>) => guarded(C, false);
const admin = (C: ComponentType<Props>) => guarded(C, true);

/** Each of the console's routes (src/console-paths.ts, which the server serves) and its page. */
const PAGES: Record<ConsoleRoute, ComponentType<Props>> = {
  '/': Home,
  '/sign-in': SignIn,
  '/sign-up': SignUp,
  '/forgot-password': ForgotPassword,
  '/reset-password': ResetPassword,
  '/verify-email': VerifyEmail,
  '/confirm-email': ConfirmEmail,
  '/revert-email': RevertEmail,
  '/account': account(Profile),
  '/account/password': account(Password),
  '/account/security': account(Security),
  '/account/tokens': account(Tokens),
  '/account/sessions': account(Sessions),
  '/account/settings': account(Settings),
  '/admin': admin(AdminUsers),
  '/admin/users': admin(AdminUsers),
  '/admin/users/:id': admin(AdminUser),
  '/admin/groups': admin(AdminGroups),
  '/admin/groups/:id': admin(AdminGroup),
  '/admin/audit': admin(AdminAudit),
  '/admin/webhooks': admin(AdminWebhooks),
  '/admin/webhooks/:id': admin(AdminWebhook),
};

function App() {
  return (
    <LocationProvider scope={CONSOLE_PATH}>
      <SessionProvider>
        <Header />
        <main id="main">
          <Router>
            {[
              ...CONSOLE_ROUTES.map((path) => <Route key={path} path={path} component={PAGES[path]} />),
              <Route key="default" default component={NotFound} />,
            ]}
          </Router>
        </main>
      </SessionProvider>
    </LocationProvider>
  );
}

render(<App />, document.getElementById('app')!);
