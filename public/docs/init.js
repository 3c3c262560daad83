// The documentation page of /docs: Swagger UI over this service's /openapi.json, its "Try it
// out" sent to the origin the page was loaded from (the spec's server is APP_URL, which may
// name this service by another host). No inline script: the page's CSP allows none.
/* global SwaggerUIBundle */
(function () {
  'use strict';
  fetch('/openapi.json', { headers: { accept: 'application/json' } })
    .then(function (res) {
      if (!res.ok) throw new Error('GET /openapi.json answered ' + res.status);
      return res.json();
    })
    .then(function (spec) {
      var here = window.location.origin;
      spec.servers = [{ url: here, description: 'this server' }].concat(
        (spec.servers || []).filter(function (s) { return s.url !== here; }),
      );
      SwaggerUIBundle({
        spec: spec,
        dom_id: '#docs',
        deepLinking: true,
        // A change signed in by the session cookie must say a script sent it (see the API's rules).
        requestInterceptor: function (req) {
          req.headers['X-Requested-With'] = 'swagger-ui';
          return req;
        },
      });
    })
    .catch(function (err) {
      var p = document.createElement('p');
      p.setAttribute('role', 'alert');
      p.textContent = 'The API documentation could not be loaded: ' + err.message;
      document.getElementById('docs').appendChild(p);
    });
})();
