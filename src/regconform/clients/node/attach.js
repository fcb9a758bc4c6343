// Attach artifacts to an image with @sigstore/oci (the library sigstore-js uses for OCI attestations).
// The job comes on stdin as JSON, never on argv (it may hold credentials):
//   {"image": "host:port/repo", "digest": "sha256:...", "username": "...", "password": "...",
//    "artifacts": [{"mediaType": "...", "payload": "<base64>", "annotations": {...}}]}
// Prints one JSON line: {"descriptors": [...]} (or {"error": "..."} and exit 1). TLS trust: NODE_EXTRA_CA_CERTS.
'use strict';
const { attachArtifactToImage } = require('@sigstore/oci');

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const job = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const credentials = job.username ? { username: job.username, password: job.password || '' } : undefined;
  const descriptors = [];
  for (const art of job.artifacts) {
    const d = await attachArtifactToImage({
      imageName: job.image,
      imageDigest: job.digest,
      artifact: Buffer.from(art.payload, 'base64'),
      mediaType: art.mediaType,
      annotations: art.annotations || {},
      credentials,
      fetchOpts: { retry: { retries: 0 }, timeout: 60000 },
    });
    descriptors.push(d);
  }
  process.stdout.write(JSON.stringify({ descriptors }) + '\n');
}

main().catch((err) => {
  const cause = err && err.cause ? `: ${err.cause.message || err.cause}` : '';
  process.stdout.write(JSON.stringify({ error: `${err.message}${cause}`.slice(0, 600) }) + '\n');
  process.exit(1);
});
