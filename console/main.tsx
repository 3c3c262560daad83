import './style.css';
import { render, type ComponentType } from 'preact';
import { useEffect } from 'preact/hooks';
import { LocationProvider, Route, Router, useLocation } from 'preact-iso';
import { AdminAudit } from './pages/admin-audit';
import { AdminGroup, AdminGroups } from './pages/admin-groups';
import { AdminUser, AdminUsers } from './pages/admin-users';
import { Password, Sessions, Settings, Tokens } from './pages/account';
import { Profile } from './pages/profile';
import { Security } from './pages/security';
import { ConfirmEmail, ForgotPassword, ResetPassword, RevertEmail, SignUp, VerifyEmail } from './pages/public';
import { SignIn } from './pages/sign-in';
import { SessionProvider, SignedIn, useSession } from './session';
import { ActionButton, Page, Placeholder } from './ui';

/**
 * The console's paths (also in src/http/console.ts, which serves the page on them): links to any
 * other path (`/docs`) load as ordinary pages.
 */
const CONSOLE_PATHS = /^\/(account|admin|sign-in|sign-up|forgot-password|reset-password|verify-email|confirm-email|revert-email)?(\/|\?|$)/;

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

function App() {
  return (
    <LocationProvider scope={CONSOLE_PATHS}>
      <SessionProvider>
        <Header />
        <main id="main">
          <Router>
            <Route path="/" component={Home} />
            <Route path="/sign-in" component={SignIn} />
            <Route path="/sign-up" component={SignUp} />
            <Route path="/forgot-password" component={ForgotPassword} />
            <Route path="/reset-password" component={ResetPassword} />
            <Route path="/verify-email" component={VerifyEmail} />
            <Route path="/confirm-email" component={ConfirmEmail} />
            <Route path="/revert-email" component={RevertEmail} />
            <Route path="/account" component={account(Profile)} />
            <Route path="/account/password" component={account(Password)} />
            <Route path="/account/security" component={account(Security)} />
            <Route path="/account/tokens" component={account(Tokens)} />
            <Route path="/account/sessions" component={account(Sessions)} />
            <Route path="/account/settings" component={account(Settings)} />
            <Route path="/admin" component={admin(AdminUsers)} />
            <Route path="/admin/users" component={admin(AdminUsers)} />
            <Route path="/admin/users/:id" component={admin(AdminUser)} />
            <Route path="/admin/groups" component={admin(AdminGroups)} />
            <Route path="/admin/groups/:id" component={admin(AdminGroup)} />
            <Route path="/admin/audit" component={admin(AdminAudit)} />
            <Route default component={NotFound} />
          </Router>
        </main>
      </SessionProvider>
    </LocationProvider>
  );
}

render(<App />, document.getElementById('app')!);
