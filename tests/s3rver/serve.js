// s3rver on loopback for tests/e2e/s3_servers.py: a free port, the test's own key pair (besides s3rver's
// built-in S3RVER/S3RVER), objects under the directory given; prints the port once it listens.
'use strict';
const S3rver = require('s3rver');
const { DUMMY_ACCOUNT } = require('s3rver/lib/models/account');

const [directory] = process.argv.slice(2);
DUMMY_ACCOUNT.createKeyPair(process.env.S3_ACCESS_KEY_ID, process.env.S3_SECRET_ACCESS_KEY);
new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory })
  .run()
  .then(({ port }) => console.log(JSON.stringify({ port })))
  .catch((error) => { console.error(error); process.exit(1); });
process.on('SIGTERM', () => process.exit(0));
