# Workloads and Services carry the `app.kubernetes.io/name` label, so dashboards, cost reports and
# `kubectl get -l` can find every piece of an application.
package main

import data.lib.k8s
import rego.v1

# `policies.parameters.required_labels.labels` in .stategate.yaml replaces the default list.
default required_labels := ["app.kubernetes.io/name"]

required_labels := data.stategate_builtin.required_labels.labels

labelled_kinds := k8s.workload_kinds | {"Pod", "CronJob", "Service"}

deny_required_labels contains msg if {
	labelled_kinds[input.kind]
	some label in required_labels
	not input.metadata.labels[label]
	msg := sprintf("%s %s must have the label %s", [input.kind, k8s.name, label])
}
