import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { loadConfig } from '../../src/config';

/** docker-compose.yml and the Dockerfile, read (no Docker daemon here). */
const root = path.resolve(__dirname, '../..');
const compose = YAML.parse(fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, { image?: string; build?: unknown; restart?: string; healthcheck?: { test: string[] | string }; environment?: Record<string, string> }>;
};
const dockerfile = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };

/** name:exact.version[-variant]@sha256:digest (Postgres versions are major.minor) */
const PINNED = /^[a-z0-9./_-]+:v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)*@sha256:[0-9a-f]{64}$/;

describe('docker-compose.yml', () => {
  const services = Object.entries(compose.services);

  it('pins every image it pulls by exact version and digest, and tags the one it builds with the package version', () => {
    expect(services.length).toBeGreaterThanOrEqual(3);
    for (const [name, s] of services) {
      if (s.build !== undefined) expect([name, s.image]).toEqual([name, `account-service:${pkg.version}`]);
      else expect([name, s.image]).toEqual([name, expect.stringMatching(PINNED)]);
    }
  });

  it('restarts every service unless stopped', () => {
    for (const [name, s] of services) expect([name, s.restart]).toEqual([name, 'unless-stopped']);
  });

  it('checks the service by GET /healthz', () => {
    const test = compose.services.accounts.healthcheck?.test;
    expect(Array.isArray(test) ? test.join(' ') : test).toContain("fetch('http://127.0.0.1:3000/healthz')");
  });

  it('refuses to start without a JWT_SECRET, offering no default', () => {
    expect(compose.services.accounts.environment?.JWT_SECRET).toMatch(/^\$\{JWT_SECRET:\?[^}]+\}$/);
  });

  it.each(['MFA_KEY', 'AUDIT_KEY'])('refuses to start without %s (required with Postgres), offering no default', (variable) => {
    expect(compose.services.accounts.environment?.[variable]).toMatch(new RegExp(`^\\$\\{${variable}:\\?[^}]+\\}$`));
  });

  it('sets nothing that the service would refuse', () => {
    const env = {
      ...compose.services.accounts.environment,
      JWT_SECRET: 'q3J6mU1x8bZ0c+Yw/HfT2nLkPa9sVdRe4GiBo7XjCl5NtMy0uEzK1WpQhS6rIv3A',
      MFA_KEY: 'Zr5Tq8Wn1Ke4Hy7Bc0Vm3Lx6Pj9Ds2Gf5Ua8Oi1Ny4Rt7Qe0Wk3Zh6Mb9Cv2Lp5Xs',
      AUDIT_KEY: 'W8pZk2Qv7Rn4Ty1Lm9Xc3Bf6Hd0Js5Ga8Ue2Ko7Ni4Vr1Yt6Qw3Ez9Pl0Cx5Sb2Dh',
    };
    expect(() => loadConfig(env)).not.toThrow();
  });
});

describe('Dockerfile', () => {
  const lines = dockerfile.split('\n');
  const at = (re: RegExp) => lines.findIndex((l) => re.test(l));

  it('pins its base images by exact version and digest', () => {
    const froms = lines.filter((l) => l.startsWith('FROM ')).map((l) => l.split(/\s+/)[1]);
    expect(froms.length).toBe(2);
    for (const image of froms) expect(image).toMatch(PINNED);
  });

  it('copies everything the build reads (the service, its migrations, the web console) before npm ci builds', () => {
    const ci = at(/^RUN npm ci\b/);
    for (const dir of ['src', 'migrations', 'console', 'patches']) {
      const copy = at(new RegExp(`^COPY ${dir} \\./${dir}$`));
      expect([dir, copy >= 0 && copy < ci]).toEqual([dir, true]);
    }
    expect(lines[ci]).toMatch(/test -f dist\/console\/index\.html/);
  });

  it("makes the data directory the runtime user's, and private (0700: the first start has nothing to mend), before it becomes that user", () => {
    expect(dockerfile).toMatch(/^ENV .*\bDATA_DIR=\/data\b/m);
    const chown = at(/^RUN mkdir -p \/data && chown node:node \/data && chmod 700 \/data$/);
    const user = at(/^USER node$/);
    expect(chown).toBeGreaterThan(at(/^FROM .* AS build$/));
    expect(chown).toBeGreaterThan(0);
    expect(user).toBeGreaterThan(chown);
    expect(at(/^VOLUME \/data$/)).toBeGreaterThan(chown);
  });

  it('runs node itself (JSON logs only, SIGTERM to the server) and checks /healthz', () => {
    expect(lines.filter((l) => l.startsWith('CMD '))).toEqual(['CMD ["node", "dist/src/server.js"]']);
    expect(dockerfile).toMatch(/HEALTHCHECK [^\n]*\\\n\s+CMD \["node", "-e", "fetch\('http:\/\/127\.0\.0\.1:3000\/healthz'\)/);
  });
});
