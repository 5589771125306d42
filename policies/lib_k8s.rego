# Helpers shared by the built-in policies: where a Kubernetes object keeps its pod template.
package lib.k8s

import rego.v1

workload_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}

pod_spec_paths := object.union(
	{kind: ["spec", "template", "spec"] | some kind in workload_kinds},
	{"Pod": ["spec"], "CronJob": ["spec", "jobTemplate", "spec", "template", "spec"]},
)

# One definition on purpose: alternative definitions of a complete rule may conflict, and
# policies without such rules run on regorus' faster VM.
pod_spec := spec if {
	path := pod_spec_paths[input.kind]
	spec := object.get(input, path, null)
	spec != null
}

# Every container of the pod spec, with the field it sits in.
containers contains [field, container] if {
	some field in ["containers", "initContainers", "ephemeralContainers"]
	some container in pod_spec[field]
}

is_workload if pod_spec

name := object.get(input, ["metadata", "name"], "<unnamed>")
