import YAML from 'yaml';
import { loadApiSpec } from '../../src/api-spec';
import { createTestApp, type TestApp } from '../helpers/test-app';

describe('the spec and its docs page', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('serves openapi.yaml as JSON and as YAML, with APP_URL as its server, and otherwise as the file says', async () => {
    const json = await t.http().get('/openapi.json').expect(200).expect('Content-Type', /^application\/json/);
    const yaml = await t.http().get('/openapi.yaml').expect(200).expect('Content-Type', /^application\/yaml/);
    expect(YAML.parse(yaml.text)).toEqual(json.body);
    expect(json.body.servers).toEqual([{ url: t.config.appUrl, description: 'This service (APP_URL)' }]);
    const file = loadApiSpec();
    expect({ ...json.body, servers: file.servers }).toEqual(file);
    await t.http().head('/openapi.json').expect(200);
  });

  it('serves the docs page with its script and Swagger UI from this service (no inline script, no other host), under the strict CSP', async () => {
    const page = await t.http().get('/docs').expect(200).expect('Content-Type', /^text\/html/);
    const scripts = [...page.text.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.map((m) => [/src="([^"]+)"/.exec(m[1])?.[1], m[2].trim()])).toEqual([
      ['/docs/assets/swagger-ui-bundle.js', ''],
      ['/docs/init.js', ''],
    ]);
    expect(page.text).not.toMatch(/https?:\/\//);
    expect(String(page.headers['content-security-policy'])).toContain("script-src 'self'");
    await t.http().get('/docs/').expect(200);
    await t.http().get('/docs/init.js').expect(200).expect('Content-Type', /javascript/);
    await t.http().get('/docs/assets/swagger-ui-bundle.js').expect(200).expect('Content-Type', /javascript/);
    await t.http().get('/docs/assets/swagger-ui.css').expect(200).expect('Content-Type', /^text\/css/);
    const missing = await t.http().get('/docs/assets/nope.js');
    expect(missing.status).toBe(404);
  });
});

describe('DOCS=0', () => {
  it('serves neither the spec nor the docs page: 404 Route Not Found', async () => {
    const t = await createTestApp({ env: { DOCS: '0' } });
    try {
      for (const path of ['/openapi.json', '/openapi.yaml', '/docs', '/docs/assets/swagger-ui-bundle.js']) {
        const res = await t.http().get(path);
        expect([path, res.status, res.body.code]).toEqual([path, 404, 'not_found']);
      }
    } finally {
      await t.close();
    }
  });
});
