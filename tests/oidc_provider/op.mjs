// A real OpenID provider on loopback for Airlock's tests: `node op.mjs CONFIG.json`.
// CONFIG: {port, issuer, resources: [url...], scope, ttl, jwks: {keys: [private JWK...]}, clients: [...]}
// Access tokens for a listed resource are JWTs (RFC 9068) with aud = that resource; any other
// resource is refused (invalid_target), as a real deployment's resource registry would.
import { readFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  scopes: config.scope.split(' '),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.resources[0],
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (!config.resources.includes(resource)) throw new errors.InvalidTarget();
        return { scope: config.scope, accessTokenFormat: 'jwt', accessTokenTTL: config.ttl };
      },
    },
  },
});
provider.listen(config.port, '127.0.0.1', () => console.log(`listening ${config.issuer}`));
