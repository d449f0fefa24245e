#!/usr/bin/env node
// The oracle of the citadel-policy differential test.
//
// It reads one JSON array of cases on stdin and prints one JSON array of decisions on stdout, in the same order.
// Each decision is "Allowed", "ExplicitlyDenied", "ImplicitlyDenied", or "Error: <message>".
//
// A case is:
//   { "id": 7, "principal": "arn:aws:iam::111122223333:user/alice", "action": "sqs:SendMessage",
//     "resource": "arn:aws:sqs:us-east-1:111122223333:q1", "resourceAccount": "111122223333",
//     "context": { "aws:SourceIp": "10.0.0.1", "aws:TagKeys": ["a", "b"] },
//     "identity": [policy, ...], "boundary": policy | null, "session": policy | null, "resourcePolicy": policy | null }
//
// We call the library's core `authorize` rather than `runSimulation`, for two reasons:
// `runSimulation` drops context keys that its action catalogue does not list for the action, and rejects
// resources whose type does not fit the action, so it would test the catalogue instead of the evaluation logic;
// and `runUnsafeSimulation` ignores session policies.
// `authorize` is the function both of them end in, so the evaluation logic is exactly the library's.
// The package exports only its index, so the internal modules are loaded by absolute path.

'use strict';

const path = require('path');
const { createRequire } = require('module');

const indexPath = require.resolve('@cloud-copilot/iam-simulate');
const distDir = path.dirname(indexPath);
const simulateRequire = createRequire(indexPath);
const { authorize } = require(path.join(distDir, 'core_engine', 'CoreSimulatorEngine.js'));
const { AwsRequestImpl } = require(path.join(distDir, 'request', 'request.js'));
const { RequestContextImpl } = require(path.join(distDir, 'requestContext.js'));
const { DiscoveryContextKeyConstraints } = require(path.join(
  distDir,
  'context_keys',
  'discoveryContextKeyConstraints.js'
));
const { loadPolicy } = simulateRequire('@cloud-copilot/iam-policy');

function decide(testCase) {
  const identityPolicies = testCase.identity.map((policy, index) =>
    loadPolicy(policy, { name: `identity[${index}]` })
  );
  const permissionBoundaries = testCase.boundary
    ? [loadPolicy(testCase.boundary, { name: 'boundary' })]
    : undefined;
  const sessionPolicy = testCase.session ? loadPolicy(testCase.session, { name: 'session' }) : undefined;
  const resourcePolicy = testCase.resourcePolicy
    ? loadPolicy(testCase.resourcePolicy, { name: 'resource' })
    : undefined;
  const request = new AwsRequestImpl(
    testCase.principal,
    { resource: testCase.resource, accountId: testCase.resourceAccount },
    testCase.action,
    new RequestContextImpl(testCase.context),
    false
  );
  const analysis = authorize({
    request,
    sessionPolicy,
    identityPolicies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy,
    permissionBoundaries,
    vpcEndpointPolicies: undefined,
    simulationParameters: {
      simulationMode: 'Strict',
      discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([])
    },
    serviceSettings: { s3: { blockPublicAccess: undefined } }
  });
  return analysis.result;
}

function main() {
  const chunks = [];
  process.stdin.on('data', (chunk) => chunks.push(chunk));
  process.stdin.on('end', () => {
    const cases = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const decisions = cases.map((testCase) => {
      try {
        return decide(testCase);
      } catch (error) {
        return `Error: ${error && error.message ? error.message : String(error)}`;
      }
    });
    process.stdout.write(JSON.stringify(decisions));
  });
}

main();
