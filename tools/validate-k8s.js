#!/usr/bin/env node
// Validates rendered Kubernetes manifests (multi-document YAML, e.g. `helm
// template` output) against the Kubernetes API schemas of kubernetes-models
// and, for monitoring.coreos.com/v1, @kubernetes-models/prometheus-operator.
// Offline: no cluster. Every document must have a known apiVersion/kind and
// pass its schema (types, required fields, enums, formats).
//
// Usage: node tools/validate-k8s.js --tools .tools FILE...
// Prints one line per error, "FILE: Kind/name: /json/path: message", and
// exits 1 if there was any; 0 and a summary line otherwise.
'use strict';

const fs = require('fs');
const path = require('path');
const {createRequire} = require('module');

function usage(message) {
  process.stderr.write(`validate-k8s: ${message}\n` +
                       'usage: validate-k8s.js --tools TOOLS_DIR FILE...\n');
  process.exit(2);
}

const args = process.argv.slice(2);
let toolsDir = null;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--tools') {
    toolsDir = args[++i];
  } else {
    files.push(args[i]);
  }
}
if (!toolsDir) usage('missing --tools');
if (files.length === 0) usage('no manifest files');

const npmDir = path.resolve(toolsDir, 'npm');
if (!fs.existsSync(path.join(npmDir, 'node_modules'))) {
  usage(`${npmDir}/node_modules not found: run scripts/install-tools.sh`);
}
const requireTool = createRequire(path.join(npmDir, 'package.json'));
const YAML = requireTool('yaml');

// apiVersion -> the module holding its models.
function modelModule(apiVersion) {
  if (apiVersion.startsWith('monitoring.coreos.com/')) {
    return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  }
  return `kubernetes-models/${apiVersion}`;
}

function findModel(apiVersion, kind) {
  let mod;
  try {
    mod = requireTool(modelModule(apiVersion));
  } catch (e) {
    return {error: `unknown apiVersion "${apiVersion}"`};
  }
  const model = mod[kind];
  if (typeof model !== 'function' || model.kind !== kind) {
    return {error: `unknown kind "${kind}" in apiVersion "${apiVersion}"`};
  }
  return {model};
}

function describeError(err) {
  const where = err.instancePath || '/';
  let message = err.message || err.keyword;
  if (err.params && err.params.allowedValues) {
    message += ` (${err.params.allowedValues.join(', ')})`;
  }
  return `${where}: ${message}`;
}

let errors = 0;
let checked = 0;
function report(file, what, message) {
  errors++;
  process.stdout.write(`${file}: ${what}: ${message}\n`);
}

for (const file of files) {
  const text = fs.readFileSync(file, 'utf8');
  const docs = YAML.parseAllDocuments(text);
  docs.forEach((doc, index) => {
    const where = `document ${index + 1}`;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) report(file, where, `YAML: ${e.message}`);
      return;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) return;  // empty document
    if (typeof obj !== 'object' || Array.isArray(obj)) {
      report(file, where, 'not a Kubernetes object (a mapping)');
      return;
    }
    const name = (obj.metadata && obj.metadata.name) || '?';
    const what = `${obj.kind || '?'}/${name}`;
    if (typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') {
      report(file, what, 'apiVersion and kind must be strings');
      return;
    }
    const {model, error} = findModel(obj.apiVersion, obj.kind);
    if (error) {
      report(file, what, error);
      return;
    }
    checked++;
    try {
      new model(obj).validate();
    } catch (e) {
      if (Array.isArray(e.errors)) {
        for (const err of e.errors) report(file, what, describeError(err));
      } else {
        report(file, what, String(e.message || e));
      }
    }
  });
}

if (errors > 0) {
  process.stdout.write(`validate-k8s: ${errors} error(s)\n`);
  process.exit(1);
}
if (checked === 0) {
  process.stdout.write('validate-k8s: no Kubernetes objects found\n');
  process.exit(1);
}
process.stdout.write(`validate-k8s: ${checked} object(s) valid\n`);
