// Validates the Prometheus Operator resources of a JSON list (kubectl kustomize output turned into JSON) against
// the validators @kubernetes-models/prometheus-operator generates from the operator's CRD OpenAPI schemas.
// Prints one line per resource; exits 1 when one is invalid or a kind is unknown.
// Usage: node validate-crds.mjs resources.json
import { readFileSync } from "node:fs";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const kinds = { PodMonitor, ServiceMonitor };
const docs = JSON.parse(readFileSync(process.argv[2], "utf8"));
let failed = 0;
for (const doc of docs) {
  if (doc.apiVersion !== "monitoring.coreos.com/v1") continue;
  const Kind = kinds[doc.kind];
  const name = `${doc.kind}/${doc.metadata?.name}`;
  if (!Kind) {
    console.log(`FAIL ${name}: no schema for this kind`);
    failed++;
    continue;
  }
  try {
    new Kind(doc).validate();
    console.log(`ok ${name}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message.replace(/\s+/g, " ")}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
